package zk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// The lock recipe is kazoo's Lock (kazoo/recipe/lock.py), which Zuul and
// Nodepool use for request and node locks: a contender is an ephemeral
// sequential znode "<uuid4 hex>__lock__<10-digit sequence>" in the lock
// directory, holding the identifier as data; the contender with the lowest
// sequence holds the lock; the others watch their predecessor.

const lockMarker = "__lock__"

// LockHolder describes the contender that holds a lock.
type LockHolder struct {
	Contender  string // znode name
	Identifier string // contender data; empty for Zuul and Nodepool
	SessionID  int64  // the ZooKeeper session that owns it
}

// LockedError is returned (wrapping ErrLocked) when a try-lock finds the
// lock held.
type LockedError struct {
	Path   string
	Holder *LockHolder // nil if the holder went away while looking
}

func (e *LockedError) Error() string {
	if e.Holder == nil {
		return fmt.Sprintf("%s is locked", e.Path)
	}
	return fmt.Sprintf("%s is locked by %s (session %#x, identifier %q)", e.Path, e.Holder.Contender, e.Holder.SessionID, e.Holder.Identifier)
}

func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Lock is a held kazoo-recipe lock. It is lost if the session expires.
type Lock struct {
	c    *Client
	dir  string
	name string
	sid  int64 // the session the contender belongs to
}

// Path returns the contender znode's path.
func (l *Lock) Path() string { return l.dir + "/" + l.name }

// Held reports whether the lock is still held: its contender exists and
// belongs to the client's current session.
func (l *Lock) Held(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	ok, st, err := l.c.conn.Exists(l.c.abs(l.Path()))
	if err != nil {
		return false, fmt.Errorf("checking lock %s: %w", l.Path(), zkErr(err))
	}
	return ok && st.EphemeralOwner == l.c.conn.SessionID(), nil
}

// Released returns a channel closed when the contender h (a lock's holder,
// from a *LockedError) is gone: the lock was released or its session ended.
// It is also closed when ctx ends.
func (c *Client) Released(ctx context.Context, dir string, h *LockHolder) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for ctx.Err() == nil {
			ok, _, ev, err := c.conn.ExistsW(c.abs(dir + "/" + h.Contender))
			if err == nil && !ok {
				return
			}
			if err != nil {
				if c.retryWait(ctx, time.Second) != nil {
					return
				}
				continue
			}
			select {
			case <-ev:
			case <-ctx.Done():
			}
		}
	}()
	return ch
}

// NodeLockDir and RequestLockDir are the lock directories of a node and a
// request, for Released.
func NodeLockDir(id string) string    { return nodeLockPath(id) }
func RequestLockDir(id string) string { return requestLockPath(id) }

// Lost reports, without asking the server, whether the session the lock
// was taken in has ended (and the lock with it): whoever holds a lost lock
// must stop acting on what it locked.
func (l *Lock) Lost() bool { return l.c.sessionEnded(l.sid) }

// Release releases the lock. While ZooKeeper cannot be reached it keeps
// trying (Owed counts it) until the release lands, ctx ends, or the session
// that holds the lock ends, which releases it too. Releasing a lock that is
// already gone (session expired, znode deleted with its node) is not an
// error.
func (l *Lock) Release(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := l.c.deleteZnode(ctx, l.sid, l.c.abs(l.Path()))
	if err != nil && !errors.Is(err, ErrSessionLost) {
		return fmt.Errorf("releasing lock %s: %w", l.Path(), zkErr(err))
	}
	return nil
}

// contenderSeq returns the sequence suffix a contender sorts by.
func contenderSeq(name string) string {
	i := strings.LastIndex(name, lockMarker)
	if i < 0 {
		return name
	}
	return name[i+len(lockMarker):]
}

func (c *Client) sortedContenders(dir string) ([]string, error) {
	children, _, err := c.conn.Children(c.abs(dir))
	if err != nil {
		return nil, zkErr(err)
	}
	out := children[:0]
	for _, ch := range children {
		if strings.Contains(ch, lockMarker) {
			out = append(out, ch)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Compare(contenderSeq(a), contenderSeq(b)) })
	return out, nil
}

