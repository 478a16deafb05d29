package launcher

import (
	"context"
	"errors"
	"time"

	"github.com/kubepool/kubepool/internal/config"
	"github.com/kubepool/kubepool/internal/zk"
)

// cleanupLoop runs the cleanup worker whenever a node changes, and the leak
// sweep every interval.
func (l *Launcher) cleanupLoop(ctx context.Context) error {
	nodes := l.nodes.Subscribe()
	tick := time.NewTicker(l.interval)
	defer tick.Stop()
	var lastSweep time.Time
	for {
		// Every interval, a full pass: also the checks that cost a
		// ZooKeeper read per node (abandoned in-use nodes) and the sweep.
		full := time.Since(lastSweep) >= l.interval
		session := l.zk.StateChanged()
		if err := l.cleanup(ctx, full); err != nil && ctx.Err() == nil {
			l.log.Warn("cleaning up nodes", "err", err)
		}
		if full {
			lastSweep = time.Now()
			if err := l.sweep(ctx); err != nil && ctx.Err() == nil {
				l.log.Warn("sweeping leaked namespaces", "err", err)
			}
			if err := l.sweepRequestLocks(ctx); err != nil && ctx.Err() == nil {
				l.log.Warn("sweeping stale request locks", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-nodes:
		case <-session:
		case <-l.wake:
		case <-tick.C:
		}
	}
}

// cleanup deletes what should go, returns stranded ready nodes to the pool
// and tops up min-ready labels. A full pass also looks for abandoned in-use
// nodes.
func (l *Launcher) cleanup(ctx context.Context, full bool) error {
	var err error
	nodes := l.nodesView()
	// The registered pools are listed only if a building node needs them.
	var owners []string
	for _, n := range nodes {
		if (n.State == zk.NodeInit || n.State == zk.NodeBuilding) && n.ID != "" && !l.isBusy(n.ID) {
			owners = append(owners, n.Launcher)
		}
	}
	var live map[string]bool
	if len(owners) > 0 {
		if live, err = l.livePools(ctx, owners); err != nil {
			return err
		}
	}
	reqs := l.updateGauges(nodes)
	l.resetLostRequests(ctx, reqs)
	now := time.Now()
	for _, n := range nodes {
		pw := l.poolOf(n.Provider, n.Pool)
		if pw == nil || n.Locked || l.isBusy(n.ID) || n.ID == "" {
			continue
		}
		why := l.doomed(n, live, now, false)
		if why == "" && (n.State == zk.NodeBuilding || n.State == zk.NodeInit) && l.ownPool(n.Launcher) {
			// Ours, and no goroutine of ours works on it (it is not
			// busy): a launch abandoned when its session ended, or a
			// node created by a write whose reply was lost.
			if age := now.Sub(zk.TimeOf(n.StateTime)); age > abandonedAfter {
				why = l.doomed(n, live, now, true)
			} else {
				l.wakeAfter(ctx, abandonedAfter-age+100*time.Millisecond)
			}
		}
		if why == "" && full && n.State == zk.NodeInUse && !n.Detached() {
			// The cache does not say who holds a lock: ask.
			if h, err := l.zk.NodeLockHolder(ctx, n.ID); err == nil && h == nil {
				why = l.doomed(n, live, now, true)
			}
		}
		if n.State == zk.NodeReady && why == "" {
			if n.AllocatedTo != "" {
				l.deallocateIfLost(ctx, n)
			} else if !tokenFresh(n, pw.provider.TokenExpiration) && l.claim(n.ID) {
				l.goTracked(func() { l.refreshIdle(ctx, pw, n.ID) })
			}
		}
		if why != "" && l.claim(n.ID) {
			l.goTracked(func() { l.deleteNode(ctx, pw, n.ID, live) })
		}
	}
	return l.topUp(ctx, nodes)
}

// livePools returns the ids of the registered pool workers. A node's
// "launcher" is the pool worker that made it, as in Nodepool. The list is
// kept for one cleanup interval, and read again sooner if it lacks one of
// ids (a pool that registered since): a pool that went away is noticed
// within an interval. Only the cleanup loop calls it.
func (l *Launcher) livePools(ctx context.Context, ids []string) (map[string]bool, error) {
	fresh := l.live != nil && time.Since(l.liveAt) < l.interval
	for _, id := range ids {
		fresh = fresh && l.live[id]
	}
	if fresh {
		return l.live, nil
	}
	comps, err := l.zk.ListComponents(ctx, zk.KindPool)
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for _, c := range comps {
		live[c.ID] = true
	}
	l.live, l.liveAt = live, time.Now()
	return live, nil
}

// doomed says why node n should be deleted now, or "". live holds the ids
// of the pool workers registered in ZooKeeper (nil if not listed: building
// nodes are then not judged).
//
// unlocked says that nobody else holds n's lock (the caller holds it, or
// has just looked): an in-use node nobody holds, and not detached, was
// left behind by whoever used it (a Zuul executor that died), and goes, as
// Nodepool's cleanup does.
func (l *Launcher) doomed(n *zk.Node, live map[string]bool, now time.Time, unlocked bool) string {
	age := now.Sub(zk.TimeOf(n.StateTime))
	switch n.State {
	case zk.NodeUsed:
		return "used"
	case zk.NodeInUse:
		if unlocked && !n.Detached() {
			return "in-use but nobody holds its lock: its user is gone"
		}
	case zk.NodeDeleting, zk.NodeFailed, zk.NodeAborted:
		return n.State
	case zk.NodeInit, zk.NodeBuilding:
		if live != nil && !live[n.Launcher] { // nil: not listed, not known
			return "orphaned by launcher " + n.Launcher
		}
		if unlocked && l.ownPool(n.Launcher) && now.Sub(zk.TimeOf(n.StateTime)) > abandonedAfter {
			return "building, ours, and nobody works on it: its launch was abandoned (its lock lost with a session, or a new node that could not be locked)"
		}
	case zk.NodeReady:
		lb := l.cfg.Label(firstType(n))
		if n.AllocatedTo == "" && lb != nil && lb.MaxReadyAge > 0 && age > lb.MaxReadyAge {
			return "past max-ready-age"
		}
	case zk.NodeHold:
		if n.HoldExpiration > 0 && age > time.Duration(n.HoldExpiration)*time.Second {
			return "hold expired"
		}
		if l.cfg.MaxHoldAge > 0 && age > l.cfg.MaxHoldAge {
			return "past max-hold-age"
		}
	}
	return ""
}

// abandonedAfter is how long a building node of this launcher's must have
// been unlocked and idle before it counts as abandoned: a node is claimed
// within moments of its creation, so this only guards that moment.
const abandonedAfter = 5 * time.Second

// wakeAfter wakes the cleanup loop after d (once, however often asked
// while a wake-up is pending).
func (l *Launcher) wakeAfter(ctx context.Context, d time.Duration) {
	l.mu.Lock()
	if l.wakePending {
		l.mu.Unlock()
		return
	}
	l.wakePending = true
	l.mu.Unlock()
	l.goTracked(func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		l.mu.Lock()
		l.wakePending = false
		l.mu.Unlock()
		select {
		case l.wake <- struct{}{}:
		default:
		}
	})
}

// ownPool reports whether id is one of this launcher's pool workers.
func (l *Launcher) ownPool(id string) bool {
	for _, pw := range l.pools {
		if pw.id == id {
			return true
		}
	}
	return false
}

func firstType(n *zk.Node) string {
	if len(n.Type) == 0 {
		return ""
	}
	return n.Type[0]
}

// deallocateIfLost returns a ready node to the pool when the request it was
// allocated to is gone (Zuul gave up on it before taking the node).
func (l *Launcher) deallocateIfLost(ctx context.Context, n *zk.Node) {
	// The request cache answers for requests that exist (the usual case,
	// on every pass, for every node between fulfilment and Zuul taking
	// it); only a request missing from it is looked up in ZooKeeper.
	if _, ok := l.requests.Get(n.AllocatedTo); ok {
		return
	}
	if _, err := l.zk.GetRequest(ctx, n.AllocatedTo); !errors.Is(err, zk.ErrNoNode) {
		return
	}
	if !l.claim(n.ID) {
		return
	}
	defer l.release(n.ID)
	lock, cur, err := l.zk.TryLockNode(ctx, n.ID)
	if err != nil {
		return
	}
	defer func() { _ = lock.Release(ctx) }()
	if cur.State != zk.NodeReady || cur.AllocatedTo != n.AllocatedTo {
		return
	}
	cur.AllocatedTo = ""
	if err := l.zk.UpdateNode(ctx, cur); err == nil {
		l.log.Info("node's request is gone; back to the pool", "node", n.ID, "request", n.AllocatedTo)
	}
}

// refreshIdle gives a ready, unallocated node a fresh token, so that it can
// be handed out without waiting for one. The caller has claimed id.
func (l *Launcher) refreshIdle(ctx context.Context, pw *poolWorker, id string) {
	defer l.release(id)
	lock, n, err := l.zk.TryLockNode(ctx, id)
	if err != nil {
		return
	}
	defer func() { _ = lock.Release(context.WithoutCancel(ctx)) }()
	if n.State != zk.NodeReady || n.AllocatedTo != "" {
		return
	}
	if err := l.refreshToken(ctx, pw, n); err != nil {
		l.log.Warn("refreshing idle node's token", "node", id, "err", err)
	}
}

// deleteNode deletes a node's namespace (waiting until it is gone) and then
// its record, if, locked and read again, it is still to be deleted (the
// cleanup pass decided on a record that may be a moment old). The caller
// has claimed id.
func (l *Launcher) deleteNode(ctx context.Context, pw *poolWorker, id string, live map[string]bool) {
	defer l.release(id)
	lock, n, err := l.zk.TryLockNode(ctx, id)
	if err != nil {
		// Someone else has it (look again as soon as they let go: they
		// may have died), or it is gone.
		l.wakeWhenReleased(ctx, zk.NodeLockDir(id), err)
		return
	}
	defer func() { _ = lock.Release(context.WithoutCancel(ctx)) }()
	why := l.doomed(n, live, time.Now(), true) // we hold its lock
	if why == "" {
		return
	}
	if n.State != zk.NodeDeleting {
		n.SetState(zk.NodeDeleting)
		if err := l.zk.UpdateNode(ctx, n); err != nil {
			l.log.Warn("marking node deleting", "node", id, "err", err)
			return
		}
	}
	// The node's quota (the record) is freed once its pods are gone: that
	// is when its cores and memory are. The namespace, deleted already,
	// is then waited for; should the launcher stop meanwhile, Kubernetes
	// finishes deleting it, and the leak sweep covers what it would not.
	// A buildset's shared namespace stays while another node uses it.
	ownNamespace := n.ExternalID != "" && !l.namespaceShared(ctx, n)
	if !ownNamespace {
		if err := l.revokeSharedToken(ctx, pw, n); err != nil {
			l.log.Warn("revoking the token of a node leaving a shared namespace; will retry", "node", id, "namespace", n.ExternalID, "err", err)
			return
		}
	}
	if ownNamespace {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		var err error
		if pw.inProject() {
			err = pw.deleteNodeObjects(dctx, n, n.ExternalID, true)
		} else {
			err = pw.driver.Delete(dctx, n.ExternalID, false)
			if err == nil {
				err = pw.driver.WaitPodsGone(dctx, n.ExternalID)
			}
		}
		cancel()
		if err != nil {
			l.metrics.KubeErrors.WithLabelValues("delete").Inc()
			l.log.Warn("deleting node's namespace; will retry", "node", id, "namespace", n.ExternalID, "err", err)
			return
		}
	}
	if err := l.zk.DeleteNode(ctx, n); err != nil {
		l.log.Warn("deleting node record", "node", id, "err", err)
		return
	}
	l.log.Info("deleted node", "node", id, "namespace", n.ExternalID, "why", why, "namespace_kept", n.ExternalID != "" && !ownNamespace)
	if ownNamespace {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		if err := pw.driver.Delete(dctx, n.ExternalID, true); err != nil && ctx.Err() == nil {
			l.metrics.KubeErrors.WithLabelValues("delete").Inc()
			l.log.Warn("waiting for a deleted node's namespace to go; the leak sweep will look again", "node", id, "namespace", n.ExternalID, "err", err)
		}
	}
}

// topUp launches nodes for labels with fewer unallocated ready or building
// nodes than min-ready, in the first pool that serves them and has quota.
func (l *Launcher) topUp(ctx context.Context, nodes []*zk.Node) error {
	for _, lb := range l.cfg.Labels {
		if lb.MinReady <= 0 {
			continue
		}
		have := 0
		for _, n := range nodes {
			if typeIs(n, lb.Name) && n.AllocatedTo == "" && (n.State == zk.NodeReady || n.State == zk.NodeBuilding || n.State == zk.NodeInit) {
				have++
			}
		}
		for ; have < lb.MinReady; have++ {
			var pw *poolWorker
			for _, p := range l.pools {
				if p.pool.Label(lb.Name) != nil && l.quotaShort(p, nodes, []string{lb.Name}) == "" {
					pw = p
					break
				}
			}
			if pw == nil {
				break // no quota now; a node going away wakes us
			}
			s, err := l.newNode(ctx, pw, lb.Name, nil)
			if err != nil {
				return err
			}
			nodes = append(nodes, s.node)
			l.goTracked(func() {
				defer l.release(s.node.ID)
				defer func() { _ = s.lock.Release(context.WithoutCancel(ctx)) }()
				_ = l.launch(ctx, pw, s.node, nil)
			})
		}
	}
	return nil
}

// sweep deletes namespaces carrying our provider labels whose node no
// longer exists. Namespaces are listed before nodes, so a namespace made for
// a node created meanwhile is always matched to its node.
func (l *Launcher) sweep(ctx context.Context) error {
	var errs []error
	for i := range l.cfg.Providers {
		p := &l.cfg.Providers[i]
		d := l.drivers[p.Name]
		if p.Driver == config.DriverOpenShiftPods {
			if err := l.sweepProjects(ctx, p); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		owned, err := d.List(ctx, p.Name)
		if err != nil {
			l.metrics.KubeErrors.WithLabelValues("list").Inc()
			errs = append(errs, err)
			continue
		}
		nodes, err := l.zk.ListNodeRecords(ctx)
		if err != nil {
			return err
		}
		byID := map[string]*zk.Node{}
		for _, n := range nodes {
			byID[n.ID] = n
		}
		for _, o := range owned {
			if o.Deleting || l.isBusy(o.NodeID) {
				continue
			}
			if n := byID[o.NodeID]; n != nil && (n.ExternalID == o.Namespace || n.State == zk.NodeBuilding || n.State == zk.NodeInit) {
				continue
			}
			if namespaceUsed(nodes, o.Namespace) {
				continue // a buildset's shared namespace, outliving its first node
			}
			if err := d.Delete(ctx, o.Namespace, false); err != nil {
				errs = append(errs, err)
				continue
			}
			l.metrics.LeakDeleted.WithLabelValues(p.Name).Inc()
			l.log.Info("deleted leaked namespace", "provider", p.Name, "namespace", o.Namespace, "node", o.NodeID)
		}
	}
	return errors.Join(errs...)
}

// updateGauges sets the node and request gauges, and returns the requests.
func (l *Launcher) updateGauges(nodes []*zk.Node) []*zk.Request {
	l.metrics.Nodes.Reset()
	for _, n := range nodes {
		if l.poolOf(n.Provider, n.Pool) != nil {
			l.metrics.Nodes.WithLabelValues(n.Provider, firstType(n), n.State).Inc()
		}
	}
	reqs := l.requests.Snapshot()
	l.metrics.Requests.Reset()
	for _, r := range reqs {
		l.metrics.Requests.WithLabelValues(r.State).Inc()
	}
	return reqs
}

// resetLostRequests puts pending requests that nobody holds back to
// requested: the launcher that was serving them stopped or died (its lock
// went with its session), and the nodes it was making are cleaned up as
// orphans. A request somebody serves is locked, so the try-lock skips it.
func (l *Launcher) resetLostRequests(ctx context.Context, reqs []*zk.Request) {
	for _, r := range reqs {
		if r.State != zk.RequestPending || l.isBusy(r.ID) {
			continue
		}
		lock, cur, err := l.zk.TryLockRequest(ctx, r.ID)
		if err != nil {
			l.wakeWhenReleased(ctx, zk.RequestLockDir(r.ID), err)
			continue
		}
		if cur.State == zk.RequestPending {
			cur.SetState(zk.RequestRequested)
			if err := l.zk.UpdateRequest(ctx, cur); err == nil {
				l.log.Info("request was pending with nobody serving it; requested again", "request", r.ID)
			}
		}
		_ = lock.Release(ctx)
	}
}

// sweepRequestLocks deletes the lock directories of requests that no longer
// exist (Zuul deletes a request once it has its nodes; the lock directory
// stays), as Nodepool's cleanup does. A directory somebody contends in is
// left alone.
func (l *Launcher) sweepRequestLocks(ctx context.Context) error {
	ids, err := l.zk.RequestLockIDs(ctx)
	if err != nil {
		return err
	}
	deleted := 0
	for _, id := range ids {
		if _, ok := l.requests.Get(id); ok || l.isBusy(id) {
			continue
		}
		ok, err := l.zk.DeleteStaleRequestLock(ctx, id)
		if err != nil {
			return err
		}
		if ok {
			deleted++
		}
	}
	if deleted > 0 {
		l.log.Info("deleted stale request locks", "count", deleted)
	}
	return nil
}
