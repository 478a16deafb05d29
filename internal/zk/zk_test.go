package zk_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"
	"github.com/google/go-cmp/cmp"

	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
	"github.com/kubepool/kubepool/internal/zuultest"
)

// testLogger sends the client's logs to the test log when -v.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func connect(t testing.TB, servers string, opts zk.Options) *zk.Client {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := zk.Connect(ctx, servers, opts)
	if err != nil {
		t.Fatalf("Connect(%q) = %v", servers, err)
	}
	t.Cleanup(c.Close)
	return c
}

// zuul plays Zuul with raw go-zookeeper calls (internal/zuultest, the
// stand-in the e2e tests use too), with the test's chroot put in front of
// every path.
type zuul = zuultest.Zuul

func newZuul(t testing.TB, servers string) *zuul { return zuultest.New(t, servers) }

func deadline(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestZuulRequestLifecycle runs one request through its life with Zuul on
// the other side: Zuul submits, the launcher locks, creates a node, fulfils;
// Zuul locks the node, checks allocated_to, deletes the request, marks the
// node in-use then used; the launcher deletes the node.
func TestZuulRequestLifecycle(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	ctx := deadline(t)
	z := newZuul(t, servers)
	c := connect(t, servers, zk.Options{LockIdentifier: "launcher-1"})

	reqID := z.Submit([]string{"pod-fedora"}, 100, map[string]any{"zuul_future_field": map[string]any{"x": 1}})
	before := z.Read("/nodepool/requests/" + reqID)

	reqs, err := c.ListRequests(ctx)
	if err != nil {
		t.Fatalf("ListRequests() = %v", err)
	}
	if len(reqs) != 1 || reqs[0].ID != reqID {
		t.Fatalf("ListRequests() = %v, want [%s]", reqs, reqID)
	}
	lock, req, err := c.TryLockRequest(ctx, reqID)
	if err != nil {
		t.Fatalf("TryLockRequest(%s) = %v", reqID, err)
	}
	if diff := cmp.Diff([]string{"pod-fedora"}, req.NodeTypes); diff != "" {
		t.Errorf("NodeTypes (-want +got):\n%s", diff)
	}
	if req.State != zk.RequestRequested || req.Requestor != "zuul-test-scheduler" || req.TenantName != "example-tenant" || !req.Reuse {
		t.Errorf("request = %+v, want requested by zuul-test-scheduler for example-tenant, reuse", req)
	}
	if err := c.MarkPending(ctx, req); err != nil {
		t.Fatalf("MarkPending() = %v", err)
	}

	n := &zk.Node{
		Provider: "kubernetes", Pool: "main", Type: []string{"pod-fedora"},
		AllocatedTo: req.ID, Launcher: "launcher-1", State: zk.NodeBuilding,
	}
	if err := c.CreateNode(ctx, n); err != nil {
		t.Fatalf("CreateNode() = %v", err)
	}
	if len(n.ID) != 10 {
		t.Errorf("node id = %q, want 10 digits", n.ID)
	}
	nodeLock, n, err := c.TryLockNode(ctx, n.ID)
	if err != nil {
		t.Fatalf("TryLockNode() = %v", err)
	}
	kc := zk.KubeConnection{Name: "ns-1", Namespace: "ns-1", Host: "https://10.0.0.1:6443", Token: "tok", User: "zuul-worker", CACert: "Y2E=", Pod: "pod-fedora"}
	if err := n.SetKubeConnection(kc); err != nil {
		t.Fatal(err)
	}
	n.ConnectionType = zk.ConnectionKubectl
	n.InterfaceIP = "pod-fedora"
	n.ExternalID = "ns-1"
	n.PythonPath = "auto"
	n.SetState(zk.NodeReady)
	if err := c.UpdateNode(ctx, n); err != nil {
		t.Fatalf("UpdateNode() = %v", err)
	}
	if err := nodeLock.Release(ctx); err != nil {
		t.Fatalf("Release() = %v", err)
	}
	if err := c.Fulfil(ctx, req, []string{n.ID}); err != nil {
		t.Fatalf("Fulfil() = %v", err)
	}
	if err := lock.Release(ctx); err != nil {
		t.Fatalf("Release() = %v", err)
	}

	// What Zuul reads back.
	after := z.Read("/nodepool/requests/" + reqID)
	for _, k := range []string{"requestor_data", "requestor", "node_types", "provider", "event_id", "created_time", "tenant_name", "zuul_future_field", "relative_priority"} {
		if diff := cmp.Diff(before[k], after[k]); diff != "" {
			t.Errorf("request member %q changed (-before +after):\n%s", k, diff)
		}
	}
	if after["state"] != "fulfilled" {
		t.Errorf("request state = %v, want fulfilled", after["state"])
	}
	if diff := cmp.Diff([]any{n.ID}, after["nodes"]); diff != "" {
		t.Errorf("request nodes (-want +got):\n%s", diff)
	}
	if _, ok := after["declined_by"].([]any); !ok {
		t.Errorf("declined_by = %#v, want a list", after["declined_by"])
	}

	// Zuul accepts the nodes.
	unlock, ok := z.Lock("/nodepool/nodes/"+n.ID+"/lock", 0)
	if !ok {
		t.Fatalf("zuul: node %s is locked by someone else", n.ID)
	}
	nd := z.Read("/nodepool/nodes/" + n.ID)
	if nd["allocated_to"] != reqID {
		t.Fatalf("node allocated_to = %v, want %s", nd["allocated_to"], reqID)
	}
	wantCP := map[string]any{"name": "ns-1", "namespace": "ns-1", "host": "https://10.0.0.1:6443", "skiptls": false, "token": "tok", "user": "zuul-worker", "ca_crt": "Y2E=", "pod": "pod-fedora"}
	if diff := cmp.Diff(wantCP, nd["connection_port"]); diff != "" {
		t.Errorf("connection_port (-want +got):\n%s", diff)
	}
	if nd["connection_type"] != "kubectl" || nd["interface_ip"] != "pod-fedora" || nd["state"] != "ready" {
		t.Errorf("node = %v, want a ready kubectl node for pod-fedora", nd)
	}
	if err := z.Conn.Delete(z.P("/nodepool/requests/"+reqID), -1); err != nil {
		t.Fatalf("zuul: deleting request: %v", err)
	}
	nd["state"] = "in-use"
	nd["id"] = n.ID // Zuul's Node.toDict writes its id
	z.SetJSON("/nodepool/nodes/"+n.ID, nd)

	// The launcher sees the node in use and locked by Zuul.
	got, err := c.GetNode(ctx, n.ID)
	if err != nil {
		t.Fatalf("GetNode() = %v", err)
	}
	if got.State != zk.NodeInUse || !got.Locked || got.LockHolder == nil || got.LockHolder.SessionID != z.Conn.SessionID() {
		t.Errorf("GetNode() = state %q, locked %v, holder %+v; want in-use, locked by zuul's session %#x", got.State, got.Locked, got.LockHolder, z.Conn.SessionID())
	}
	if _, _, err := c.TryLockNode(ctx, n.ID); !errors.Is(err, zk.ErrLocked) {
		t.Errorf("TryLockNode() of Zuul's node = %v, want ErrLocked", err)
	}
	if gotKC, err := got.KubeConnection(); err != nil || gotKC != kc {
		t.Errorf("KubeConnection() = %+v, %v; want %+v", gotKC, err, kc)
	}

	// Zuul returns the node; the launcher, waiting on the lock, gets it.
	nd["state"] = "used"
	z.SetJSON("/nodepool/nodes/"+n.ID, nd)
	type result struct {
		lock *zk.Lock
		node *zk.Node
		err  error
	}
	res := make(chan result, 1)
	go func() {
		l, n, err := c.LockNode(ctx, n.ID)
		res <- result{l, n, err}
	}()
	unlock()
	r := <-res
	if r.err != nil {
		t.Fatalf("LockNode() = %v", r.err)
	}
	if r.node.State != zk.NodeUsed {
		t.Errorf("node state = %q, want used", r.node.State)
	}
	if id, ok := r.node.Extra("id"); !ok || string(id) != `"`+n.ID+`"` {
		t.Errorf("Extra(id) = %s, %v; want Zuul's id kept", id, ok)
	}
	if err := c.DeleteNode(ctx, r.node); err != nil {
		t.Fatalf("DeleteNode() = %v", err)
	}
	if ok, _, err := z.Conn.Exists(z.P("/nodepool/nodes/" + n.ID)); err != nil || ok {
		t.Errorf("node znode exists = %v, %v after DeleteNode; want gone", ok, err)
	}
	if held, err := r.lock.Held(ctx); err != nil || held {
		t.Errorf("Held() = %v, %v after DeleteNode; want false", held, err)
	}
}

// TestLockInterop checks both directions of the kazoo recipe against
// Zuul's raw contender.
func TestLockInterop(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	ctx := deadline(t)
	z := newZuul(t, servers)
	c := connect(t, servers, zk.Options{LockIdentifier: "kubepool-test"})
	reqID := z.Submit([]string{"x"}, 100, nil)

	unlock, ok := z.Lock("/nodepool/requests-lock/"+reqID, 0)
	if !ok {
		t.Fatal("zuul: could not take a free lock")
	}
	_, _, err := c.TryLockRequest(ctx, reqID)
	var le *zk.LockedError
	if !errors.As(err, &le) || !errors.Is(err, zk.ErrLocked) {
		t.Fatalf("TryLockRequest() = %v, want a *LockedError", err)
	}
	if le.Holder == nil || le.Holder.SessionID != z.Conn.SessionID() {
		t.Errorf("LockedError.Holder = %+v, want Zuul's session %#x", le.Holder, z.Conn.SessionID())
	}
	// A failed try leaves no contender behind.
	if ch, _, err := z.Conn.Children(z.P("/nodepool/requests-lock/" + reqID)); err != nil || len(ch) != 1 {
		t.Errorf("contenders after failed try = %v, %v; want only Zuul's", ch, err)
	}

	// A blocking lock waits for Zuul and gets the lock when Zuul lets go.
	got := make(chan error, 1)
	var held *zk.Lock
	go func() {
		l, _, err := c.LockRequest(ctx, reqID)
		held = l
		got <- err
	}()
	// Wait until our contender is queued behind Zuul's.
	for {
		ch, _, ev, err := z.Conn.ChildrenW(z.P("/nodepool/requests-lock/" + reqID))
		if err != nil {
			t.Fatal(err)
		}
		if len(ch) == 2 {
			break
		}
		select {
		case <-ev:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	select {
	case err := <-got:
		t.Fatalf("LockRequest() returned %v while Zuul holds the lock", err)
	default:
	}
	unlock()
	if err := <-got; err != nil {
		t.Fatalf("LockRequest() = %v", err)
	}

	// Now Zuul cannot take it.
	if _, ok := z.Lock("/nodepool/requests-lock/"+reqID, 0); ok {
		t.Error("zuul took a lock kubepool holds")
	}
	h, err := c.NodeLockHolder(ctx, "0000000000")
	if err != nil || h != nil {
		t.Errorf("NodeLockHolder(missing) = %v, %v; want nil, nil", h, err)
	}
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	release, ok := z.Lock("/nodepool/requests-lock/"+reqID, 0)
	if !ok {
		t.Error("zuul could not take the lock after Release")
	} else {
		release()
	}

	// Locking a request that is gone is ErrNoNode, and does not leave the
	// lock directory behind.
	if err := c.DeleteRequest(ctx, reqID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.TryLockRequest(ctx, reqID); !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("TryLockRequest(deleted) = %v, want ErrNoNode", err)
	}
	if ok, _, _ := z.Conn.Exists(z.P("/nodepool/requests-lock/" + reqID)); ok {
		t.Error("lock directory of a deleted request left behind")
	}
	// Locking a node that is gone is ErrNoNode and does not create it.
	if _, _, err := c.TryLockNode(ctx, "0000000042"); !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("TryLockNode(missing) = %v, want ErrNoNode", err)
	}
	if ok, _, _ := z.Conn.Exists(z.P("/nodepool/nodes/0000000042")); ok {
		t.Error("locking a missing node created it")
	}
}

// TestLockNewDirectory: the lock of a new request or node, whose directory
// does not exist yet, is taken in one transaction with its contender. Zuul
// sees it held by a kazoo-shaped contender and takes it once released; the
// first lock of all, with /nodepool/requests-lock itself missing, makes the
// parents first.
func TestLockNewDirectory(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	ctx := deadline(t)
	z := newZuul(t, servers)
	c := connect(t, servers, zk.Options{LockIdentifier: "kubepool-test"})
	for i := range 2 {
		reqID := z.Submit([]string{"x"}, 100, nil)
		dir := "/nodepool/requests-lock/" + reqID
		if ok, _, _ := z.Conn.Exists(z.P(dir)); ok {
			t.Fatalf("lock %d: %s exists before the first lock", i, dir)
		}
		l, r, err := c.TryLockRequest(ctx, reqID)
		if err != nil {
			t.Fatalf("lock %d: TryLockRequest() = %v", i, err)
		}
		if r.ID != reqID || r.State != zk.RequestRequested {
			t.Errorf("lock %d: request read under the lock = %s %s, want %s requested", i, r.ID, r.State, reqID)
		}
		ch, _, err := z.Conn.Children(z.P(dir))
		if err != nil || len(ch) != 1 || !strings.Contains(ch[0], "__lock__") {
			t.Fatalf("lock %d: contenders = %v, %v; want one kazoo contender", i, ch, err)
		}
		if data, st, err := z.Conn.Get(z.P(dir + "/" + ch[0])); err != nil || string(data) != "kubepool-test" || st.EphemeralOwner == 0 {
			t.Errorf("lock %d: contender data %q, ephemeral owner %v, err %v", i, data, st, err)
		}
		if _, ok := z.Lock(dir, 0); ok {
			t.Errorf("lock %d: zuul took a lock kubepool holds", i)
		}
		if _, _, err := c.TryLockRequest(ctx, reqID); !errors.Is(err, zk.ErrLocked) {
			t.Errorf("lock %d: second TryLockRequest() = %v, want ErrLocked", i, err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		release, ok := z.Lock(dir, 0)
		if !ok {
			t.Errorf("lock %d: zuul could not take the lock after Release", i)
		} else {
			release()
		}
	}
}

func TestListRequestsOrder(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	ctx := deadline(t)
	z := newZuul(t, servers)
	c := connect(t, servers, zk.Options{})

	subs := []struct {
		name     string
		priority int
		relative int
	}{
		{"check-late", 200, 0},
		{"gate-rel2", 100, 2},
		{"gate-rel0-first", 100, 0},
		{"gate-rel0-second", 100, 0},
		{"gate-rel1", 100, 1},
		{"post", 300, 0},
		{"urgent", 50, 9},
	}
	for _, s := range subs {
		z.Submit([]string{"x"}, s.priority, map[string]any{"relative_priority": s.relative, "event_id": s.name})
	}
	reqs, err := c.ListRequests(ctx)
	if err != nil {
		t.Fatalf("ListRequests() = %v", err)
	}
	var got []string
	for _, r := range reqs {
		got = append(got, r.EventID)
	}
	want := []string{"urgent", "gate-rel0-first", "gate-rel0-second", "gate-rel1", "gate-rel2", "check-late", "post"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListRequests() order (-want +got):\n%s", diff)
	}
}

func TestVersionedUpdateConflict(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	ctx := deadline(t)
	z := newZuul(t, servers)
	c := connect(t, servers, zk.Options{})
	id := z.Submit([]string{"x"}, 100, nil)

	a, err := c.GetRequest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.GetRequest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	a.RelativePriority = 5
	if err := c.UpdateRequest(ctx, a); err != nil {
		t.Fatalf("UpdateRequest(first) = %v", err)
	}
	b.SetState(zk.RequestPending)
	if err := c.UpdateRequest(ctx, b); !errors.Is(err, zk.ErrConflict) {
		t.Fatalf("UpdateRequest(stale) = %v, want ErrConflict", err)
	}
	if err := c.Fail(ctx, a); err != nil {
		t.Fatalf("Fail(current) = %v", err)
	}
	n := &zk.Node{State: zk.NodeReady}
	if err := c.CreateNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	stale := *n
	n.Comment = "first"
	if err := c.UpdateNode(ctx, n); err != nil {
		t.Fatalf("UpdateNode(first) = %v", err)
	}
	stale.Comment = "second"
	if err := c.UpdateNode(ctx, &stale); !errors.Is(err, zk.ErrConflict) {
		t.Fatalf("UpdateNode(stale) = %v, want ErrConflict", err)
	}
	if err := c.UpdateRequest(ctx, &zk.Request{ID: "100-0000009999"}); !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("UpdateRequest(missing) = %v, want ErrNoNode", err)
	}
}

func TestBadJSONNamesPath(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	ctx := deadline(t)
	z := newZuul(t, servers)
	c := connect(t, servers, zk.Options{})
	for _, tc := range []struct {
		name, data string
	}{
		{"not json", "{nope"},
		{"wrong type", `{"node_types": 5}`},
		{"array", `[1,2]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z.Mkdirs("/nodepool/requests")
			p, err := z.Conn.Create(z.P("/nodepool/requests/100-"), []byte(tc.data), gozk.FlagSequence, gozk.WorldACL(gozk.PermAll))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = z.Conn.Delete(p, -1) })
			id := p[strings.LastIndex(p, "/")+1:]
			_, err = c.GetRequest(ctx, id)
			var de *zk.DecodeError
			if !errors.As(err, &de) || de.Path != "/nodepool/requests/"+id {
				t.Errorf("GetRequest(%s) = %v, want a DecodeError naming the path", id, err)
			}
			if _, err := c.ListRequests(ctx); !errors.As(err, &de) {
				t.Errorf("ListRequests() = %v, want a DecodeError", err)
			}
		})
	}
}

func TestDecline(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	ctx := deadline(t)
	z := newZuul(t, servers)
	c := connect(t, servers, zk.Options{})
	var pools []*zk.Registration
	for _, id := range []string{"pool-a", "pool-b"} {
		r, err := c.Register(ctx, zk.Component{Kind: zk.KindPool, Hostname: "host", ID: id, Name: "main", ProviderName: "k8s-" + id, SupportedLabels: []string{"pod"}, Priority: 100, State: zk.ComponentRunning})
		if err != nil {
			t.Fatalf("Register() = %v", err)
		}
		pools = append(pools, r)
	}
	id := z.Submit([]string{"unknown"}, 100, nil)
	for i, tc := range []struct {
		pool       string
		wantFailed bool
		wantState  string
	}{
		{"pool-a", false, "requested"},
		{"pool-a", false, "requested"}, // declining twice adds nothing
		{"pool-b", true, "failed"},
	} {
		l, r, err := c.TryLockRequest(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		failed, err := c.Decline(ctx, r, tc.pool)
		if err != nil || failed != tc.wantFailed {
			t.Errorf("%d: Decline(%s) = %v, %v; want %v", i, tc.pool, failed, err, tc.wantFailed)
		}
		_ = l.Release(ctx)
		d := z.Read("/nodepool/requests/" + id)
		if d["state"] != tc.wantState {
			t.Errorf("%d: state = %v, want %s", i, d["state"], tc.wantState)
		}
	}
	d := z.Read("/nodepool/requests/" + id)
	if diff := cmp.Diff([]any{"pool-a", "pool-b"}, d["declined_by"]); diff != "" {
		t.Errorf("declined_by (-want +got):\n%s", diff)
	}
	// What Zuul's getRegisteredLaunchers reads.
	ch, _, err := z.Conn.Children(z.P("/nodepool/components/pool"))
	if err != nil || len(ch) != 2 {
		t.Fatalf("pool components = %v, %v", ch, err)
	}
	comp := z.Read("/nodepool/components/pool/" + ch[0])
	want := map[string]any{"hostname": "host", "kind": "pool", "state": "running", "version": nil, "model_api": 0.0, "id": comp["id"], "name": "main", "provider_name": comp["provider_name"], "supported_labels": []any{"pod"}, "priority": 100.0, "paused": false}
	if diff := cmp.Diff(want, comp); diff != "" {
		t.Errorf("pool component (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(ch[0], "host") || len(ch[0]) != len("host")+10 {
		t.Errorf("component znode %q, want host<10-digit sequence>", ch[0])
	}
	for _, r := range pools {
		if err := r.Unregister(ctx); err != nil {
			t.Error(err)
		}
	}
	if got, err := c.ListComponents(ctx, zk.KindPool); err != nil || len(got) != 0 {
		t.Errorf("ListComponents() after Unregister = %v, %v; want none", got, err)
	}
}

func TestWatchRequests(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	ctx := deadline(t)
	z := newZuul(t, servers)
	c := connect(t, servers, zk.Options{})
	w := c.WatchRequests(ctx)
	waitFor := func(what string, cond func([]*zk.Request) bool) {
		t.Helper()
		for {
			reqs, err := c.ListRequests(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if cond(reqs) {
				return
			}
			select {
			case <-w:
			case <-ctx.Done():
				t.Fatalf("waiting for %s: %v", what, ctx.Err())
			}
		}
	}
	id := z.Submit([]string{"x"}, 100, nil)
	waitFor("the new request", func(rs []*zk.Request) bool { return len(rs) == 1 })
	d := z.Read("/nodepool/requests/" + id)
	d["relative_priority"] = 7
	z.SetJSON("/nodepool/requests/"+id, d)
	waitFor("the changed request", func(rs []*zk.Request) bool { return len(rs) == 1 && rs[0].RelativePriority == 7 })
	if err := z.Conn.Delete(z.P("/nodepool/requests/"+id), -1); err != nil {
		t.Fatal(err)
	}
	waitFor("the request to go", func(rs []*zk.Request) bool { return len(rs) == 0 })
}

func TestSessionExpiryReregisters(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	ctx := deadline(t)
	z := newZuul(t, servers)
	var cut testenv.Cutter
	events := make(chan zk.SessionEvent, 16)
	c := connect(t, servers, zk.Options{
		SessionTimeout: 2 * time.Second,
		Dialer:         cut.Dial,
		OnSessionEvent: func(e zk.SessionEvent) { events <- e },
	})
	_, firstSession := c.State()
	reg, err := c.Register(ctx, zk.Component{Kind: zk.KindPool, Hostname: "host", ID: "pool-1", SupportedLabels: []string{"pod"}, State: zk.ComponentRunning})
	if err != nil {
		t.Fatalf("Register() = %v", err)
	}
	launcher, err := c.Register(ctx, zk.Component{Kind: zk.KindLauncher, Hostname: "host", State: zk.ComponentRunning})
	if err != nil {
		t.Fatalf("Register() = %v", err)
	}
	first := reg.Path()
	reregistered := reg.Registered()
	reqID := z.Submit([]string{"pod"}, 100, nil)
	lock, _, err := c.TryLockRequest(ctx, reqID)
	if err != nil {
		t.Fatal(err)
	}

	// Cut the client off and wait until the server drops the session (its
	// ephemeral component znode goes away).
	ok, _, gone, err := z.Conn.ExistsW(z.P(first))
	if err != nil || !ok {
		t.Fatalf("component %s exists = %v, %v", first, ok, err)
	}
	cut.Cut()
	select {
	case ev := <-gone:
		if ev.Type != gozk.EventNodeDeleted {
			t.Fatalf("component watch: %+v, want deletion", ev)
		}
	case <-ctx.Done():
		t.Fatalf("waiting for the session to expire: %v", ctx.Err())
	}
	cut.Restore()

	select {
	case <-reregistered:
	case <-ctx.Done():
		t.Fatalf("waiting for re-registration: %v", ctx.Err())
	}
	st, newSession := c.State()
	if st != zk.StateConnected || newSession == firstSession {
		t.Errorf("State() = %v, %#x; want connected with a new session (old %#x)", st, newSession, firstSession)
	}
	var sawExpired bool
	for len(events) > 0 {
		if e := <-events; e.State == zk.StateExpired {
			sawExpired = true
		}
	}
	if !sawExpired {
		t.Error("OnSessionEvent never reported StateExpired")
	}
	comps, err := c.ListComponents(ctx, zk.KindPool)
	if err != nil || len(comps) != 1 || comps[0].ID != "pool-1" || reg.Path() == first {
		t.Errorf("pool components after expiry = %+v, %v; want pool-1 re-registered at a new path", comps, err)
	}
	for {
		comps, err := c.ListComponents(ctx, zk.KindLauncher)
		if err != nil {
			t.Fatal(err)
		}
		if len(comps) == 1 && launcher.Path() != "" {
			break
		}
		select {
		case <-launcher.Registered():
		case <-ctx.Done():
			t.Fatalf("waiting for the launcher component: %v", ctx.Err())
		}
	}
	if held, err := lock.Held(ctx); err != nil || held {
		t.Errorf("request lock Held() after expiry = %v, %v; want false", held, err)
	}
	// The lock is free for the new session.
	l2, _, err := c.TryLockRequest(ctx, reqID)
	if err != nil {
		t.Fatalf("TryLockRequest() after expiry = %v", err)
	}
	_ = l2.Release(ctx)

	// Updates go to the new znode.
	if err := reg.Update(ctx, func(c *zk.Component) { c.Paused = true }); err != nil {
		t.Fatalf("Update() = %v", err)
	}
	if d := z.Read(reg.Path()); d["paused"] != true {
		t.Errorf("paused = %v after Update, want true", d["paused"])
	}
}
