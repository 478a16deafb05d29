package zk

import (
	"context"
	"slices"
	"sync"
)

// Cache keeps the latest data of every request or every node, from watches,
// so that a launcher looks at all of them without reading each one on every
// change (Nodepool and Zuul use kazoo's TreeCache for the same reason).
// What it returns may be a moment old: act on a record only after locking
// it and reading it again. Node records from a Cache do not say whether
// they are locked.
type Cache[T any] struct {
	mu     sync.Mutex
	items  map[string]*T
	subs   []chan struct{}
	closed bool
}

// CacheRequests loads every request and keeps them up to date until ctx is
// done.
func (c *Client) CacheRequests(ctx context.Context) (*Cache[Request], error) {
	reqs, err := c.ListRequests(ctx)
	if err != nil {
		return nil, err
	}
	return startCache(ctx, c, RequestRoot, reqs, func(r *Request) string { return r.ID }, func(id string, data []byte, version int32) (*Request, error) {
		r := &Request{ID: id, Version: version}
		return r, r.UnmarshalJSON(data)
	}), nil
}

// CacheNodes loads every node and keeps them up to date until ctx is done.
func (c *Client) CacheNodes(ctx context.Context) (*Cache[Node], error) {
	nodes, err := c.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	return startCache(ctx, c, NodeRoot, nodes, func(n *Node) string { return n.ID }, func(id string, data []byte, version int32) (*Node, error) {
		n := &Node{ID: id, Version: version}
		return n, n.UnmarshalJSON(data)
	}), nil
}

// startCache starts a cache holding initial (read before the watches start,
// so that its first snapshot is complete) and following root's changes.
func startCache[T any](ctx context.Context, c *Client, root string, initial []*T, idOf func(*T) string, decode func(string, []byte, int32) (*T, error)) *Cache[T] {
	cache := &Cache[T]{items: map[string]*T{}}
	for _, v := range initial {
		cache.items[idOf(v)] = v
	}
	changed := c.watchTree(ctx, root, func(name string, data []byte, version int32) {
		cache.mu.Lock()
		defer cache.mu.Unlock()
		if data == nil {
			delete(cache.items, name)
			return
		}
		v, err := decode(name, data, version)
		if err != nil {
			c.log.Warn("skipping undecodable record", "path", root+"/"+name, "err", err)
			delete(cache.items, name)
			return
		}
		cache.items[name] = v
	})
	go func() {
		for range changed {
			cache.mu.Lock()
			for _, ch := range cache.subs {
				notify(ch)
			}
			cache.mu.Unlock()
		}
		cache.mu.Lock()
		cache.closed = true
		for _, ch := range cache.subs {
			close(ch)
		}
		cache.subs = nil
		cache.mu.Unlock()
	}()
	return cache
}

// Subscribe returns a channel that receives a value whenever the cached
// records change (and once at once), coalesced. It is closed when the
// cache's context is done.
func (c *Cache[T]) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	ch <- struct{}{}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		close(ch)
		return ch
	}
	c.subs = append(c.subs, ch)
	return ch
}

// Get returns the cached record with the given id, if there is one. The
// record is the cache's: read it, do not change it.
func (c *Cache[T]) Get(id string) (*T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.items[id]
	return v, ok
}

// Snapshot returns the cached records in id order. The records are the
// cache's: read them, do not change them.
func (c *Cache[T]) Snapshot() []*T {
	c.mu.Lock()
	ids := make([]string, 0, len(c.items))
	for id := range c.items {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]*T, len(ids))
	for i, id := range ids {
		out[i] = c.items[id]
	}
	c.mu.Unlock()
	return out
}
