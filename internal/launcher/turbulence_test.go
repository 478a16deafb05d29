package launcher

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

// waitUnready waits until the launcher's Ready says it owes writes.
func (r *rig) waitOwing() {
	r.t.Helper()
	r.waitFor("the launcher to owe ZooKeeper writes", func() bool {
		err := r.l.Ready(context.Background())
		return r.zk.Owed() > 0 && err != nil && strings.Contains(err.Error(), "owing")
	})
}

// cutOnce returns a hook that cuts the launcher off ZooKeeper the first
// time it runs, and a channel closed then.
func cutOnce(r *rig) (func(), <-chan struct{}) {
	var once sync.Once
	cutDone := make(chan struct{})
	return func() {
		once.Do(func() {
			r.cut.Cut()
			close(cutDone)
		})
	}, cutDone
}

// TestTurbulence cuts the launcher off ZooKeeper (its session kept) at each
// point where it owes a write: as a pod becomes ready (the node's ready
// record, the unlock, the fulfilment) and as a used node is deleted (the
// record's deletion, the unlock). Each time the launcher reports it owes
// writes, and once reconnected it finishes: the request is fulfilled once,
// and nothing is left behind.
func TestTurbulence(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(r *rig, cut func())
	}{
		{"mid-launch", func(r *rig, cut func()) {
			r.driver.setCreateHook(func(ctx context.Context, res kube.Resource) error {
				cut()
				return nil
			})
		}},
		{"mid-delete", func(r *rig, cut func()) {
			r.driver.mu.Lock()
			r.driver.podsHook = func(ctx context.Context, ns string) error {
				cut() // the record's deletion comes next
				return nil
			}
			r.driver.mu.Unlock()
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, unitConfig, rigOptions{})
			cut, cutDone := cutOnce(r)
			tt.setup(r, cut)
			_, session := r.zk.State()
			id := r.submit("pod", "ns")
			if tt.name == "mid-launch" {
				<-cutDone
				r.waitOwing()
				r.cut.Restore()
			}
			req := r.waitState(id, zk.RequestFulfilled)
			if len(req.Nodes) != 2 {
				t.Fatalf("request fulfilled with %v, want 2 nodes", req.Nodes)
			}
			r.accept(id)
			if tt.name == "mid-delete" {
				<-cutDone
				r.waitOwing()
				r.cut.Restore()
			}
			r.settled()
			if _, s := r.zk.State(); s != session {
				t.Errorf("session %#x after the outage, want %#x kept", s, session)
			}
			if n := len(r.driver.created); n != 2 {
				t.Errorf("%d namespaces created, want 2 (one per node, no relaunch)", n)
			}
			if err := r.l.Ready(t.Context()); err != nil {
				t.Errorf("Ready after recovery = %v", err)
			}
		})
	}
}

// TestTurbulenceSessionLost cuts the launcher off mid-launch for longer
// than its session: its locks are gone, so it abandons the launch, and
// once back (a new session) serves the request again from scratch: the
// request is fulfilled once, the abandoned node is deleted with its
// namespace.
func TestTurbulenceSessionLost(t *testing.T) {
	r := newRig(t, unitConfig, rigOptions{sessionTimeout: 2 * time.Second, interval: time.Second})
	cut, cutDone := cutOnce(r)
	expired := make(chan struct{})
	r.driver.setCreateHook(func(ctx context.Context, res kube.Resource) error {
		cut()
		select {
		case <-expired:
		case <-ctx.Done():
		}
		return nil
	})
	_, session := r.zk.State()
	id := r.submit("pod")
	<-cutDone
	// Wait for the server to expire the session: the Zuul stand-in sees
	// the request's lock go.
	r.waitFor("the launcher's session to expire", func() bool {
		ids, err := r.zuul.RequestLockIDs(t.Context())
		if err != nil || len(ids) == 0 {
			return false
		}
		lock, _, err := r.zuul.TryLockRequest(t.Context(), id)
		if err != nil {
			return false
		}
		_ = lock.Release(t.Context())
		return true
	})
	r.driver.setCreateHook(nil)
	close(expired)
	r.cut.Restore()
	r.waitState(id, zk.RequestFulfilled)
	if _, s := r.zk.State(); s == session {
		t.Fatalf("session %#x kept; the test wanted it expired", s)
	}
	r.accept(id)
	r.settled()
}

// TestTurbulenceZooKeeperRestart stops the ZooKeeper server (one of the
// test's own, not a shared one) in the middle of a burst and starts it
// again on the same data: the sessions survive (ZooKeeper restores them),
// and every request is fulfilled exactly once, nothing left behind.
func TestTurbulenceZooKeeperRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	zkp, err := testenv.StartZooKeeper(ctx, dir, 0)
	if err != nil {
		t.Skipf("no ZooKeeper to start: %v", err)
	}
	t.Cleanup(func() { _ = zkp.Stop() })
	_, port, _ := strings.Cut(zkp.Addr(), ":")
	r := newRig(t, strings.Replace(unitConfig, "max-servers: 2", "max-servers: 100", 1), rigOptions{servers: zkp.Addr(), sessionTimeout: 30 * time.Second})
	_, session := r.zk.State()
	const n = 20
	half := make(chan struct{})
	var created sync.Once
	var count atomic.Int32
	r.driver.setCreateHook(func(ctx context.Context, res kube.Resource) error {
		if count.Add(1) == n/2 {
			created.Do(func() { close(half) })
		}
		return nil
	})
	var ids []string
	for range n {
		ids = append(ids, r.submit("ns"))
	}
	<-half
	if err := zkp.Stop(); err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	if zkp, err = testenv.StartZooKeeper(ctx, dir, p); err != nil {
		t.Fatalf("restarting ZooKeeper: %v", err)
	}
	restarted := time.Now()
	for _, id := range ids {
		r.waitState(id, zk.RequestFulfilled)
	}
	t.Logf("all %d requests fulfilled %v after ZooKeeper was back", n, time.Since(restarted).Round(time.Millisecond))
	if _, s := r.zk.State(); s != session {
		t.Errorf("launcher session %#x after the restart, want %#x kept", s, session)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		for _, nid := range r.request(id).Nodes {
			if seen[nid] {
				t.Errorf("node %s given to two requests", nid)
			}
			seen[nid] = true
		}
		r.accept(id)
	}
	r.settled()
}
