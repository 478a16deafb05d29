package e2e

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kubepool/kubepool/internal/config"
	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/launcher"
	"github.com/kubepool/kubepool/internal/requestor"
	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

// launcherEnv is a launcher running in this test process against the dev
// cluster and a ZooKeeper chroot of its own, and a Zuul stand-in.
type launcherEnv struct {
	env      *testenv.Env
	provider string
	servers  string // ZooKeeper connection string with the chroot
	zk       *zk.Client
	zuul     *zuul
	l        *launcher.Launcher
	metrics  *launcher.Metrics
	ctx      context.Context // until the test ends

	watchOnce                     sync.Once
	nodesChanged, requestsChanged <-chan struct{}
}

// watches returns channels that receive (coalesced) when nodes or requests
// change: tests wait on them, never on the clock. They are started on first
// use, so that a benchmark that does not wait on them does not pay for
// them in ZooKeeper.
func (le *launcherEnv) watches() (nodes, requests <-chan struct{}) {
	le.watchOnce.Do(func() {
		le.nodesChanged = le.zk.WatchNodes(le.ctx)
		le.requestsChanged = le.zk.WatchRequests(le.ctx)
	})
	return le.nodesChanged, le.requestsChanged
}

// nodesCh is the first of watches.
func (le *launcherEnv) nodesCh() <-chan struct{} {
	n, _ := le.watches()
	return n
}

// requestsCh is the second of watches.
func (le *launcherEnv) requestsCh() <-chan struct{} {
	_, r := le.watches()
	return r
}

// launcherConfig is the launcher config the tests use, in Nodepool's format.
func launcherConfig(env *testenv.Env, servers, provider string, minReady int) string {
	return zkServersYAML(servers) + fmt.Sprintf(`
labels:
  - name: pod
    min-ready: %d
  - name: namespace
  - name: broken
providers:
  - name: %s
    driver: kubernetes
    context: kubepool-dev
    launch-retries: 2
    boot-timeout: 120
    token-expiration: 1h
    pools:
      - name: main
        node-attributes:
          site: e2e
        labels:
          - name: pod
            type: pod
            image: %s
            python-path: /usr/bin/python3
            cpu: 100m
            memory: 64Mi
          - name: namespace
            type: namespace
          - name: broken
            type: pod
            image: %s/kubepool/does-not-exist:1
`, minReady, provider, env.MachineImage, env.Registry)
}

// zkServersYAML is the zookeeper-servers line of a launcher config for
// servers, "host:port/chroot".
func zkServersYAML(servers string) string {
	hostPort, chroot, _ := strings.Cut(servers, "/")
	host, port, _ := strings.Cut(hostPort, ":")
	return fmt.Sprintf("zookeeper-servers: [{host: %s, port: %s, chroot: /%s}]\n", host, port, chroot)
}

func startLauncher(t testing.TB, minReady int) *launcherEnv {
	t.Helper()
	return startLauncherWith(t, func(env *testenv.Env, servers, provider string) string {
		return launcherConfig(env, servers, provider, minReady)
	}, nil)
}

// startLauncherWith starts a launcher with the config that makeConfig
// returns for the ZooKeeper servers (with a chroot of the test's own) and
// a unique provider name. beforeRun, if set, is called with the Zuul
// stand-in and the provider name before the launcher starts.
func startLauncherWith(t testing.TB, makeConfig func(env *testenv.Env, servers, provider string) string, beforeRun func(z *zuul, provider string)) *launcherEnv {
	t.Helper()
	return startLauncherDrivers(t, makeConfig, beforeRun, nil)
}

// startLauncherDrivers is startLauncherWith whose providers' drivers talk
// to the Kubernetes API that client returns, if it is set (a benchmark
// uses an in-memory one), instead of the dev cluster's.
func startLauncherDrivers(t testing.TB, makeConfig func(env *testenv.Env, servers, provider string) string, beforeRun func(z *zuul, provider string), client func() kubernetes.Interface) *launcherEnv {
	t.Helper()
	return startLauncherSetup(t, launcherSetup{makeConfig: makeConfig, beforeRun: beforeRun, client: client})
}

