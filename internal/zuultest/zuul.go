// Package zuultest plays Zuul's side of Nodepool's ZooKeeper protocol for
// tests: it submits node requests, watches them, takes kazoo-recipe locks,
// accepts and returns nodes, the way zuul/zk/nodepool.py and
// zuul/nodepool.py do. It talks to ZooKeeper with go-zookeeper directly,
// independently of kubepool's internal/zk, so that the launcher and
// internal/zk are tested against the protocol and not against themselves.
//
// It is the one Zuul stand-in: internal/zk's tests and the e2e tests use it.
package zuultest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// The znodes Zuul uses.
const (
	RequestRoot = "/nodepool/requests"
	NodesRoot   = "/nodepool/nodes"
)

// Zuul is a Zuul scheduler and executor as far as ZooKeeper sees them.
type Zuul struct {
	t testing.TB
	// Conn is Zuul's own ZooKeeper session.
	Conn *zk.Conn
	// Root is the chroot, "" for none; Zuul's paths go below it.
	Root string
}

// New connects to servers, "host:port[,host:port...][/chroot]", and
// returns once the session is established. The session ends with the
// test.
func New(t testing.TB, servers string) *Zuul {
	t.Helper()
	hosts, root, _ := strings.Cut(servers, "/")
	if root != "" {
		root = "/" + strings.TrimRight(root, "/")
	}
	conn, events, err := zk.Connect(strings.Split(hosts, ","), 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	if err != nil {
		t.Fatalf("zuul: connecting to ZooKeeper %s: %v", servers, err)
	}
	t.Cleanup(conn.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for conn.State() != zk.StateHasSession {
		select {
		case <-events:
		case <-ctx.Done():
			t.Fatalf("zuul: waiting for a ZooKeeper session with %s: %v", servers, ctx.Err())
		}
	}
	return &Zuul{t: t, Conn: conn, Root: root}
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// P is path below the chroot.
func (z *Zuul) P(path string) string { return z.Root + path }

// Submit writes a node request as Zuul's submitNodeRequest does: a
// persistent sequential znode named <priority, 3 digits>-. extra members
// are added to (or replace) Zuul's. It returns the request id.
func (z *Zuul) Submit(labels []string, priority int, extra map[string]any) string {
	z.t.Helper()
	now := float64(time.Now().UnixNano()) / 1e9
	d := map[string]any{
		"node_types":        labels,
		"requestor":         "zuul-test-scheduler",
		"created_time":      now,
		"provider":          nil,
		"state":             "requested",
		"state_time":        now,
		"relative_priority": 0,
		"event_id":          "e2e-" + RandHex(4),
		"tenant_name":       "example-tenant",
		"requestor_data": map[string]any{
			"build_set_uuid": RandHex(16),
			"tenant_name":    "example-tenant",
			"pipeline_name":  "check",
			"job_name":       "e2e-job",
			"job_uuid":       RandHex(16),
		},
		"nodes":       []string{},
		"declined_by": []string{},
		"reuse":       true,
	}
	for k, v := range extra {
		d[k] = v
	}
	data, _ := json.Marshal(d)
	// As Zuul's kazoo create(..., makepath=True): the parents are made
	// only when the create finds them missing.
	p := fmt.Sprintf("%s%s/%03d-", z.Root, RequestRoot, priority)
	path, err := z.Conn.Create(p, data, zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNoNode) {
		z.Mkdirs(RequestRoot)
		path, err = z.Conn.Create(p, data, zk.FlagSequence, zk.WorldACL(zk.PermAll))
	}
	if err != nil {
		z.t.Fatalf("zuul: submitting request: %v", err)
	}
	return path[strings.LastIndex(path, "/")+1:]
}

// Mkdirs makes p and its parents, below the chroot.
func (z *Zuul) Mkdirs(p string) {
	z.t.Helper()
	cur := ""
	for _, part := range strings.Split(strings.Trim(z.Root+p, "/"), "/") {
		cur += "/" + part
		if _, err := z.Conn.Create(cur, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			z.t.Fatalf("zuul: creating %s: %v", cur, err)
		}
	}
}

// GetJSON reads and decodes the znode at path.
func (z *Zuul) GetJSON(path string) (map[string]any, *zk.Stat, error) {
	data, st, err := z.Conn.Get(z.P(path))
	if err != nil {
		return nil, nil, err
	}
	var d map[string]any
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	return d, st, nil
}

// Read is GetJSON that fails the test on an error.
func (z *Zuul) Read(path string) map[string]any {
	z.t.Helper()
	d, _, err := z.GetJSON(path)
	if err != nil {
		z.t.Fatalf("zuul: reading %s: %v", path, err)
	}
	return d
}

// SetJSON stores d at path, whatever its version.
func (z *Zuul) SetJSON(path string, d map[string]any) {
	z.t.Helper()
	data, _ := json.Marshal(d)
	if _, err := z.Conn.Set(z.P(path), data, -1); err != nil {
		z.t.Fatalf("zuul: storing %s: %v", path, err)
	}
}

// WaitRequest watches request id until it is fulfilled or failed and
// returns it.
func (z *Zuul) WaitRequest(ctx context.Context, id string) map[string]any {
	z.t.Helper()
	path := RequestRoot + "/" + id
	for {
		data, _, ch, err := z.Conn.GetW(z.P(path))
		if err != nil {
			z.t.Fatalf("zuul: reading request %s: %v", id, err)
		}
		var d map[string]any
		if err := json.Unmarshal(data, &d); err != nil {
			z.t.Fatalf("zuul: decoding request %s: %v", id, err)
		}
		if s := d["state"]; s == "fulfilled" || s == "failed" {
			return d
		}
		select {
		case <-ch:
		case <-ctx.Done():
			z.t.Fatalf("zuul: request %s still %v: %v", id, d["state"], ctx.Err())
		}
	}
}

// Lock takes a kazoo-recipe lock: it creates an ephemeral sequential
// "<uuid4 hex>__lock__" contender and holds the lock once it is the lowest,
// waiting up to timeout (0: not at all) for the contenders before it. It
// returns the release function, or false if it did not get the lock.
func (z *Zuul) Lock(lockPath string, timeout time.Duration) (func(), bool) {
	z.t.Helper()
	z.Mkdirs(lockPath)
	me, err := z.Conn.Create(z.P(lockPath)+"/"+RandHex(16)+"__lock__", nil, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if err != nil {
		z.t.Fatalf("zuul: creating lock contender under %s: %v", lockPath, err)
	}
	release := func() { _ = z.Conn.Delete(me, -1) }
	seq := func(n string) string { return n[strings.LastIndex(n, "__lock__")+len("__lock__"):] }
	deadline := time.After(timeout)
	for {
		children, _, err := z.Conn.Children(z.P(lockPath))
		if err != nil {
			z.t.Fatalf("zuul: listing %s: %v", lockPath, err)
		}
		sort.Slice(children, func(i, j int) bool { return seq(children[i]) < seq(children[j]) })
		if z.P(lockPath)+"/"+children[0] == me {
			return release, true
		}
		if timeout == 0 {
			release()
			return nil, false
		}
		// Wait for the contender just before us to go, as kazoo does.
		prev := children[0]
		for _, c := range children {
			if z.P(lockPath)+"/"+c == me {
				break
			}
			prev = c
		}
		exists, _, ev, err := z.Conn.ExistsW(z.P(lockPath) + "/" + prev)
		if err != nil {
			z.t.Fatalf("zuul: watching %s: %v", prev, err)
		}
		if !exists {
			continue
		}
		select {
		case <-ev:
		case <-deadline:
			release()
			return nil, false
		}
	}
}

// AcceptNodes does what Zuul does with a fulfilled request: lock every
// node, check it is allocated to the request, delete the request, mark the
// nodes in-use. It returns the node records and a function that returns
// them (state "used", unlock) as Zuul does when the build ends.
func (z *Zuul) AcceptNodes(reqID string, req map[string]any) ([]map[string]any, func()) {
	z.t.Helper()
	var nodes []map[string]any
	var ids []string
	var unlocks []func()
	for _, v := range req["nodes"].([]any) {
		id := v.(string)
		unlock, ok := z.Lock(NodesRoot+"/"+id+"/lock", 30*time.Second) // as Zuul's lockNode(node, timeout=30)
		if !ok {
			z.t.Fatalf("zuul: node %s is locked by someone else", id)
		}
		unlocks = append(unlocks, unlock)
		n, _, err := z.GetJSON(NodesRoot + "/" + id)
		if err != nil {
			z.t.Fatalf("zuul: reading node %s: %v", id, err)
		}
		if n["allocated_to"] != reqID {
			z.t.Fatalf("zuul: node %s allocated to %v, want %s", id, n["allocated_to"], reqID)
		}
		nodes = append(nodes, n)
		ids = append(ids, id)
	}
	if err := z.Conn.Delete(z.P(RequestRoot+"/"+reqID), -1); err != nil {
		z.t.Fatalf("zuul: deleting request %s: %v", reqID, err)
	}
	z.SetNodes(ids, nodes, "in-use")
	return nodes, func() {
		z.SetNodes(ids, nodes, "used")
		for _, u := range unlocks {
			u()
		}
	}
}

// SetNodes sets the state of nodes ids (whose records nodes are, updated
// in place) as Zuul's storeNode does.
func (z *Zuul) SetNodes(ids []string, nodes []map[string]any, state string) {
	z.t.Helper()
	for i, id := range ids {
		cur, _, err := z.GetJSON(NodesRoot + "/" + id)
		if err != nil {
			z.t.Fatalf("zuul: reading node %s: %v", id, err)
		}
		cur["state"] = state
		cur["state_time"] = float64(time.Now().UnixNano()) / 1e9
		data, _ := json.Marshal(cur)
		if _, err := z.Conn.Set(z.P(NodesRoot+"/"+id), data, -1); err != nil {
			z.t.Fatalf("zuul: storing node %s: %v", id, err)
		}
		nodes[i] = cur
	}
}

// RandHex is n random bytes in hex, as uuid4().hex is for 16.
func RandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// WaitFulfilled waits until every request in ids is fulfilled (failing the
// test on a failed one) and returns the requests by id.
func (z *Zuul) WaitFulfilled(ctx context.Context, ids []string) map[string]map[string]any {
	z.t.Helper()
	reqs := map[string]map[string]any{}
	for _, id := range ids {
		req := z.WaitRequest(ctx, id)
		if req["state"] != "fulfilled" {
			z.t.Fatalf("request %s = %v (declined by %v), want fulfilled", id, req["state"], req["declined_by"])
		}
		reqs[id] = req
	}
	return reqs
}

// AcceptOnce accepts every request as Zuul does, checks that no node was
// given to two requests and that each is allocated to its own, and returns
// the functions that return the nodes.
func (z *Zuul) AcceptOnce(reqs map[string]map[string]any) []func() {
	z.t.Helper()
	seen := map[string]string{} // node id → request id
	var returns []func()
	for id, req := range reqs {
		nodes, ret := z.AcceptNodes(id, req)
		returns = append(returns, ret)
		for i, n := range req["nodes"].([]any) {
			if prev, dup := seen[n.(string)]; dup {
				z.t.Errorf("node %s given to requests %s and %s", n, prev, id)
			}
			seen[n.(string)] = id
			if nodes[i]["allocated_to"] != id {
				z.t.Errorf("node %s allocated to %v, want %s", n, nodes[i]["allocated_to"], id)
			}
		}
	}
	return returns
}

// WaitConnected waits until the Zuul stand-in has its session back.
func (z *Zuul) WaitConnected(ctx context.Context) {
	z.t.Helper()
	for z.Conn.State() != zk.StateHasSession {
		select {
		case <-ctx.Done():
			z.t.Fatalf("zuul: no ZooKeeper session: %v", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
