package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

// The launcher under production turbulence, driven exactly as Zuul drives
// it: each case ends with every request fulfilled exactly once, nothing
// leaked (node records, namespaces, request-lock znodes), and logs the time
// the launcher took to recover.

// waitNothingLeft waits until provider has no node record, no namespace
// and no request-lock znode left in the ZooKeeper zkc talks to.
func waitNothingLeft(t testing.TB, ctx context.Context, env *testenv.Env, zkc *zk.Client, provider string) {
	t.Helper()
	nodesChanged := zkc.WatchNodes(ctx)
	sel := kube.ProviderSelector(provider).String()
	for {
		nodes, err := zkc.ListNodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		nsl, err := env.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			t.Fatal(err)
		}
		locks, err := zkc.RequestLockIDs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) == 0 && len(nsl.Items) == 0 && len(locks) == 0 {
			return
		}
		select {
		case <-nodesChanged:
		case <-time.After(time.Second): // namespaces and lock sweeps make no node event
		case <-ctx.Done():
			t.Fatalf("%d node records, %d namespaces and %d request locks left", len(nodes), len(nsl.Items), len(locks))
		}
	}
}

// waitNodes waits until cond holds for the node records that zkc lists.
func waitNodes(t testing.TB, ctx context.Context, zkc *zk.Client, what string, cond func([]*zk.Node) bool) []*zk.Node {
	t.Helper()
	changed := zkc.WatchNodes(ctx)
	for {
		nodes, err := zkc.ListNodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cond(nodes) {
			return nodes
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

// TestLauncherTurbulenceZooKeeperRestart stops the ZooKeeper server (one
// of the test's own: the shared one is never restarted) while the launcher
// builds a burst of pod nodes, and starts it again on the same data, at
// once and after 60 s down (longer than the launcher's session timeout:
// the restarted server restores the sessions it had): the launcher keeps
// its session, says it is not ready while cut off, and serves every request
// once.
func TestLauncherTurbulenceZooKeeperRestart(t *testing.T) {
	for _, tc := range []struct {
		name string
		down time.Duration
	}{{"restart", 0}, {"down-60s", 60 * time.Second}} {
		t.Run(tc.name, func(t *testing.T) { zooKeeperRestart(t, tc.down) })
	}
}

func zooKeeperRestart(t *testing.T, down time.Duration) {
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	dir := t.TempDir()
	zkp, err := testenv.StartZooKeeper(ctx, dir, 0)
	if err != nil {
		t.Fatalf("starting a ZooKeeper of the test's own: %v", err)
	}
	t.Cleanup(func() { _ = zkp.Stop() })
	le := startLauncherSetup(t, launcherSetup{
		makeConfig: func(env *testenv.Env, servers, provider string) string {
			return launcherConfig(env, servers, provider, 0)
		},
		zooKeeper:      zkp.Addr(),
		sessionTimeout: 30 * time.Second,
	})
	const n = 10
	var ids []string
	for range n {
		ids = append(ids, le.zuul.Submit([]string{"pod"}, 100, nil))
	}
	waitNodes(t, ctx, le.zk, "the launcher to be building the burst's nodes", func(nodes []*zk.Node) bool {
		ready := 0
		for _, n := range nodes {
			if n.State == zk.NodeReady {
				ready++
			}
		}
		return ready >= 2 && ready < n
	})
	_, session := le.zk.State()
	if err := zkp.Stop(); err != nil {
		t.Fatal(err)
	}
	if down > 0 {
		// The outage itself, not a wait for a condition.
		select {
		case <-time.After(down):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		if err := le.l.Ready(ctx); err == nil {
			t.Errorf("launcher Ready after ZooKeeper was down %v = nil, want an error", down)
		} else {
			t.Logf("launcher Ready while ZooKeeper is down: %v", err)
		}
	}
	_, port, _ := strings.Cut(zkp.Addr(), ":")
	p, _ := strconv.Atoi(port)
	if zkp, err = testenv.StartZooKeeper(ctx, dir, p); err != nil {
		t.Fatalf("restarting ZooKeeper: %v", err)
	}
	back := time.Now()
	le.zuul.WaitConnected(ctx)
	reqs := le.zuul.WaitFulfilled(ctx, ids)
	t.Logf("all %d requests fulfilled %v after ZooKeeper was back", n, time.Since(back).Round(time.Millisecond))
	if _, s := le.zk.State(); s != session {
		t.Errorf("launcher session %#x after the restart, want %#x kept", s, session)
	}
	for _, ret := range le.zuul.AcceptOnce(reqs) {
		ret()
	}
	waitNothingLeft(t, ctx, le.env, le.zk, le.provider)
	if err := le.l.Ready(ctx); err != nil {
		t.Errorf("launcher Ready after recovery = %v", err)
	}
}

// TestLauncherTurbulenceKill SIGKILLs the only launcher while it builds a
// burst of pod nodes and starts it again: the new process takes over what
// the dead one held once its session is gone, and every request is
// fulfilled once, with nothing leaked.
func TestLauncherTurbulenceKill(t *testing.T) {
	env := testenv.Cluster(t)
	bin := kubepoolBinary(t)
	provider := "e2e-" + randHex(3)
	servers := env.ZooKeeper + "/kubepool-e2e-" + randHex(4)
	cfg := filepath.Join(t.TempDir(), "nodepool.yaml")
	const sessionTimeout = 4 // seconds: how long the dead launcher's locks outlive it
	text := launcherConfig(env, servers, provider, 0) + fmt.Sprintf("zookeeper-timeout: %d\n", sessionTimeout)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	zkc, err := zk.Connect(ctx, servers, zk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer zkc.Close()
	z := newZuul(t, servers)
	t.Cleanup(func() { deleteOwned(env, provider) })

	a := startLauncherProcess(t, bin, cfg, env.Kubeconfig, "launcher-a")
	const n = 10
	var ids []string
	for range n {
		ids = append(ids, z.Submit([]string{"pod"}, 100, nil))
	}
	waitNodes(t, ctx, zkc, "launcher-a to be building the burst's nodes", func(nodes []*zk.Node) bool {
		building, ready := 0, 0
		for _, n := range nodes {
			switch n.State {
			case zk.NodeBuilding:
				building++
			case zk.NodeReady:
				ready++
			}
		}
		return building > 0 && ready >= 1
	})
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.done
	sessionEnded := deadSessionEnd(t, ctx, zkc)
	restarted := time.Now()
	a2 := startLauncherProcess(t, bin, cfg, env.Kubeconfig, "launcher-a")
	reqs := z.WaitFulfilled(ctx, ids)
	done := time.Now()
	msg := fmt.Sprintf("all %d requests fulfilled %v after the restart", n, done.Sub(restarted).Round(time.Millisecond))
	select {
	case <-sessionEnded.done:
		msg += fmt.Sprintf(", %v after the dead launcher's session ended (timeout %d s)", done.Sub(sessionEnded.at).Round(time.Millisecond), sessionTimeout)
	default:
	}
	t.Log(msg)
	for _, ret := range z.AcceptOnce(reqs) {
		ret()
	}
	waitNothingLeft(t, ctx, env, zkc, provider)
	if err := a2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a2.done:
		if a2.err != nil {
			t.Errorf("launcher after SIGTERM: %v, want a clean exit", a2.err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("launcher still running 30 s after SIGTERM")
	}
}

// sessionEnd is when a session was seen to end (at), once done is closed.
type sessionEnd struct {
	done chan struct{}
	at   time.Time
}

// deadSessionEnd finds a request whose lock a dead launcher still holds
// and reports when its holder's session ends: from then on the launcher's
// successor can act on what the dead one held. If no request is locked,
// done is never closed.
func deadSessionEnd(t testing.TB, ctx context.Context, zkc *zk.Client) *sessionEnd {
	t.Helper()
	end := &sessionEnd{done: make(chan struct{})}
	reqs, err := zkc.ListRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		lock, _, err := zkc.TryLockRequest(ctx, r.ID)
		if err == nil {
			_ = lock.Release(ctx)
			continue
		}
		var le *zk.LockedError
		if errors.As(err, &le) && le.Holder != nil {
			released := zkc.Released(ctx, zk.RequestLockDir(r.ID), le.Holder)
			go func() {
				<-released
				end.at = time.Now()
				close(end.done)
			}()
			break
		}
	}
	return end
}

// deleteOwned deletes whatever namespaces provider's nodes left behind.
func deleteOwned(env *testenv.Env, provider string) {
	d, err := kube.NewDriver(env.RESTConfig)
	if err != nil {
		return
	}
	owned, _ := d.List(context.Background(), provider)
	for _, o := range owned {
		_ = d.Delete(context.Background(), o.Namespace, false)
	}
}

// TestLauncherTurbulenceFull asks for two pods of a label whose memory
// request fits the cluster's node once but not twice: the second pod is
// Unschedulable until the first node is returned. The launcher waits (the
// node record says why), and fulfils the request with that same node once
// the first is gone, rather than failing it.
func TestLauncherTurbulenceFull(t *testing.T) {
	env := testenv.Cluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	mem := halfFreeMemory(t, ctx, env)
	le := startLauncherWith(t, func(env *testenv.Env, servers, provider string) string {
		return zkServersYAML(servers) + fmt.Sprintf(`
labels:
  - name: big
providers:
  - name: %s
    driver: kubernetes
    context: kubepool-dev
    launch-retries: 2
    boot-timeout: 300
    pools:
      - name: main
        labels:
          - name: big
            type: pod
            image: %s
            memory: %dMi
`, provider, env.MachineImage, mem)
	}, nil)
	first := le.zuul.Submit([]string{"big"}, 100, nil)
	firstReq := le.zuul.WaitFulfilled(ctx, []string{first})
	returnFirst := le.zuul.AcceptOnce(firstReq)

	second := le.zuul.Submit([]string{"big"}, 100, nil)
	nodes := waitNodes(t, ctx, le.zk, "the second pod to wait, unschedulable", func(nodes []*zk.Node) bool {
		for _, n := range nodes {
			if n.AllocatedTo == second && strings.Contains(waitingOf(n), "Unschedulable") {
				return true
			}
		}
		return false
	})
	var waiting *zk.Node
	for _, n := range nodes {
		if n.AllocatedTo == second {
			waiting = n
		}
	}
	t.Logf("node %s waits: %s", waiting.ID, waitingOf(waiting))
	if req, _, err := le.zuul.GetJSON(zuulRequestRoot + "/" + second); err != nil || req["state"] != "pending" {
		t.Fatalf("second request while its pod waits = %v (%v), want pending", req["state"], err)
	}
	freed := time.Now()
	for _, ret := range returnFirst {
		ret()
	}
	secondReq := le.zuul.WaitFulfilled(ctx, []string{second})
	t.Logf("second request fulfilled %v after the first node was returned", time.Since(freed).Round(time.Millisecond))
	if got := secondReq[second]["nodes"].([]any); len(got) != 1 || got[0] != waiting.ID {
		t.Errorf("second request fulfilled with %v, want the node that waited, %s", got, waiting.ID)
	}
	for _, ret := range le.zuul.AcceptOnce(secondReq) {
		ret()
	}
	waitNothingLeft(t, ctx, le.env, le.zk, le.provider)
}

// waitingOf returns what a node's driver_data says its pod waits for.
func waitingOf(n *zk.Node) string {
	dd, _ := n.DriverData.(map[string]any)
	w, _ := dd["waiting"].(string)
	return w
}

// halfFreeMemory returns, in MiB, 3/5 of the memory the cluster's node has
// not promised to pods: one pod asking for it fits, two do not.
func halfFreeMemory(t testing.TB, ctx context.Context, env *testenv.Env) int64 {
	t.Helper()
	nodes, err := env.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 1 {
		t.Skipf("the cluster has %d nodes; this test fills one", len(nodes.Items))
	}
	node := nodes.Items[0]
	free := node.Status.Allocatable.Memory().Value()
	pods, err := env.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node.Name).String()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, c := range p.Spec.Containers {
			if q, ok := c.Resources.Requests[corev1.ResourceMemory]; ok {
				free -= q.Value()
			}
		}
	}
	mi := free * 3 / 5 >> 20
	if mi < 256 {
		t.Skipf("only %d MiB of memory free on node %s", free>>20, node.Name)
	}
	return mi
}
