package launcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kubepool/kubepool/internal/zk"
)

// servePool takes requests for pw until ctx ends, looking again whenever a
// request or node changes (and every few seconds, as a safety net).
func (l *Launcher) servePool(ctx context.Context, pw *poolWorker) error {
	reqs := l.requests.Subscribe()
	nodes := l.nodes.Subscribe()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		// A reconnect is a reason to look again at once: what failed for
		// want of a connection can be done now.
		session := l.zk.StateChanged()
		if err := l.handleRequests(ctx, pw); err != nil && ctx.Err() == nil {
			l.log.Warn("handling requests", "provider", pw.provider.Name, "pool", pw.pool.Name, "err", err)
		}
		select {
		case <-ctx.Done():
			if pw.pausedLock != nil {
				// Let go of the request we waited on; another launcher (or
				// this one, restarted) resets it to requested.
				_ = pw.pausedLock.Release(context.WithoutCancel(ctx))
				pw.pausedLock, pw.pausedID = nil, ""
			}
			return nil
		case <-reqs:
		case <-nodes:
		case <-session:
		case <-pw.kick:
		case <-tick.C:
		}
	}
}

// handleRequests looks at every request in priority order once. A pool
// that is paused on a request (it did not fit the quota) first tries that
// one again, and looks at no other until it is served.
func (l *Launcher) handleRequests(ctx context.Context, pw *poolWorker) error {
	var nodes pass
	if pw.pausedLock != nil {
		r, err := l.zk.GetRequest(ctx, pw.pausedID)
		switch {
		case errors.Is(err, zk.ErrNoNode) || err == nil && r.State != zk.RequestPending:
			// Zuul withdrew it (or someone else changed it): unpause.
			_ = pw.pausedLock.Release(ctx)
			pw.pausedLock, pw.pausedID = nil, ""
		case err != nil:
			return err
		default:
			paused, err := l.take(ctx, pw, r, &nodes)
			if err != nil || paused {
				return err
			}
		}
	}
	reqs := l.requests.Snapshot()
	slices.SortStableFunc(reqs, zk.CompareRequests)
	var pools []*zk.Component
	var err error // listed once per pass, for affinity
	for _, r := range reqs {
		if r.State != zk.RequestRequested || r.DeclinedByID(pw.id) || l.isBusy(r.ID) {
			continue
		}
		if r.Provider != "" && r.Provider != pw.provider.Name {
			if pools == nil {
				if pools, err = l.zk.ListComponents(ctx, zk.KindPool); err != nil {
					return err
				}
			}
			if otherProviderServes(pools, r) {
				continue // affinity: leave it to the provider it asks for
			}
		}
		if why := pw.cannotServe(r.NodeTypes); why != "" {
			if l.claim(r.ID) {
				l.goTracked(func() {
					defer l.release(r.ID)
					if lock, cur, ok := l.lockRequested(ctx, pw, r.ID); ok {
						defer func() { _ = lock.Release(ctx) }()
						l.decline(ctx, pw, cur, why)
					}
				})
			}
			continue
		}
		paused, err := l.take(ctx, pw, r, &nodes)
		if err != nil || paused {
			return err
		}
	}
	return nil
}

// lockRequested locks request id if it is still requested and not declined
// by pw; ok is false (and nothing held) otherwise.
func (l *Launcher) lockRequested(ctx context.Context, pw *poolWorker, id string) (*zk.Lock, *zk.Request, bool) {
	lock, r, err := l.zk.TryLockRequest(ctx, id)
	if err != nil {
		// Held by someone else for a moment (our cleanup resetting it,
		// another launcher looking): look again when they let go.
		l.wakeWhenReleased(ctx, zk.RequestLockDir(id), err)
		if !errors.Is(err, zk.ErrLocked) && !errors.Is(err, zk.ErrNoNode) && ctx.Err() == nil {
			l.log.Warn("locking request", "request", id, "err", err)
		}
		return nil, nil, false
	}
	if r.State != zk.RequestRequested || r.DeclinedByID(pw.id) {
		_ = lock.Release(ctx)
		return nil, nil, false
	}
	return lock, r, true
}

