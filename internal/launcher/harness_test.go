package launcher

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/config"
	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

// fakeDriver stands in for a Kubernetes cluster: it keeps namespaces in
// memory. A test steers launches with createHook, which runs (outside the
// driver's lock) before a Create returns; its error fails the Create.
type fakeDriver struct {
	mu         sync.Mutex
	namespaces map[string]kube.Resource // live namespaces
	deleting   map[string]bool
	created    []kube.Resource
	deletes    int
	createHook func(ctx context.Context, r kube.Resource) error
	deleteHook func(ctx context.Context, ns string, wait bool) error
	podsHook   func(ctx context.Context, ns string) error // WaitPodsGone
}

func newFakeDriver() *fakeDriver {
	return &fakeDriver{namespaces: map[string]kube.Resource{}, deleting: map[string]bool{}}
}

func (d *fakeDriver) Create(ctx context.Context, r kube.Resource) (*kube.Connection, error) {
	d.mu.Lock()
	if _, ok := d.namespaces[r.Namespace]; ok {
		d.mu.Unlock()
		return nil, fmt.Errorf("creating namespace %q: already exists", r.Namespace)
	}
	d.namespaces[r.Namespace] = r
	d.created = append(d.created, r)
	hook := d.createHook
	d.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, r); err != nil {
			return nil, err
		}
	}
	conn := &kube.Connection{Host: "https://k8s.example.org", SkipTLS: true, Namespace: r.Namespace, User: kube.ServiceAccountName,
		Token: "token-" + r.Namespace, TokenExpiry: time.Now().Add(config.DefaultTokenExpiration)}
	if r.Kind == kube.KindPod {
		conn.Pod, conn.Node = r.PodName, "node-1"
	}
	return conn, nil
}

func (d *fakeDriver) Delete(ctx context.Context, ns string, wait bool) error {
	d.mu.Lock()
	hook := d.deleteHook
	d.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, ns, wait); err != nil {
			return err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deletes++
	delete(d.namespaces, ns)
	return nil
}

func (d *fakeDriver) WaitPodsGone(ctx context.Context, ns string) error {
	d.mu.Lock()
	hook := d.podsHook
	d.mu.Unlock()
	if hook != nil {
		return hook(ctx, ns)
	}
	return nil
}

func (d *fakeDriver) RefreshToken(ctx context.Context, conn *kube.Connection) error {
	conn.Token, conn.TokenExpiry = "fresh-"+conn.Namespace, time.Now().Add(config.DefaultTokenExpiration)
	return nil
}

func (d *fakeDriver) List(ctx context.Context, provider string) ([]kube.Owned, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []kube.Owned
	for ns, r := range d.namespaces {
		if r.Owner.Provider == provider {
			out = append(out, kube.Owned{Namespace: ns, NodeID: r.Owner.NodeID, Launcher: r.Owner.Launcher, Deleting: d.deleting[ns]})
		}
	}
	return out, nil
}

// live returns the names of the namespaces that exist.
func (d *fakeDriver) live() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for ns := range d.namespaces {
		out = append(out, ns)
	}
	return out
}

func (d *fakeDriver) setCreateHook(h func(ctx context.Context, r kube.Resource) error) {
	d.mu.Lock()
	d.createHook = h
	d.mu.Unlock()
}

// rig is a launcher under test: the real ZooKeeper (a chroot of the test's
// own), a fake driver, and a Zuul stand-in with its own session.
type rig struct {
	t       testing.TB
	servers string
	cut     *testenv.Cutter
	zk      *zk.Client // the launcher's
	zuul    *zk.Client // Zuul's
	driver  *fakeDriver
	l       *Launcher
	stop    context.CancelFunc
	done    chan error
}

type rigOptions struct {
	sessionTimeout time.Duration
	interval       time.Duration
	before         func(r *rig) // before the launcher runs
}

func connectZK(t testing.TB, servers string, opts zk.Options) *zk.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := zk.Connect(ctx, servers, opts)
	if err != nil {
		t.Fatalf("zk.Connect(%q) = %v", servers, err)
	}
	t.Cleanup(c.Close)
	return c
}