// launcherSetup is what startLauncherSetup starts: the fields of
// startLauncherDrivers, and a ZooKeeper of the test's own.
type launcherSetup struct {
	makeConfig func(env *testenv.Env, servers, provider string) string
	beforeRun  func(z *zuul, provider string)
	client     func() kubernetes.Interface
	// zooKeeper is "host:port" of a ZooKeeper the test started (one it may
	// stop); default the dev cluster's, which no test stops.
	zooKeeper string
	// sessionTimeout is the launcher's ZooKeeper session timeout; default
	// zk's (10 s).
	sessionTimeout time.Duration
}

func startLauncherSetup(t testing.TB, o launcherSetup) *launcherEnv {
	t.Helper()
	env := testenv.Cluster(t)
	t.Setenv("KUBECONFIG", env.Kubeconfig)
	le := &launcherEnv{env: env, provider: "e2e-" + randHex(3)}
	zooKeeper := env.ZooKeeper
	if o.zooKeeper != "" {
		zooKeeper = o.zooKeeper
	}
	le.servers = zooKeeper + "/kubepool-e2e-" + randHex(4)
	cfg, err := config.Parse("e2e.yaml", []byte(o.makeConfig(env, le.servers, le.provider)))
	if err != nil {
		t.Fatalf("config.Parse = %v", err)
	}
	drivers := map[string]launcher.Driver{}
	for _, p := range cfg.Providers {
		rc, err := p.RESTConfig()
		if err != nil {
			t.Fatal(err)
		}
		d, err := kube.NewDriver(rc)
		if err != nil {
			t.Fatal(err)
		}
		if o.client != nil {
			d.Client = o.client()
		}
		d.TokenExpiration = p.TokenExpiration
		d.Projects = p.Driver == config.DriverOpenShift
		d.WithoutPolicy = benchWithoutPolicy
		drivers[p.Name] = d
	}
	ctx, cancel := context.WithCancel(context.Background())
	le.zk, err = zk.Connect(ctx, le.servers, zk.Options{SessionTimeout: o.sessionTimeout})
	if err != nil {
		t.Fatalf("zk.Connect(%s) = %v", le.servers, err)
	}
	le.ctx = ctx
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	le.metrics = launcher.NewMetrics(nil)
	le.l, err = launcher.New(launcher.Options{Config: cfg, ZK: le.zk, Drivers: drivers, Logger: log, Metrics: le.metrics, CleanupInterval: 2 * time.Second, Hostname: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	le.zuul = newZuul(t, le.servers)
	if o.beforeRun != nil {
		o.beforeRun(le.zuul, le.provider)
	}
	done := make(chan error, 1)
	go func() { done <- le.l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("launcher.Run = %v", err)
		}
		le.zk.Close()
		// Whatever the test left behind goes, by our labels.
		for name, d := range drivers {
			owned, _ := d.List(context.Background(), name)
			for _, o := range owned {
				_ = d.Delete(context.Background(), o.Namespace, false)
			}
		}
	})
	return le
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitGone waits until the node record is deleted and then until its
// namespace is gone.
func (le *launcherEnv) waitGone(t testing.TB, id, namespace string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	for {
		_, err := le.zk.GetNode(ctx, id)
		if errors.Is(err, zk.ErrNoNode) {
			break
		}
		select {
		case <-le.nodesCh():
		case <-ctx.Done():
			t.Fatalf("node %s still exists: %v", id, ctx.Err())
		}
	}
	if namespace == "" {
		return
	}
	// The record goes once the node's pods are gone (its quota is free
	// then); the launcher goes on deleting the namespace and waits for it.
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := le.env.Client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("namespace %s of deleted node %s still exists: %v", namespace, id, err)
	}
}

