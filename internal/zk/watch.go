package zk

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// notify sends on a 1-buffered channel without blocking: notifications
// coalesce, and the receiver re-reads the state it cares about.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// WatchRequests returns a channel that receives a value whenever a request
// is added, removed or changed, and once at the start; the receiver lists
// the requests again (ListRequests). Watches survive reconnects and are
// re-armed after a session expiry (with a notification). The channel is closed when ctx is done.
func (c *Client) WatchRequests(ctx context.Context) <-chan struct{} {
	return c.watchTree(ctx, RequestRoot, nil)
}

// WatchNodes is WatchRequests for /nodepool/nodes: node records added,
// removed or changed (state in-use, used, hold, ...). Lock changes are not
// reported.
func (c *Client) WatchNodes(ctx context.Context) <-chan struct{} {
	return c.watchTree(ctx, NodeRoot, nil)
}

// treeData receives what watchTree reads: a child's data (on every change)
// or its deletion (data nil).
type treeData func(name string, data []byte, version int32)

// watchTree watches root's children and each child's data, telling onData
// (if set) what it reads.
func (c *Client) watchTree(ctx context.Context, root string, onData treeData) <-chan struct{} {
	ch := make(chan struct{}, 1)
	go func() {
		defer close(ch)
		var wg sync.WaitGroup
		defer wg.Wait()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		watched := map[string]context.CancelFunc{}
		fire := func() { notify(ch) }
		for {
			if ctx.Err() != nil {
				return
			}
			// Taken before the read: a reconnect from now on makes us read
			// again (see resynced).
			session := c.stateChanged()
			children, _, ev, err := c.conn.ChildrenW(c.abs(root))
			if errors.Is(err, zk.ErrNoNode) {
				if err := c.ensurePath(ctx, c.abs(root)); err != nil && c.retryWait(ctx, time.Second) != nil {
					return
				}
				continue
			}
			if err != nil {
				c.log.Debug("watching znode children", "path", root, "err", err)
				if c.retryWait(ctx, time.Second) != nil {
					return
				}
				fire()
				continue
			}
			seen := map[string]bool{}
			for _, name := range children {
				seen[name] = true
				if _, ok := watched[name]; ok {
					continue
				}
				cctx, ccancel := context.WithCancel(ctx)
				watched[name] = ccancel
				wg.Add(1)
				go func() {
					defer wg.Done()
					var got func([]byte, int32)
					if onData != nil {
						got = func(data []byte, version int32) { onData(name, data, version) }
					}
					c.watchData(cctx, root+"/"+name, fire, got)
				}()
			}
			for name, cancelChild := range watched {
				if !seen[name] {
					cancelChild()
					delete(watched, name)
					if onData != nil {
						onData(name, nil, 0)
					}
				}
			}
			fire()
			select {
			case <-ev:
			case <-session:
				if !c.resynced(ctx) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// resynced waits, after a change of the session state, until the client is
// connected again, and reports false if ctx or the client ended first. A
// watcher then reads its znode again rather than rely on the watch
// go-zookeeper re-arms after a reconnect: the library tells the server the
// last zxid it has seen, taken while the writes queued during the outage
// may already have been answered, and a change the server believes seen is
// never notified. Reading again is what kazoo's TreeCache does too.
func (c *Client) resynced(ctx context.Context) bool {
	return c.waitConnected(ctx) == nil
}

// watchData calls fire whenever p's data changes, until p is deleted or ctx
// is done. It does not fire for the first read. got, if set, receives every
// read, the first included, and nil when p is deleted.
func (c *Client) watchData(ctx context.Context, p string, fire func(), got func([]byte, int32)) {
	first := true
	var seen zk.Stat // of the last read: a read again after a reconnect
	// that finds the same znode at the same version tells nobody
	for {
		if ctx.Err() != nil {
			return
		}
		session := c.stateChanged() // see resynced
		data, st, ev, err := c.conn.GetW(c.abs(p))
		if errors.Is(err, zk.ErrNoNode) {
			if got != nil {
				got(nil, 0)
			}
			if !first {
				fire()
			}
			return
		}
		if err != nil {
			if c.retryWait(ctx, time.Second) != nil {
				return
			}
			continue
		}
		if first || st.Czxid != seen.Czxid || st.Version != seen.Version {
			if got != nil {
				got(data, st.Version)
			}
			// A cache's reader must hear of a new record once its data is in.
			if !first || got != nil {
				fire()
			}
		}
		first, seen = false, *st
		select {
		case e := <-ev:
			if e.Type == zk.EventNodeDeleted {
				if got != nil {
					got(nil, 0)
				}
				fire()
				return
			}
		case <-session:
			if !c.resynced(ctx) {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}
