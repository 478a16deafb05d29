package launcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kubepool/kubepool/internal/config"
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

// slot is one node of a request being fulfilled.
type slot struct {
	node *zk.Node
	lock *zk.Lock
	warm bool // taken from the ready pool, not launched
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
						l.decline(ctx, pw, lock, cur, why)
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

func (l *Launcher) decline(ctx context.Context, pw *poolWorker, lock *zk.Lock, r *zk.Request, why string) {
	defer func() { _ = lock.Release(ctx) }()
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

// assign marks r pending and gives every label a node: a warm one locked and
// allocated to r, or a new one created in state building, locked.
func (l *Launcher) assign(ctx context.Context, pw *poolWorker, r *zk.Request, warm []*zk.Node) ([]*slot, error) {
	// A request that needs nodes launched is marked pending, as Nodepool
	// does; one served from the ready pool alone is fulfilled straight
	// away (we hold its lock throughout), which saves Zuul a write's wait.
	for _, w := range warm {
		if w == nil && r.State != zk.RequestPending {
			if err := l.zk.MarkPending(ctx, r); err != nil {
				return nil, err
			}
			break
		}
	}
	slots := make([]*slot, 0, len(r.NodeTypes))
	unwind := func() {
		for _, s := range slots {
			if s.warm {
				s.node.AllocatedTo = ""
				_ = l.zk.UpdateNode(ctx, s.node)
			} else {
				s.node.SetState(zk.NodeFailed)
				_ = l.zk.UpdateNode(ctx, s.node)
			}
			_ = s.lock.Release(ctx)
			l.release(s.node.ID)
		}
	}
	for i, lb := range r.NodeTypes {
		if w := warm[i]; w != nil { // claimed by take
			lock, n, err := l.zk.TryLockNode(ctx, w.ID)
			if err == nil && n.State == zk.NodeReady && n.AllocatedTo == "" {
				n.AllocatedTo = r.ID
				n.Requestor, n.TenantName = r.Requestor, r.TenantName
				if err := l.zk.UpdateNode(ctx, n); err == nil {
					slots = append(slots, &slot{node: n, lock: lock, warm: true})
					continue
				}
			}
			if lock != nil {
				_ = lock.Release(ctx)
			}
			l.release(w.ID)
		}
		s, err := l.newNode(ctx, pw, lb, r)
		if err != nil {
			unwind()
			return nil, err
		}
		slots = append(slots, s)
	}
	return slots, nil
}

// newNode creates and locks a building node of label for r (nil for a
// min-ready node).
func (l *Launcher) newNode(ctx context.Context, pw *poolWorker, label string, r *zk.Request) (*slot, error) {
	n := &zk.Node{
		Provider: pw.provider.Name, Pool: pw.pool.Name, Type: []string{label},
		Launcher: pw.id, Cloud: "kubernetes", Attributes: pw.pool.NodeAttributes,
		Resources: resourcesMap(pw.pool.Label(label).Resources()),
	}
	if r != nil {
		n.AllocatedTo, n.Requestor, n.TenantName = r.ID, r.Requestor, r.TenantName
	}
	n.SetState(zk.NodeBuilding)
	if err := l.zk.CreateNode(ctx, n); err != nil {
		return nil, fmt.Errorf("creating node for label %q: %w", label, err)
	}
	l.addInflight(n.ID, n)
	l.claim(n.ID)
	lock, locked, err := l.zk.TryLockNode(ctx, n.ID)
	if err != nil {
		// Nobody else knows of the node yet: take it back rather than
		// leave an idle building node behind (the cleanup would find it,
		// but only later).
		if derr := l.zk.DeleteNode(context.WithoutCancel(ctx), n); derr != nil {
			l.log.Warn("deleting a new node that could not be locked", "node", n.ID, "err", derr)
		}
		l.dropInflight(n.ID)
		l.release(n.ID)
		return nil, fmt.Errorf("locking new node %s: %w", n.ID, err)
	}
	return &slot{node: locked, lock: lock}, nil
}

// fulfil launches the request's new nodes (warm ones get a fresh token),
// then fulfils the request, or, if a node could not be made, declines it
// and lets the nodes that were made go back to the pool.
func (l *Launcher) fulfil(ctx context.Context, pw *poolWorker, reqLock *zk.Lock, r *zk.Request, slots []*slot, start time.Time) {
	defer l.release(r.ID)
	defer func() { _ = reqLock.Release(context.WithoutCancel(ctx)) }()
	errs := make([]error, len(slots))
	source := "warm"
	all := make([]int, len(slots))
	for i, s := range slots {
		all[i] = i
		if !s.warm {
			source = "launched"
		}
	}
	l.prepareSlots(ctx, pw, r, slots, all, errs)
	// A node that failed all its launch attempts stays failed (the cleanup
	// deletes it, its reason in its record) and the request gets one fresh
	// node in its place, once: a failure that is not the label's fault
	// (a node lost, a kubelet hiccup) does not cost the job, and one that
	// is (a missing image) ends in a decline after two nodes, not a loop.
	if ctx.Err() == nil && !reqLock.Lost() {
		var again []int
		for i, s := range slots {
			if errs[i] == nil || s.warm {
				continue
			}
			label := firstType(s.node)
			if why := l.quotaShort(pw, l.nodesView(), []string{label}); why != "" {
				l.log.Info("no fresh node for the request: quota", "request", r.ID, "label", label, "why", why)
				continue
			}
			_ = s.lock.Release(context.WithoutCancel(ctx))
			l.release(s.node.ID)
			ns, err := l.newNode(ctx, pw, label, r)
			if err != nil {
				// The slot stays as it was; releasing its lock again below
				// is harmless.
				errs[i] = errors.Join(errs[i], err)
				continue
			}
			l.log.Info("launching a fresh node for the request", "request", r.ID, "label", label, "failed_node", s.node.ID, "node", ns.node.ID)
			slots[i], errs[i] = ns, nil
			again = append(again, i)
		}
		l.prepareSlots(ctx, pw, r, slots, again, errs)
	}
	if reqLock.Lost() {
		// The session ended while we worked: the request's lock and the
		// nodes' locks went with it. Whatever we would write now could
		// contradict another owner; the request is requested again by
		// whoever finds it pending and unlocked, and our nodes, unlocked
		// and building, are cleaned up.
		l.log.Warn("abandoning request: its lock was lost with the ZooKeeper session", "request", r.ID)
		for _, s := range slots {
			l.release(s.node.ID)
		}
		return
	}
	ids := make([]string, len(slots))
	for i, s := range slots {
		ids[i] = s.node.ID
	}
	unlockAll := func() {
		for _, s := range slots {
			_ = s.lock.Release(context.WithoutCancel(ctx))
			l.release(s.node.ID)
		}
	}
	if err := errors.Join(errs...); err != nil {
		l.giveBack(ctx, slots, errs)
		unlockAll()
		if ctx.Err() != nil {
			return
		}
		l.decline(ctx, pw, reqLock, r, err.Error())
		return
	}
	// As Nodepool does, the nodes are unlocked (still allocated to the
	// request) before the request is fulfilled, so that Zuul can lock them
	// as soon as it sees it fulfilled.
	unlockAll()
	if err := l.zk.Fulfil(ctx, r, ids); err != nil {
		// Zuul cancelled the request (deleted it) while we worked; the
		// cleanup worker returns its ready nodes to the pool.
		l.log.Info("request gone before it was fulfilled", "request", r.ID, "err", err)
		return
	}
	l.metrics.FulfilSeconds.WithLabelValues(source).Observe(time.Since(start).Seconds())
	l.log.Info("fulfilled request", "request", r.ID, "nodes", ids, "labels", r.NodeTypes, "source", source, "took", time.Since(start).Round(time.Millisecond))
}

// prepareSlots makes the slots at idx usable, side by side: warm nodes get
// a fresh token if theirs has aged, new nodes are launched. errs[i] is set
// for slot i.
func (l *Launcher) prepareSlots(ctx context.Context, pw *poolWorker, r *zk.Request, slots []*slot, idx []int, errs []error) {
	var wg sync.WaitGroup
	for _, i := range idx {
		s := slots[i]
		wg.Go(func() {
			if s.warm {
				if !tokenFresh(s.node, pw.provider.TokenExpiration) {
					errs[i] = l.refreshToken(ctx, pw, s.node)
				}
			} else {
				errs[i] = l.launch(ctx, pw, s.node, r)
			}
		})
	}
	wg.Wait()
}

// giveBack deallocates the slots' nodes that became ready, so that they
// serve another request; failed ones were already marked failed.
func (l *Launcher) giveBack(ctx context.Context, slots []*slot, errs []error) {
	for i, s := range slots {
		if errs[i] != nil || s.node.State != zk.NodeReady {
			continue
		}
		s.node.AllocatedTo = ""
		if err := l.zk.UpdateNode(context.WithoutCancel(ctx), s.node); err != nil {
			l.log.Warn("returning node to the pool", "node", s.node.ID, "err", err)
		}
	}
}

// usage is quota in Nodepool's units.
type usage struct {
	servers int64
	cores   float64
	ram     int64
	other   map[string]float64
}

func (u *usage) add(r config.Resources) {
	u.servers += r.Instances
	u.cores += r.Cores
	u.ram += r.RAM
	for k, v := range r.Extra {
		if u.other == nil {
			u.other = map[string]float64{}
		}
		u.other[k] += v
	}
}

func (u *usage) addRecord(m map[string]any) {
	num := func(k string) float64 {
		f, _ := m[k].(float64)
		return f
	}
	u.servers++
	u.cores += num("cores")
	u.ram += int64(num("ram"))
	for k, v := range m {
		if k == "cores" || k == "ram" || k == "instances" {
			continue
		}
		if f, ok := v.(float64); ok {
			if u.other == nil {
				u.other = map[string]float64{}
			}
			u.other[k] += f
		}
	}
}

type limits struct {
	servers, cores, ram int64
	other               map[string]int64
}

func limitsOf(servers, cores, ram int64, other map[string]int64) limits {
	return limits{servers, cores, ram, other}
}

// exceeds says how u plus base goes over lim, or "".
func (u usage) exceeds(lim limits, base usage) string {
	if base.servers+u.servers > lim.servers {
		return fmt.Sprintf("max-servers %d", lim.servers)
	}
	if base.cores+u.cores > float64(lim.cores) {
		return fmt.Sprintf("max-cores %d", lim.cores)
	}
	if base.ram+u.ram > lim.ram {
		return fmt.Sprintf("max-ram %d", lim.ram)
	}
	for k, max := range lim.other {
		if base.other[k]+u.other[k] > float64(max) {
			return fmt.Sprintf("max-resources %s %d", k, max)
		}
	}
	return ""
}

// pass is what one pass over the requests has looked up: the node listing
// (nil until a request needs it) and the quota its nodes use, to which the
// pass adds what it reserves. Counted once per pass, not once per request:
// a queue of thousands would otherwise cost thousands of node counts.
type pass struct {
	nodes []*zk.Node
	tally *tally
}

// tally is the quota a pool's and its provider's nodes use.
type tally struct{ pool, provider usage }

// tallyOf counts the quota pw's pool and provider use in nodes.
func tallyOf(pw *poolWorker, nodes []*zk.Node) *tally {
	t := &tally{}
	for _, n := range nodes {
		t.addNode(pw, n)
	}
	return t
}

func (t *tally) addNode(pw *poolWorker, n *zk.Node) {
	if n.Provider != pw.provider.Name || n.State == zk.NodeDeleted {
		return
	}
	t.provider.addRecord(n.Resources)
	if n.Pool == pw.pool.Name {
		t.pool.addRecord(n.Resources)
	}
}

// short says why launching labels on top of t would exceed the pool's or
// the provider's quota, or "".
func (pw *poolWorker) short(t *tally, labels []string) string {
	if len(labels) == 0 {
		return ""
	}
	var need usage
	for _, lb := range labels {
		need.add(pw.pool.Label(lb).Resources())
	}
	if why := need.exceeds(limitsOf(pw.pool.MaxServers, pw.pool.MaxCores, pw.pool.MaxRAM, pw.pool.MaxResources), t.pool); why != "" {
		return "pool " + why
	}
	if why := need.exceeds(limitsOf(pw.provider.MaxServers, pw.provider.MaxCores, pw.provider.MaxRAM, pw.provider.MaxResources), t.provider); why != "" {
		return "provider " + why
	}
	return ""
}

// quotaShort says why launching labels now would exceed the pool's or the
// provider's quota, counting every node they hold, or "".
func (l *Launcher) quotaShort(pw *poolWorker, nodes []*zk.Node, labels []string) string {
	if len(labels) == 0 {
		return ""
	}
	return pw.short(tallyOf(pw, nodes), labels)
}

func resourcesMap(r config.Resources) map[string]any {
	out := map[string]any{}
	for k, v := range r.Map() {
		out[k] = v
	}
	return out
}
