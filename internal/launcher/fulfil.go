package launcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kubepool/kubepool/internal/zk"
)

// Fulfilment: once take has decided to serve a request (and locked it),
// assign gives each of its labels a node (a warm one, or a new building
// record), and fulfil launches the new ones, retries a failed one once, and
// fulfils or declines the request.

// slot is one node of a request being fulfilled.
type slot struct {
	node *zk.Node
	lock *zk.Lock
	warm bool // taken from the ready pool, not launched
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
		l.decline(ctx, pw, r, err.Error())
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
				if errs[i] == nil {
					errs[i] = l.grantWarm(ctx, pw, s.node, r)
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