// TestLauncherZuul plays Zuul against the launcher: a pod node and a
// namespace node in one request, used exactly as Zuul's executor uses them
// (kubeconfig, Ansible inventory with the kubectl connection), then returned
// and cleaned up.
func TestLauncherZuul(t *testing.T) {
	le := startLauncher(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	id := le.zuul.Submit([]string{"pod", "namespace"}, 100, nil)
	req := le.zuul.WaitRequest(ctx, id)
	if req["state"] != "fulfilled" {
		t.Fatalf("request %s = %v, want fulfilled", id, req)
	}
	nodes, returnNodes := le.zuul.AcceptNodes(id, req)
	if len(nodes) != 2 {
		t.Fatalf("request %s got %d nodes, want 2", id, len(nodes))
	}
	pod, ns := nodes[0], nodes[1]
	ids := req["nodes"].([]any)

	// What Zuul reads from a node record.
	for _, tt := range []struct {
		node     map[string]any
		connType string
		label    string
	}{{pod, "kubectl", "pod"}, {ns, "namespace", "namespace"}} {
		cp, ok := tt.node["connection_port"].(map[string]any)
		if !ok {
			t.Fatalf("%s node connection_port = %T, want a dict", tt.label, tt.node["connection_port"])
		}
		for _, k := range []string{"name", "namespace", "host", "skiptls", "token", "user", "ca_crt"} {
			if _, ok := cp[k]; !ok {
				t.Errorf("%s node connection_port has no %q: %v", tt.label, k, slices.Collect(maps.Keys(cp)))
			}
		}
		if tt.node["connection_type"] != tt.connType || tt.node["provider"] != le.provider || tt.node["external_id"] != cp["namespace"] {
			t.Errorf("%s node = connection_type %v provider %v external_id %v, want %s %s %v", tt.label, tt.node["connection_type"], tt.node["provider"], tt.node["external_id"], tt.connType, le.provider, cp["namespace"])
		}
		if attrs, _ := tt.node["attributes"].(map[string]any); attrs["site"] != "e2e" {
			t.Errorf("%s node attributes = %v, want site=e2e", tt.label, tt.node["attributes"])
		}
		if ca, _ := base64.StdEncoding.DecodeString(cp["ca_crt"].(string)); !strings.Contains(string(ca), "BEGIN CERTIFICATE") {
			t.Errorf("%s node ca_crt is not a base64 PEM certificate", tt.label)
		}
	}
	podCP := pod["connection_port"].(map[string]any)
	if pod["interface_ip"] != podCP["pod"] || pod["host_id"] != le.env.Node || pod["python_path"] != "/usr/bin/python3" {
		t.Errorf("pod node interface_ip %v host_id %v python_path %v, want pod %v on %s with /usr/bin/python3", pod["interface_ip"], pod["host_id"], pod["python_path"], podCP["pod"], le.env.Node)
	}
	if res, _ := pod["resources"].(map[string]any); res["cores"] != 0.1 || res["ram"] != float64(64) || res["instances"] != float64(1) {
		t.Errorf("pod node resources = %v, want cores 0.1, ram 64, instances 1", pod["resources"])
	}

	// Zuul's executor: kubeconfig + inventory, then a playbook with
	// command, copy and fetch tasks, run by Ansible over the kubectl
	// connection as Zuul runs it: the node record names no user, so
	// Ansible's remote user is Zuul's default, zuul (its temporary files
	// go under ~zuul).
	dir := t.TempDir()
	kubeconfig, inventory := executorFiles(t, dir, nodes)
	playbook := filepath.Join(dir, "playbook.yaml")
	fetched := filepath.Join(dir, "fetched")
	if err := os.WriteFile(playbook, []byte(`- hosts: all
  gather_facts: false
  tasks:
    - command: git --version
      register: out
    - debug:
        msg: "task said: {{ out.stdout }}"
    - copy:
        content: "{{ out.stdout }}\n"
        dest: /tmp/kubepool-e2e-copied
    - fetch:
        src: /tmp/kubepool-e2e-copied
        dest: `+fetched+`/
        flat: true
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := ansiblePlaybook(ctx, le.env, kubeconfig, inventory, playbook)
	if err != nil || !strings.Contains(string(out), "task said: git version") {
		t.Fatalf("ansible-playbook with command, copy and fetch tasks through the kubectl connection as user zuul: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(fetched, "kubepool-e2e-copied")); err != nil || !strings.HasPrefix(string(b), "git version") {
		t.Errorf("file copied to the pod and fetched back = %q, %v; want git's version", b, err)
	}

	// The namespace node's token manages its namespace and nothing else.
	nsClient := nodeClient(t, ns)
	nsName := ns["external_id"].(string)
	if !canI(t, nsClient, authorizationv1.ResourceAttributes{Namespace: nsName, Verb: "create", Resource: "pods"}) ||
		canI(t, nsClient, authorizationv1.ResourceAttributes{Namespace: podCP["namespace"].(string), Verb: "get", Resource: "pods"}) {
		t.Errorf("namespace node token: want create pods in %s and nothing in the pod node's namespace", nsName)
	}

	returnNodes()
	le.waitGone(t, ids[0].(string), podCP["namespace"].(string))
	le.waitGone(t, ids[1].(string), nsName)
}

// TestLauncherDeclineAndFail: a label nobody serves fails the request; an
// image that cannot be pulled fails fast, is retried with a fresh
// namespace, then fails the request with the reason, and leaves nothing.
func TestLauncherDeclineAndFail(t *testing.T) {
	le := startLauncher(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	id := le.zuul.Submit([]string{"no-such-label"}, 100, nil)
	if req := le.zuul.WaitRequest(ctx, id); req["state"] != "failed" || len(req["declined_by"].([]any)) != 1 {
		t.Errorf("request for an unknown label = %v, want failed, declined by our pool", req)
	}

	id = le.zuul.Submit([]string{"broken"}, 100, nil)
	if req := le.zuul.WaitRequest(ctx, id); req["state"] != "failed" {
		t.Errorf("request for a label whose image is missing = %v, want failed", req)
	}
	// Its node failed both its attempts, and so did the one fresh node the
	// request got in its place: then it was declined.
	if got := testutil.ToFloat64(le.metrics.Launches.WithLabelValues("broken", "failed")); got != 2 {
		t.Errorf("failed launches of label broken = %v, want 2 (the node, and one fresh node for the request)", got)
	}
	// The failed node and both attempts' namespaces are cleaned up.
	sel := kube.ProviderSelector(le.provider).String()
	for {
		nodes, err := le.zk.ListNodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		nsl, err := le.env.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) == 0 && len(nsl.Items) == 0 {
			break
		}
		// The node record goes once its pods are gone, before its
		// namespace: look at the namespaces again without a node event.
		select {
		case <-le.nodesCh():
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("after the failed launch: %d nodes and %d namespaces remain", len(nodes), len(nsl.Items))
		}
	}
}

// TestLauncherAbandonedInUse: an in-use node whose user died (a Zuul whose
// ZooKeeper session ended, taking its node locks with it) is deleted, as
// Nodepool does; an in-use node taken by `kubepool request` (detached: no
// lock by design) is kept.
func TestLauncherAbandonedInUse(t *testing.T) {
	le := startLauncher(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	le.waitRegistered(t, ctx)
	res, err := requestor.Request(ctx, le.zk, requestor.Spec{Labels: []string{"namespace"}})
	if err != nil {
		t.Fatalf("requestor.Request = %v", err)
	}
	detached := res.Nodes[0]

	dying := newZuul(t, le.servers)
	id := dying.Submit([]string{"namespace"}, 100, nil)
	req := dying.WaitRequest(ctx, id)
	if req["state"] != "fulfilled" {
		t.Fatalf("request %s = %v, want fulfilled", id, req)
	}
	nodes, _ := dying.AcceptNodes(id, req) // in-use, locked by its session
	abandoned := req["nodes"].([]any)[0].(string)
	if cur, err := le.zk.GetNode(ctx, abandoned); err != nil || cur.State != zk.NodeInUse || !cur.Locked {
		t.Fatalf("node %s before Zuul dies = %+v, %v; want in-use, locked", abandoned, cur, err)
	}
	dying.Conn.Close() // Zuul dies: its session, and its locks, end

	le.waitGone(t, abandoned, nodes[0]["external_id"].(string))
	// The full pass that deleted it saw the detached node too.
	cur, err := le.zk.GetNode(ctx, detached.ID)
	if err != nil || cur.State != zk.NodeInUse || cur.Locked || !cur.Detached() {
		t.Fatalf("detached node %s after the cleanup = %+v, %v; want in-use, unlocked, detached", detached.ID, cur, err)
	}
	if _, err := le.env.Client.CoreV1().Namespaces().Get(ctx, cur.ExternalID, metav1.GetOptions{}); err != nil {
		t.Errorf("namespace %s of the detached node: %v", cur.ExternalID, err)
	}
}

// TestLauncherCleanup: a building node left unlocked by a launcher that
// died, and a namespace whose node never existed, are both deleted.
func TestLauncherCleanup(t *testing.T) {
	le := startLauncher(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	client := le.env.Client

	orphanNS := "main-orphan-" + randHex(3)
	n := &zk.Node{Provider: le.provider, Pool: "main", Type: []string{"pod"}, Launcher: "crashed-launcher", ExternalID: orphanNS}
	n.SetState(zk.NodeBuilding)
	if err := le.zk.CreateNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	leakNS := "main-leak-" + randHex(3)
	for name, nodeID := range map[string]string{orphanNS: n.ID, leakNS: "9999999999"} {
		owner := kube.Owner{Provider: le.provider, Pool: "main", NodeID: nodeID, Label: "pod", Launcher: "crashed-launcher"}
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: owner.Labels()}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// An unrelated namespace is never touched.
	other := "unrelated-" + randHex(3)
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.CoreV1().Namespaces().Delete(context.Background(), other, metav1.DeleteOptions{}) })

	le.waitGone(t, n.ID, orphanNS)
	for {
		got, err := client.CoreV1().Namespaces().Get(ctx, leakNS, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || err == nil && got.DeletionTimestamp != nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("leaked namespace %s not swept: %v", leakNS, err)
		case <-time.After(200 * time.Millisecond): // the sweep runs every 2 s; poll its effect
		}
	}
	if got, err := client.CoreV1().Namespaces().Get(ctx, other, metav1.GetOptions{}); err != nil || got.DeletionTimestamp != nil {
		t.Errorf("unrelated namespace %s: %v, deleting=%v; want untouched", other, err, got.DeletionTimestamp != nil)
	}
}

// nodeClient is a client that authenticates as the node's user.
func nodeClient(t *testing.T, node map[string]any) kubernetes.Interface {
	t.Helper()
	cp := node["connection_port"].(map[string]any)
	ca, _ := base64.StdEncoding.DecodeString(cp["ca_crt"].(string))
	return tokenClient(t, &kube.Connection{Host: cp["host"].(string), Token: cp["token"].(string), CAData: ca})
}

// TestLauncherWarmPool: with min-ready 2, ready nodes wait; a request is
// served from them (each with its own namespace, service account and
// token), and the pool is refilled.
func TestLauncherWarmPool(t *testing.T) {
	le := startLauncher(t, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	le.waitReady(t, ctx, 2)
	before, err := le.zk.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	warmIDs := map[string]bool{}
	for _, n := range before {
		warmIDs[n.ID] = true
	}

	id := le.zuul.Submit([]string{"pod", "pod"}, 100, nil)
	req := le.zuul.WaitRequest(ctx, id)
	if req["state"] != "fulfilled" {
		t.Fatalf("request %s = %v, want fulfilled", id, req["state"])
	}
	nodes, ret := le.zuul.AcceptNodes(id, req)
	tokens, namespaces := map[string]bool{}, map[string]bool{}
	for i, v := range req["nodes"].([]any) {
		if !warmIDs[v.(string)] {
			t.Errorf("node %s was launched for the request, want one of the ready nodes %v", v, warmIDs)
		}
		cp := nodes[i]["connection_port"].(map[string]any)
		tokens[cp["token"].(string)] = true
		namespaces[cp["namespace"].(string)] = true
		c := nodeClient(t, nodes[i])
		if !canI(t, c, authorizationv1.ResourceAttributes{Namespace: cp["namespace"].(string), Verb: "create", Resource: "pods", Subresource: "exec", Name: cp["pod"].(string)}) {
			t.Errorf("warm node %s: its token cannot exec in its pod", v)
		}
	}
	if len(tokens) != 2 || len(namespaces) != 2 {
		t.Errorf("two warm nodes share credentials: %d tokens, %d namespaces, want 2 and 2", len(tokens), len(namespaces))
	}
	// The pool is refilled while the nodes are in use.
	le.waitReady(t, ctx, 2)
	ret()
}

// TestLauncherAffinityAndPriority: requests that wait together are served
// in priority order; a request that names a provider is served by it; one
// that does not fit the quota stays pending (the pool pauses on it) until a
// node goes away.
func TestLauncherAffinityAndPriority(t *testing.T) {
	var low, high string
	le := startLauncherWith(t, func(env *testenv.Env, servers, provider string) string {
		return zkServersYAML(servers) + fmt.Sprintf(`
labels: [{name: ns}]
providers:
  - {name: %s-a, driver: kubernetes, context: kubepool-dev, max-servers: 1, pools: [{name: main, labels: [{name: ns, type: namespace}]}]}
  - {name: %s-b, driver: kubernetes, context: kubepool-dev, max-servers: 1, pools: [{name: main, labels: [{name: ns, type: namespace}]}]}
`, provider, provider)
	}, func(z *zuul, provider string) {
		// Written before the launcher starts, low priority first, both
		// preferring provider a, which has room for one node.
		low = z.Submit([]string{"ns"}, 300, map[string]any{"provider": provider + "-a"})
		high = z.Submit([]string{"ns"}, 100, map[string]any{"provider": provider + "-a"})
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	a, b := le.provider+"-a", le.provider+"-b"

	req := le.zuul.WaitRequest(ctx, high)
	if req["state"] != "fulfilled" {
		t.Fatalf("high-priority request = %v, want fulfilled", req["state"])
	}
	nodes, retHigh := le.zuul.AcceptNodes(high, req)
	if nodes[0]["provider"] != a {
		t.Errorf("request preferring %s was served by %v", a, nodes[0]["provider"])
	}
	// a is full: the low-priority request waits for it, pending.
	for {
		r, _, err := le.zuul.GetJSON(zuulRequestRoot + "/" + low)
		if err != nil {
			t.Fatal(err)
		}
		if r["state"] == "pending" {
			break
		}
		if r["state"] != "requested" {
			t.Fatalf("low-priority request while %s is full = %v, want pending", a, r["state"])
		}
		select {
		case <-le.requestsCh():
		case <-ctx.Done():
			t.Fatalf("low-priority request never became pending")
		}
	}
	// A request preferring b is served by b meanwhile.
	other := le.zuul.Submit([]string{"ns"}, 100, map[string]any{"provider": b})
	req = le.zuul.WaitRequest(ctx, other)
	if req["state"] != "fulfilled" {
		t.Fatalf("request preferring %s = %v, want fulfilled", b, req["state"])
	}
	nodes, retOther := le.zuul.AcceptNodes(other, req)
	defer retOther()
	if nodes[0]["provider"] != b {
		t.Errorf("request preferring %s was served by %v", b, nodes[0]["provider"])
	}
	// Returning a's node lets the waiting request through, on a.
	retHigh()
	req = le.zuul.WaitRequest(ctx, low)
	if req["state"] != "fulfilled" {
		t.Fatalf("low-priority request = %v, want fulfilled once %s has room", req["state"], a)
	}
	nodes, retLow := le.zuul.AcceptNodes(low, req)
	defer retLow()
	if nodes[0]["provider"] != a {
		t.Errorf("waiting request was served by %v, want %s", nodes[0]["provider"], a)
	}
}

// TestLauncherMaxReadyAge: a ready node that waited longer than the label's
// max-ready-age is deleted, and min-ready launches its replacement.
func TestLauncherMaxReadyAge(t *testing.T) {
	le := startLauncherWith(t, func(env *testenv.Env, servers, provider string) string {
		return zkServersYAML(servers) + fmt.Sprintf(`
labels: [{name: ns, min-ready: 1, max-ready-age: 3s}]
providers:
  - {name: %s, driver: kubernetes, context: kubepool-dev, pools: [{name: main, labels: [{name: ns, type: namespace}]}]}
`, provider)
	}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	first := ""
	for {
		nodes, err := le.zk.ListNodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ready []string
		for _, n := range nodes {
			if n.State == zk.NodeReady {
				ready = append(ready, n.ID)
			}
		}
		switch {
		case first == "" && len(ready) > 0:
			first = ready[0]
		case first != "" && len(ready) > 0 && !slices.Contains(ready, first):
			if _, err := le.zk.GetNode(ctx, first); errors.Is(err, zk.ErrNoNode) {
				return // recycled and replaced
			}
		}
		select {
		case <-le.nodesCh():
		case <-ctx.Done():
			t.Fatalf("ready node %s was not recycled after max-ready-age (ready now: %v)", first, ready)
		}
	}
}