// take serves request r from the pool: warm nodes first, new nodes for the
// rest. The decision (which warm nodes, whether the new ones fit the quota)
// is made here, in priority order; locking the request, making the node
// records and launching run in a goroutine, so that a burst of requests is
// taken as fast as ZooKeeper answers, not one round trip chain at a time.
// If the new nodes do not fit the quota, r is locked, marked pending and the
// pool pauses on it, as Nodepool's does; take reports that. *nodes is this
// pass's node listing and quota tally (made when first needed), to which
// take adds what it reserves.
func (l *Launcher) take(ctx context.Context, pw *poolWorker, r *zk.Request, nodes *pass) (paused bool, err error) {
	if !l.claim(r.ID) {
		return false, nil
	}
	// Warm nodes are picked from the last node listing (each is locked and
	// checked again before use); only a request that needs new nodes pays
	// for a fresh listing, to check quota.
	if nodes.nodes == nil {
		nodes.nodes = l.nodesView()
		nodes.tally = tallyOf(pw, nodes.nodes)
	}
	warm := l.claimWarm(pw, r.NodeTypes, nodes.nodes)
	launch := missing(r.NodeTypes, warm)
	if why := pw.short(nodes.tally, launch); why != "" {
		l.releaseAll(r.ID, warm)
		if r.ID == pw.pausedID {
			return true, nil // still waiting; we hold its lock
		}
		lock, cur, ok := l.lockRequested(ctx, pw, r.ID)
		if !ok {
			return false, nil
		}
		if err := l.zk.MarkPending(ctx, cur); err != nil {
			_ = lock.Release(ctx)
			return false, err
		}
		l.log.Info("pausing pool until the request fits the quota", "request", r.ID, "provider", pw.provider.Name, "pool", pw.pool.Name, "why", why)
		pw.pausedLock, pw.pausedID = lock, r.ID
		return true, nil
	}
	// Reserve the quota the new nodes will use until their records exist.
	var reserved []string
	for i, lb := range launch {
		n := &zk.Node{Provider: pw.provider.Name, Pool: pw.pool.Name, Type: []string{lb}, State: zk.NodeBuilding,
			AllocatedTo: r.ID, Resources: resourcesMap(pw.pool.Label(lb).Resources())}
		nodes.nodes = append(nodes.nodes, n)
		nodes.tally.addNode(pw, n)
		key := fmt.Sprintf("reserved:%s:%d", r.ID, i)
		l.addInflight(key, n)
		reserved = append(reserved, key)
	}
	var pausedLock *zk.Lock
	if r.ID == pw.pausedID {
		pausedLock = pw.pausedLock
		pw.pausedLock, pw.pausedID = nil, ""
	}
	l.sem <- struct{}{}
	l.goTracked(func() {
		lock, cur := pausedLock, r
		if lock == nil {
			var ok bool
			if lock, cur, ok = l.lockRequested(ctx, pw, r.ID); !ok {
				<-l.sem
				l.dropInflight(reserved...)
				l.releaseAll(r.ID, warm)
				return
			}
		}
		start := time.Now()
		slots, err := l.assign(ctx, pw, cur, warm)
		l.dropInflight(reserved...) // the created nodes are in flight now
		<-l.sem
		if err != nil {
			l.releaseAll(r.ID, warm)
			_ = lock.Release(ctx)
			if ctx.Err() == nil {
				l.log.Warn("assigning nodes", "request", r.ID, "err", err)
			}
			return
		}
		l.fulfil(ctx, pw, lock, cur, slots, start)
	})
	return false, nil
}

// claimWarm picks and claims, for each label, a ready unallocated unlocked
// node of the pool, or nil.
func (l *Launcher) claimWarm(pw *poolWorker, labels []string, nodes []*zk.Node) []*zk.Node {
	out := make([]*zk.Node, len(labels))
	for i, lb := range labels {
		for _, n := range nodes {
			if n.Locked || n.State != zk.NodeReady || n.AllocatedTo != "" ||
				n.Provider != pw.provider.Name || n.Pool != pw.pool.Name || !typeIs(n, lb) {
				continue
			}
			if l.claim(n.ID) {
				out[i] = n
				break
			}
		}
	}
	return out
}

// releaseAll releases the claims on request id and on the warm nodes.
func (l *Launcher) releaseAll(id string, warm []*zk.Node) {
	l.release(id)
	for _, w := range warm {
		if w != nil {
			l.release(w.ID)
		}
	}
}

// missing returns the labels that have no warm node.
func missing(labels []string, warm []*zk.Node) []string {
	var out []string
	for i, lb := range labels {
		if warm[i] == nil {
			out = append(out, lb)
		}
	}
	return out
}

// cannotServe says why the pool can never serve labels, or "".
func (pw *poolWorker) cannotServe(labels []string) string {
	if len(labels) == 0 {
		return "the request asks for no nodes"
	}
	for _, lb := range labels {
		pl := pw.pool.Label(lb)
		if pl == nil {
			return fmt.Sprintf("pool does not serve label %q", lb)
		}
		if pl.Unlaunchable != "" {
			return pl.Unlaunchable
		}
	}
	var need usage
	for _, lb := range labels {
		need.add(pw.pool.Label(lb).Resources())
	}
	if why := need.exceeds(limitsOf(pw.pool.MaxServers, pw.pool.MaxCores, pw.pool.MaxRAM, pw.pool.MaxResources), usage{}); why != "" {
		return "the request alone exceeds the pool's quota: " + why
	}
	if why := need.exceeds(limitsOf(pw.provider.MaxServers, pw.provider.MaxCores, pw.provider.MaxRAM, pw.provider.MaxResources), usage{}); why != "" {
		return "the request alone exceeds the provider's quota: " + why
	}
	return ""
}

// decline declines r for pw. The caller holds r's lock, and releases it.
func (l *Launcher) decline(ctx context.Context, pw *poolWorker, r *zk.Request, why string) {
	failed, err := l.zk.Decline(ctx, r, pw.id)
	if err != nil {
		l.log.Warn("declining request", "request", r.ID, "err", err)
		return
	}
	l.log.Info("declined request", "request", r.ID, "labels", r.NodeTypes, "provider", pw.provider.Name, "pool", pw.pool.Name, "why", why, "failed", failed)
}

// otherProviderServes reports whether a live pool of the provider r asks
// for can serve all of r's labels.
func otherProviderServes(pools []*zk.Component, r *zk.Request) bool {
	for _, p := range pools {
		if p.ProviderName != r.Provider || p.Paused || r.DeclinedByID(p.ID) {
			continue
		}
		all := true
		for _, lb := range r.NodeTypes {
			all = all && slices.Contains(p.SupportedLabels, lb)
		}
		if all {
			return true
		}
	}
	return false
}
