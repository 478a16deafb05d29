package zk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"
)

// ErrSessionLost is returned by a write that was retried across a
// connection loss when the session it was made for ended meanwhile: the
// locks taken in that session are gone, and with them the right to write;
// ZooKeeper's guarantees take over (another launcher, or this one, finds
// the request or node unlocked and deals with it).
var ErrSessionLost = errors.New("zookeeper session ended before the write could be made")

// Owed returns how many writes (and lock releases) are waiting for
// ZooKeeper to be reachable again. They are retried until they land or
// their session ends; a launcher that owes writes is not healthy.
func (c *Client) Owed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.owed
}

// session returns the id of the session the connection has or is trying
// to resume (zero if none).
func (c *Client) session() int64 { return c.conn.SessionID() }

// sessionEnded reports whether session sid is over: the connection has
// another session (or none: go-zookeeper forgets an expired one), the
// client was told it expired, or it was closed.
func (c *Client) sessionEnded(sid int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed || c.state == StateExpired || c.conn.SessionID() != sid
}

// owe retries op, a write that must land, while it fails for want of a
// connection (see isRetryable): until it succeeds, fails otherwise, ctx ends,
// or session sid ends (ErrSessionLost). While it waits, Owed counts it.
// retried tells op whether an earlier try may have been applied without
// its reply arriving.
func (c *Client) owe(ctx context.Context, sid int64, op func(retried bool) error) error {
	err := op(false)
	if err == nil || !isRetryable(err) {
		return err
	}
	c.mu.Lock()
	c.owed++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.owed--
		c.mu.Unlock()
	}()
	backoff := 50 * time.Millisecond
	for {
		if c.sessionEnded(sid) {
			return fmt.Errorf("%w: %w", ErrSessionLost, err)
		}
		if werr := c.retryWait(ctx, backoff); werr != nil {
			return fmt.Errorf("%w (last try: %w)", werr, err)
		}
		if c.sessionEnded(sid) {
			return fmt.Errorf("%w: %w", ErrSessionLost, err)
		}
		backoff = min(backoff*2, time.Second)
		if err = op(true); err == nil || !isRetryable(err) {
			return err
		}
	}
}

// setData writes data to the server path p if its version is still version
// (-1: any), retrying across connection losses within session sid. A
// version conflict after a try whose reply was lost is checked against the
// znode: if it holds data, the lost try landed, and its version is returned.
func (c *Client) setData(ctx context.Context, sid int64, p string, data []byte, version int32) (*zk.Stat, error) {
	var st *zk.Stat
	err := c.owe(ctx, sid, func(retried bool) error {
		var err error
		st, err = c.conn.Set(p, data, version)
		if retried && errors.Is(err, zk.ErrBadVersion) {
			got, gst, gerr := c.conn.Get(p)
			if gerr != nil {
				return gerr
			}
			if bytes.Equal(got, data) && gst.Version == version+1 {
				st = gst
				return nil
			}
		}
		return err
	})
	return st, err
}

// deleteZnode deletes the server path p (any version), retrying across
// connection losses within session sid; a missing znode is not an error.
func (c *Client) deleteZnode(ctx context.Context, sid int64, p string) error {
	return c.owe(ctx, sid, func(bool) error {
		err := c.conn.Delete(p, -1)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		return err
	})
}
