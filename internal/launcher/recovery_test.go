package launcher

import (
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/zk"
)

// TestRecoveryFromDeadHolder: a launcher died (its session closed) while
// it held a node it was deleting and a request it was serving. The
// launcher acts as soon as the locks go, not at its next periodic pass
// (an hour away here): the node is deleted, the request served.
func TestRecoveryFromDeadHolder(t *testing.T) {
	var dead *zk.Client
	var nodeID, reqID string
	r := newRig(t, unitConfig, rigOptions{before: func(r *rig) {
		ctx := r.t.Context()
		dead = connectZK(r.t, r.servers, zk.Options{})
		n := &zk.Node{Provider: "k8s", Pool: "main", Type: []string{"ns"}, State: zk.NodeDeleting, Launcher: r.l.pools[0].id, ExternalID: "main-dying"}
		if err := dead.CreateNode(ctx, n); err != nil {
			r.t.Fatal(err)
		}
		nodeID = n.ID
		r.driver.namespaces["main-dying"] = kube.Resource{Namespace: "main-dying", Owner: kube.Owner{Provider: "k8s", NodeID: n.ID}}
		if _, _, err := dead.TryLockNode(ctx, n.ID); err != nil {
			r.t.Fatal(err)
		}
		reqID = r.submit("ns")
		_, req, err := dead.TryLockRequest(ctx, reqID)
		if err != nil {
			r.t.Fatal(err)
		}
		if err := dead.MarkPending(ctx, req); err != nil {
			r.t.Fatal(err)
		}
	}})
	r.waitFor("the launcher to watch both locks", func() bool {
		r.l.mu.Lock()
		defer r.l.mu.Unlock()
		return r.l.watching[zk.NodeLockDir(nodeID)] && r.l.watching[zk.RequestLockDir(reqID)]
	})
	if got := r.request(reqID); got.State != zk.RequestPending {
		t.Fatalf("request is %s while the dead launcher holds it, want pending", got.State)
	}
	start := time.Now()
	dead.Close()
	r.waitState(reqID, zk.RequestFulfilled)
	r.waitFor("the dead launcher's node to go", func() bool {
		_, err := r.zuul.GetNode(t.Context(), nodeID)
		return err != nil
	})
	t.Logf("recovered %v after the dead launcher's session closed", time.Since(start).Round(time.Millisecond))
	r.accept(reqID)
	r.settled()
}

// TestStaleRequestLocksSwept: the lock directories of requests Zuul has
// deleted are removed by the periodic pass.
func TestStaleRequestLocksSwept(t *testing.T) {
	r := newRig(t, unitConfig, rigOptions{interval: 500 * time.Millisecond})
	for range 3 {
		id := r.submit("ns")
		r.waitState(id, zk.RequestFulfilled)
		r.accept(id)
	}
	r.settled()
	r.noRequestLocks()
}