// lockHolder returns the lowest contender in dir, or nil if there is none.
func (c *Client) lockHolder(ctx context.Context, dir string) (*LockHolder, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cs, err := c.sortedContenders(dir)
		if err != nil {
			return nil, err
		}
		if len(cs) == 0 {
			return nil, nil
		}
		data, st, err := c.conn.Get(c.abs(dir + "/" + cs[0]))
		if errors.Is(err, zk.ErrNoNode) {
			continue // released meanwhile; look again
		}
		if err != nil {
			return nil, zkErr(err)
		}
		return &LockHolder{Contender: cs[0], Identifier: string(data), SessionID: st.EphemeralOwner}, nil
	}
}

// acquire takes the lock in dir. makeParents says whether dir's ancestors
// may be created (kazoo's ensure_path); if not, only dir itself is, and a
// missing parent is ErrNoNode. Without wait, a held lock is a *LockedError.
func (c *Client) acquire(ctx context.Context, dir string, makeParents, wait bool) (*Lock, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	prefix := hex.EncodeToString(b) + lockMarker
	l := &Lock{c: c, dir: dir, sid: c.session()}

	// Fast path, for the lock of a new request or node: its directory does
	// not exist yet, so it is made together with our contender in one
	// transaction, and the contender, alone in it, holds the lock. One round
	// trip instead of three (directory, contender, listing).
	tried := false
	resp, err := c.conn.Multi(
		&zk.CreateRequest{Path: c.abs(dir), Acl: zk.WorldACL(zk.PermAll)},
		&zk.CreateRequest{Path: c.abs(dir + "/" + prefix), Data: []byte(c.opts.LockIdentifier), Acl: zk.WorldACL(zk.PermAll), Flags: zk.FlagEphemeral | zk.FlagSequence},
	)
	switch {
	case err == nil && len(resp) == 2:
		l.name = path.Base(resp[1].String)
		return l, nil
	case errors.Is(err, zk.ErrNodeExists):
		// The directory exists: contend as usual.
	case errors.Is(err, zk.ErrNoNode) && !makeParents:
		return nil, zkErr(err)
	case errors.Is(err, zk.ErrNoNode):
		if err := c.ensurePathRetry(ctx, c.abs(dir)); err != nil {
			return nil, err
		}
	default:
		// A lost reply: the transaction may have been applied; look for
		// our contender below (the directory is made there if missing).
		tried = true
	}

	cleanup := func() {
		// A contender left behind would hold the lock for as long as the
		// session lives: its deletion is a write we owe.
		if l.name != "" {
			_ = c.deleteZnode(context.WithoutCancel(ctx), l.sid, c.abs(l.Path()))
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			cleanup()
			return nil, err
		}
		if l.name == "" && tried {
			// A create whose reply was lost may have made a contender.
			if children, _, err := c.conn.Children(c.abs(dir)); err == nil {
				for _, ch := range children {
					if strings.HasPrefix(ch, prefix) {
						l.name = ch
					}
				}
			}
		}
		if l.name == "" {
			tried = true
			l.sid = c.session()
			name, err := c.createContender(dir, prefix)
			if errors.Is(err, ErrNoNode) {
				// No directory (the fast path's reply was lost before it
				// was applied): make it and enter again.
				if makeParents {
					if err := c.ensurePathRetry(ctx, c.abs(dir)); err != nil {
						return nil, err
					}
				} else if _, err := c.conn.Create(c.abs(dir), nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
					if !isRetryable(err) {
						return nil, zkErr(err)
					}
					// The connection dropped again: the next pass looks
					// for our contender and makes the directory anew.
					if err := c.retryWait(ctx, 100*time.Millisecond); err != nil {
						return nil, err
					}
				}
				continue
			}
			if err != nil {
				if isRetryable(err) {
					if err := c.retryWait(ctx, 100*time.Millisecond); err != nil {
						return nil, err
					}
					continue
				}
				return nil, err
			}
			l.name = name
		}
		cs, err := c.sortedContenders(dir)
		if err != nil {
			if isRetryable(err) {
				if err := c.retryWait(ctx, 100*time.Millisecond); err != nil {
					cleanup()
					return nil, err
				}
				continue
			}
			cleanup()
			return nil, err
		}
		if tried {
			cs = c.dropExtraContenders(ctx, l, cs, prefix)
		}
		i := slices.Index(cs, l.name)
		if i < 0 {
			// Our ephemeral contender is gone: the session expired while we
			// waited. Enter again with a new one.
			l.name, l.sid = "", c.session()
			tried = false
			continue
		}
		if i == 0 {
			return l, nil
		}
		if !wait {
			cleanup()
			h, _ := c.lockHolder(ctx, dir)
			return nil, &LockedError{Path: dir, Holder: h}
		}
		ok, _, ev, err := c.conn.ExistsW(c.abs(dir + "/" + cs[i-1]))
		if err != nil {
			if isRetryable(err) {
				if err := c.retryWait(ctx, 100*time.Millisecond); err != nil {
					cleanup()
					return nil, err
				}
				continue
			}
			cleanup()
			return nil, zkErr(err)
		}
		if !ok {
			continue
		}
		select {
		case <-ev:
		case <-ctx.Done():
			cleanup()
			return nil, ctx.Err()
		}
	}
}

