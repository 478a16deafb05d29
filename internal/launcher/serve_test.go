package launcher

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/zk"
)

const unitConfig = `
zookeeper-servers: [{host: 127.0.0.1}]
labels: [{name: pod}, {name: ns}, {name: huge}]
providers:
  - name: k8s
    driver: kubernetes
    context: c
    launch-retries: 2
    pools:
      - name: main
        max-servers: 2
        labels:
          - {name: pod, type: pod, image: "example.org/m:1", cpu: 1, memory: 64, username: ci}
          - {name: ns, type: namespace}
          - {name: huge, type: pod, image: "example.org/m:1", cpu: 1, memory: 64, extra-resources: {gpu: 3}}
        max-resources: {gpu: 2}
`

func TestServeFulfilsRequest(t *testing.T) {
	r := newRig(t, unitConfig, rigOptions{})
	id := r.submit("pod", "ns")
	req := r.waitState(id, zk.RequestFulfilled)
	if len(req.Nodes) != 2 {
		t.Fatalf("fulfilled request has nodes %v, want 2", req.Nodes)
	}
	nodes := r.accept(id)
	pod, ns := nodes[0], nodes[1]
	if pod.ConnectionType != zk.ConnectionKubectl || pod.Hostname == "" || pod.AllocatedTo != id {
		t.Errorf("pod node = %+v, want an in-use kubectl node allocated to %s", pod, id)
	}
	kc, err := pod.KubeConnection()
	if err != nil || kc.Pod != "pod" || kc.Token == "" || kc.Namespace != pod.ExternalID {
		t.Errorf("pod node connection = %+v, %v", kc, err)
	}
	if pod.Username != "ci" {
		t.Errorf("pod node username = %q, want the label's, ci", pod.Username)
	}
	if ns.ConnectionType != zk.ConnectionNamespace {
		t.Errorf("ns node connection type = %q, want namespace", ns.ConnectionType)
	}
	// The pod's shape comes from nodepod.
	var spec kube.Resource
	for _, c := range r.driver.created {
		if c.Kind == kube.KindPod {
			spec = c
		}
	}
	if spec.Pod.RestartPolicy != "Never" || spec.Pod.Containers[0].Image != "example.org/m:1" {
		t.Errorf("pod created with spec %+v", spec.Pod)
	}
	// Used nodes are deleted, namespaces and records; the request lock
	// znode goes with the request.
	r.settled()
}

