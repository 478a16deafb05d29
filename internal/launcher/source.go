package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kubepool/kubepool/internal/nodeadmin"
	"github.com/kubepool/kubepool/internal/zk"
)

// The web endpoints show the read model of package nodeadmin, the one
// `kubepool list`, `request-list` and `label-list` print: the same rows,
// field for field, for the same ZooKeeper state. The launcher answers from
// its watch caches; only the nodes' lock state is read per request (the
// cache does not watch locks).

// lockReads bounds the lock reads of one /node-list in flight at once.
const lockReads = 64

// Nodes returns every node, as rows of Nodepool's webapp /node-list (those
// of `kubepool list -o json`).
func (l *Launcher) Nodes(ctx context.Context) ([]map[string]any, error) {
	_, cache, err := l.caches()
	if err != nil {
		return nil, err
	}
	cached := cache.Snapshot()
	nodes := make([]*zk.Node, len(cached))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(lockReads)
	for i, n := range cached {
		g.Go(func() error {
			cp := *n // the cache's record: not to be changed
			h, err := l.zk.NodeLockHolder(gctx, n.ID)
			if err != nil {
				return fmt.Errorf("reading the lock of node %s: %w", n.ID, err)
			}
			cp.LockHolder, cp.Locked = h, h != nil
			nodes[i] = &cp
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return rowMaps(nodeadmin.NodeRows(nodes, time.Now()))
}

// Requests returns every request, as rows of Nodepool's webapp
// /request-list (those of `kubepool request-list -o json`).
func (l *Launcher) Requests(ctx context.Context) ([]map[string]any, error) {
	cache, _, err := l.caches()
	if err != nil {
		return nil, err
	}
	return rowMaps(nodeadmin.RequestRows(cache.Snapshot(), time.Now()))
}

// Labels returns every label the config has or a registered pool serves,
// with its ready count, min-ready and the pools that serve it (the rows of
// `kubepool label-list -c <this config> -o json`).
func (l *Launcher) Labels(ctx context.Context) ([]map[string]any, error) {
	_, nodes, err := l.caches()
	if err != nil {
		return nil, err
	}
	pools, err := l.zk.ListComponents(ctx, zk.KindPool)
	if err != nil {
		return nil, err
	}
	configured := map[string]int{}
	for _, lb := range l.cfg.Labels {
		configured[lb.Name] = lb.MinReady
	}
	return rowMaps(nodeadmin.LabelRows(nodes.Snapshot(), pools, configured))
}

// caches returns the launcher's watch caches of requests and nodes, which
// exist once it runs.
func (l *Launcher) caches() (*zk.Cache[zk.Request], *zk.Cache[zk.Node], error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.ready {
		return nil, nil, errors.New("launcher not running yet: no nodes and requests cached")
	}
	return l.requests, l.nodes, nil
}

// rowMaps turns rows into the JSON objects they encode to.
func rowMaps[T any](rows []T) ([]map[string]any, error) {
	b, err := json.Marshal(rows)
	if err != nil {
		return nil, fmt.Errorf("encoding rows: %w", err)
	}
	out := []map[string]any{}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decoding rows: %w", err)
	}
	return out, nil
}

// Ready reports whether the launcher is serving: registered, connected,
// and owing ZooKeeper no writes (a write or lock release that failed for
// want of a connection is retried until it lands; until then requests or
// nodes may be stuck behind it).
func (l *Launcher) Ready(ctx context.Context) error {
	l.mu.Lock()
	ready := l.ready
	l.mu.Unlock()
	if !ready {
		return errors.New("launcher not registered yet")
	}
	st, _ := l.zk.State()
	if n := l.zk.Owed(); n > 0 {
		return fmt.Errorf("owing ZooKeeper %d writes (session %s)", n, st)
	}
	if st != zk.StateConnected {
		return errors.New("ZooKeeper " + st.String())
	}
	return nil
}