// dropExtraContenders keeps, of the contenders in cs (sorted) that carry
// prefix, only the first, as l's, and deletes the others. There is more
// than one when a create whose reply was lost was applied and a later one
// too: a request made while go-zookeeper has no connection may wait in its
// queue and go out on the next connection, while the caller, told of the
// first loss, already tries again. The lower contender would otherwise
// hold the lock for as long as the session lives, with nobody knowing it is
// ours: the request or node stays locked, by us, for good.
func (c *Client) dropExtraContenders(ctx context.Context, l *Lock, cs []string, prefix string) []string {
	first := ""
	out := cs[:0:0]
	for _, name := range cs {
		if !strings.HasPrefix(name, prefix) {
			out = append(out, name)
			continue
		}
		if first == "" {
			first = name
			out = append(out, name)
			continue
		}
		_ = c.deleteZnode(context.WithoutCancel(ctx), l.sid, c.abs(l.dir+"/"+name))
	}
	if first != "" {
		l.name = first
	}
	return out
}

// createContender creates an ephemeral sequential contender with the given
// prefix. If the connection drops before the reply, the contender may exist
// anyway: look for the prefix (kazoo's _find_node) before giving up.
func (c *Client) createContender(dir, prefix string) (string, error) {
	p, err := c.conn.Create(c.abs(dir+"/"+prefix), []byte(c.opts.LockIdentifier), zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if err == nil {
		return path.Base(p), nil
	}
	if errors.Is(err, zk.ErrConnectionClosed) {
		if children, _, lerr := c.conn.Children(c.abs(dir)); lerr == nil {
			for _, ch := range children {
				if strings.HasPrefix(ch, prefix) {
					return ch, nil
				}
			}
		}
	}
	return "", zkErr(err)
}

// ensurePathRetry is ensurePath, tried again while the connection is down
// (a lock taken across a lost reply must not fail for it).
func (c *Client) ensurePathRetry(ctx context.Context, p string) error {
	for {
		err := c.ensurePath(ctx, p)
		if err == nil || !isRetryable(err) {
			return err
		}
		if err := c.retryWait(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// isRetryable reports errors that a reconnect may cure: go-zookeeper's
// own, and the network error of a request written to a connection that
// had just dropped.
func isRetryable(err error) bool {
	var opErr *net.OpError
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrSessionExpired) ||
		errors.Is(err, zk.ErrNoServer) || errors.Is(err, zk.ErrSessionMoved) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.As(err, &opErr)
}