func testLog(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// newRig starts a launcher for the config text.
func newRig(t testing.TB, cfgText string, o rigOptions) *rig {
	t.Helper()
	if o.sessionTimeout == 0 {
		o.sessionTimeout = 30 * time.Second
	}
	if o.interval == 0 {
		o.interval = time.Hour // a test that wants the periodic pass sets it
	}
	servers := testenv.ZooKeeper(t)
	r := &rig{t: t, servers: servers, cut: &testenv.Cutter{}, driver: newFakeDriver(), done: make(chan error, 1)}
	r.zk = connectZK(t, servers, zk.Options{SessionTimeout: o.sessionTimeout, Dialer: r.cut.Dial, LockIdentifier: "launcher", Logger: testLog(t)})
	r.zuul = connectZK(t, servers, zk.Options{})
	cfg := parseConfig(t, cfgText)
	drivers := map[string]Driver{}
	for _, p := range cfg.Providers {
		drivers[p.Name] = r.driver
	}
	var err error
	r.l, err = New(Options{Config: cfg, ZK: r.zk, Drivers: drivers, Logger: testLog(t), Hostname: "unit", CleanupInterval: o.interval})
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	if o.before != nil {
		o.before(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() { r.done <- r.l.Run(ctx) }()
	t.Cleanup(r.shutdown)
	r.waitFor("the launcher to be ready", func() bool { return r.l.Ready(ctx) == nil })
	return r
}

func (r *rig) shutdown() {
	if r.stop == nil {
		return
	}
	r.cut.Restore()
	r.stop()
	r.stop = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Run = %v", err)
		}
	case <-time.After(30 * time.Second):
		r.t.Errorf("Run did not return 30 s after its context ended")
	}
}

// waitFor waits until cond holds, looking again whenever a request or node
// changes (and every 50 ms for conditions on the fake driver).
func (r *rig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), 60*time.Second)
	defer cancel()
	reqs := r.zuul.WatchRequests(ctx)
	nodes := r.zuul.WatchNodes(ctx)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			r.t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-reqs:
		case <-nodes:
		case <-tick.C:
		}
	}
}

// submit asks for labels as Zuul does and returns the request id.
func (r *rig) submit(labels ...string) string {
	r.t.Helper()
	req := &zk.Request{NodeTypes: labels, Requestor: "zuul-test"}
	if err := r.zuul.SubmitRequest(r.t.Context(), req, 100); err != nil {
		r.t.Fatal(err)
	}
	return req.ID
}

func (r *rig) request(id string) *zk.Request {
	r.t.Helper()
	req, err := r.zuul.GetRequest(r.t.Context(), id)
	if err != nil {
		r.t.Fatalf("GetRequest(%s) = %v", id, err)
	}
	return req
}

// waitState waits until request id is in one of states and returns it.
func (r *rig) waitState(id string, states ...string) *zk.Request {
	r.t.Helper()
	var req *zk.Request
	r.waitFor(fmt.Sprintf("request %s to be %v", id, states), func() bool {
		var err error
		req, err = r.zuul.GetRequest(r.t.Context(), id)
		if err != nil {
			return false
		}
		for _, s := range states {
			if req.State == s {
				return true
			}
		}
		return false
	})
	return req
}

// accept does what Zuul does with a fulfilled request: locks its nodes,
// marks them in-use, deletes the request; then, the job done, marks them
// used and unlocks them.
func (r *rig) accept(id string) []*zk.Node {
	r.t.Helper()
	ctx := r.t.Context()
	req := r.request(id)
	var nodes []*zk.Node
	for _, nid := range req.Nodes {
		lock, n, err := r.zuul.LockNode(ctx, nid)
		if err != nil {
			r.t.Fatalf("locking node %s: %v", nid, err)
		}
		n.SetState(zk.NodeInUse)
		if err := r.zuul.UpdateNode(ctx, n); err != nil {
			r.t.Fatal(err)
		}
		nodes = append(nodes, n)
		defer func() {
			n.SetState(zk.NodeUsed)
			if err := r.zuul.UpdateNode(ctx, n); err != nil {
				r.t.Fatal(err)
			}
			_ = lock.Release(ctx)
		}()
	}
	if err := r.zuul.DeleteRequest(ctx, id); err != nil {
		r.t.Fatal(err)
	}
	return nodes
}

// nodes lists every node with its lock state.
func (r *rig) nodes() []*zk.Node {
	r.t.Helper()
	ns, err := r.zuul.ListNodes(r.t.Context())
	if err != nil {
		r.t.Fatal(err)
	}
	return ns
}

// settled waits until no node record, request, request lock or namespace
// is left, and the launcher owes nothing: everything was served and
// cleaned up.
func (r *rig) settled() {
	r.t.Helper()
	ctx := r.t.Context()
	r.waitFor("everything to be cleaned up", func() bool {
		nodes, err := r.zuul.NodeIDs(ctx)
		if err != nil || len(nodes) > 0 {
			return false
		}
		reqs, err := r.zuul.RequestIDs(ctx)
		if err != nil || len(reqs) > 0 {
			return false
		}
		return len(r.driver.live()) == 0 && r.zk.Owed() == 0
	})
}

// noRequestLocks waits until no request-lock znode is left.
func (r *rig) noRequestLocks() {
	r.t.Helper()
	r.waitFor("no request lock znode left", func() bool {
		ids, err := r.zuul.RequestLockIDs(r.t.Context())
		return err == nil && len(ids) == 0
	})
}