func TestServeDeclinesWhatItCannotServe(t *testing.T) {
	r := newRig(t, unitConfig, rigOptions{})
	for _, labels := range [][]string{{"other"}, {"huge"}, {"pod", "pod", "pod"}} {
		id := r.submit(labels...)
		req := r.waitState(id, zk.RequestFailed)
		if len(req.DeclinedBy) != 1 {
			t.Errorf("request for %v declined by %v, want this launcher's one pool", labels, req.DeclinedBy)
		}
		if err := r.zuul.DeleteRequest(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(r.driver.created); n != 0 {
		t.Errorf("%d namespaces created for requests the pool cannot serve", n)
	}
}

// A label whose launches fail on something permanent gets its retries and
// one fresh node, then the request fails; the failed node records the
// first cause.
func TestServeFailedLaunchRecordsFirstCause(t *testing.T) {
	r := newRig(t, unitConfig, rigOptions{})
	var calls atomic.Int32
	r.driver.setCreateHook(func(ctx context.Context, res kube.Resource) error {
		if calls.Add(1) == 1 {
			return &kube.PodError{Namespace: res.Namespace, Pod: "pod", Reason: "ErrImagePull", Message: "manifest unknown"}
		}
		return &kube.PodError{Namespace: res.Namespace, Pod: "pod", Reason: "Unschedulable", Message: "0/1 nodes are available"}
	})
	// Failed nodes are kept (their deletion waits) until the test has read
	// them.
	hold := make(chan struct{})
	r.driver.mu.Lock()
	r.driver.podsHook = func(ctx context.Context, ns string) error {
		select {
		case <-hold:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.driver.mu.Unlock()
	id := r.submit("pod")
	r.waitState(id, zk.RequestFailed)
	defer close(hold)
	// launch-retries 2 on the first node, 2 on the fresh one.
	if got := calls.Load(); got != 4 {
		t.Errorf("Create called %d times, want 4 (two nodes, two attempts each)", got)
	}
	nodes := r.nodes()
	if len(nodes) == 0 {
		t.Fatalf("no failed node left to say why")
	}
	dd, _ := nodes[0].DriverData.(map[string]any)
	if s, _ := dd["error"].(string); !strings.Contains(s, "ErrImagePull") {
		t.Errorf("first failed node's error = %q, want the first cause (ErrImagePull)", s)
	}
	if s, _ := dd["last_error"].(string); !strings.Contains(s, "Unschedulable") {
		t.Errorf("first failed node's last_error = %q, want the last attempt's (Unschedulable)", s)
	}
	if req := r.request(id); req.State != zk.RequestFailed {
		t.Errorf("request = %s, want failed", req.State)
	}
	if err := r.zuul.DeleteRequest(t.Context(), id); err != nil {
		t.Fatal(err)
	}
}

func TestServeWaitsForQuota(t *testing.T) {
	r := newRig(t, unitConfig, rigOptions{})
	first := r.submit("pod", "ns") // fills max-servers 2
	r.waitState(first, zk.RequestFulfilled)
	second := r.submit("ns")
	r.waitState(second, zk.RequestPending)
	third := r.submit("ns") // behind the paused pool
	if got := r.request(third); got.State != zk.RequestRequested {
		t.Errorf("request behind a paused pool is %s, want requested", got.State)
	}
	r.accept(first) // used: deleted, quota freed
	r.waitState(second, zk.RequestFulfilled)
	r.accept(second)
	r.waitState(third, zk.RequestFulfilled)
	r.accept(third)
	r.settled()
}

func TestServeWarmPool(t *testing.T) {
	cfg := strings.Replace(unitConfig, "labels: [{name: pod}, ", "labels: [{name: pod, min-ready: 1}, ", 1)
	r := newRig(t, cfg, rigOptions{})
	// Warm as the launcher sees it (its cache may lag ZooKeeper).
	r.waitFor("a warm node", func() bool {
		for _, n := range r.l.nodes.Snapshot() {
			if n.State == zk.NodeReady && n.AllocatedTo == "" {
				return true
			}
		}
		return false
	})
	created := len(r.driver.created)
	id := r.submit("pod")
	req := r.waitState(id, zk.RequestFulfilled)
	warm := r.nodes()[0]
	if req.Nodes[0] != warm.ID {
		t.Errorf("request got node %s, want the warm one %s", req.Nodes[0], warm.ID)
	}
	if got := r.request(id); got.State != zk.RequestFulfilled {
		t.Fatal(got.State)
	}
	r.accept(id)
	// A new warm node replaces the one taken.
	r.waitFor("a new warm node", func() bool { return len(r.driver.created) > created })
}

// A building node whose launcher is gone is deleted, with its namespace.
func TestCleanupOrphans(t *testing.T) {
	r := newRig(t, unitConfig, rigOptions{before: func(r *rig) {
		n := &zk.Node{Provider: "k8s", Pool: "main", Type: []string{"pod"}, State: zk.NodeBuilding, Launcher: "gone-launcher-k8s-main", ExternalID: "main-orphan"}
		if err := r.zuul.CreateNode(r.t.Context(), n); err != nil {
			r.t.Fatal(err)
		}
		r.driver.namespaces["main-orphan"] = kube.Resource{Namespace: "main-orphan", Owner: kube.Owner{Provider: "k8s", NodeID: n.ID}}
		// A namespace whose node never existed: the leak sweep's.
		r.driver.namespaces["main-leaked"] = kube.Resource{Namespace: "main-leaked", Owner: kube.Owner{Provider: "k8s", NodeID: "9999999999"}}
	}})
	r.settled()
}

func TestDriverDataIsTyped(t *testing.T) {
	r := newRig(t, unitConfig, rigOptions{})
	id := r.submit("pod")
	req := r.waitState(id, zk.RequestFulfilled)
	n, err := r.zuul.GetNode(t.Context(), req.Nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(n.DriverData)
	if !strings.Contains(string(b), tokenExpiryKey) || driverDataOf(n).TokenExpires == 0 {
		t.Errorf("driver_data = %s, want %s", b, tokenExpiryKey)
	}
}

// A pod that waits for room (or for a pull that may pass) says so in its
// node record and metrics while the launch waits, and the launch goes on.
func TestLaunchWaitsAndSaysWhy(t *testing.T) {
	r := newRig(t, unitConfig, rigOptions{})
	release := make(chan struct{})
	r.driver.setCreateHook(func(ctx context.Context, res kube.Resource) error {
		if res.Kind != kube.KindPod {
			return nil
		}
		res.Waiting(&kube.PodError{Namespace: res.Namespace, Pod: res.PodName, Reason: "Unschedulable", Message: "0/1 nodes are available: 1 Insufficient cpu."})
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		res.Waiting(nil)
		return nil
	})
	id := r.submit("pod")
	r.waitFor("the node to say why it waits", func() bool {
		for _, n := range r.nodes() {
			if strings.Contains(driverDataOf(n).Waiting, "Insufficient cpu") && n.State == zk.NodeBuilding {
				return true
			}
		}
		return false
	})
	if got := testutil.ToFloat64(r.l.metrics.LaunchWaits.WithLabelValues("pod", "Unschedulable")); got != 1 {
		t.Errorf("launch_waits_total{pod, Unschedulable} = %v, want 1", got)
	}
	close(release)
	req := r.waitState(id, zk.RequestFulfilled)
	n, err := r.zuul.GetNode(t.Context(), req.Nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	if dd := driverDataOf(n); dd.Waiting != "" || dd.TokenExpires == 0 {
		t.Errorf("ready node's driver data = %+v, want no waiting reason and a token expiry", dd)
	}
}

// TestQuotaFreesWhenPodsGone: a deleted node's quota is free once its pods
// are gone, while its namespace is still being deleted.
func TestQuotaFreesWhenPodsGone(t *testing.T) {
	r := newRig(t, unitConfig, rigOptions{})
	gone := make(chan struct{}) // namespaces "finish terminating"
	var waiting atomic.Int32
	r.driver.mu.Lock()
	r.driver.deleteHook = func(ctx context.Context, ns string, wait bool) error {
		if !wait {
			return nil
		}
		waiting.Add(1)
		defer waiting.Add(-1)
		select {
		case <-gone:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.driver.mu.Unlock()
	first := r.submit("ns", "ns") // max-servers 2
	r.waitState(first, zk.RequestFulfilled)
	second := r.submit("ns", "ns")
	r.waitState(second, zk.RequestPending)
	r.accept(first)
	r.waitState(second, zk.RequestFulfilled)
	if n := waiting.Load(); n != 2 {
		t.Errorf("%d namespaces still terminating when the next request was fulfilled, want 2 (quota freed before)", n)
	}
	close(gone)
	r.accept(second)
	r.settled()
}
