// Package requestor asks for nodes and gives them back the way Zuul does
// (zuul/nodepool.py, zuul/zk/nodepool.py), so that any CI system or shell
// script can use kubepool's launchers: Request submits a node request,
// watches it until a launcher fulfils it, locks each node, checks it was
// allocated to the request, deletes the request and marks the nodes in-use;
// Return marks them used, and the launcher deletes them.
//
// Locks: Zuul keeps the node locks for as long as a build uses the nodes,
// because its scheduler lives as long as the build, and a launcher deletes
// an in-use node nobody has locked as left behind by a Zuul that died (as
// Nodepool does). A requestor here is usually a command that exits, so
// Request holds the locks only while it accepts the nodes, marks them
// detached (zk.Node.SetDetached) as it marks them in-use, and then releases
// them: the launcher keeps detached in-use nodes. Return, a hold, or
// `kubepool delete` ends their life; until then they count against the
// provider's quota.
package requestor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kubepool/kubepool/internal/nodeadmin"
	"github.com/kubepool/kubepool/internal/zk"
)

// Priorities of node requests, Zuul's pipeline precedences (lower is
// served first).
const (
	PriorityHigh   = 100
	PriorityNormal = 200
	PriorityLow    = 300
)

// ErrNoLauncher is matched by errors for labels no registered launcher
// pool serves.
var ErrNoLauncher = errors.New("no launcher serves the label")

// UnservedError: some requested labels are served by no registered pool.
type UnservedError struct {
	Labels []string // requested and unserved
	Served []string // what the registered pools serve
}

func (e *UnservedError) Error() string {
	if len(e.Served) == 0 {
		return fmt.Sprintf("no launcher serves %s: no launcher is registered in this ZooKeeper (is `kubepool launcher` running, with the same zookeeper-servers and chroot?)", strings.Join(e.Labels, ", "))
	}
	return fmt.Sprintf("no launcher serves %s: the registered launchers serve %s (see `kubepool label-list`)", strings.Join(e.Labels, ", "), strings.Join(e.Served, ", "))
}

func (e *UnservedError) Unwrap() error { return ErrNoLauncher }

// FailedError: the launchers failed the request.
type FailedError struct {
	Request    string
	Labels     []string
	DeclinedBy []string
}

func (e *FailedError) Error() string {
	declined := ""
	if len(e.DeclinedBy) > 0 {
		declined = " (declined by " + strings.Join(e.DeclinedBy, ", ") + ")"
	}
	return fmt.Sprintf("request %s for %s failed%s: no launcher could make the nodes; their logs say why (an image that cannot be pulled, quota, a label they do not serve)",
		e.Request, strings.Join(e.Labels, ", "), declined)
}

// Spec is what to request.
type Spec struct {
	// Labels are the node types, one node each.
	Labels []string
	// Provider, if set, is the preferred provider (Zuul's provider
	// affinity for the child jobs of a paused job).
	Provider string
	// BuildSet is requestor_data.build_set_uuid; "" makes a new one.
	// Launchers use it to give a buildset's jobs resources of their own.
	BuildSet string
	// Priority of the request; 0 means PriorityNormal.
	Priority int
	// Requestor names the requestor in the request and in the nodes;
	// "" means "kubepool@<hostname>".
	Requestor string
	// JobName is requestor_data.job_name; "" means "kubepool-request".
	JobName string
	// Tenant is the request's tenant_name, if any.
	Tenant string
	// LockWait bounds the wait for each node's lock (Zuul: 30 s); 0 means
	// that.
	LockWait time.Duration
	// OnSubmit, if set, is called with the request id once it is
	// submitted, before the wait.
	OnSubmit func(id string)
	// OnUpdate, if set, is called with the request each time it is read
	// while waiting for it (state, declined_by, nodes so far): for
	// progress.
	OnUpdate func(*zk.Request)
}

// Result is a fulfilled request.
type Result struct {
	Request  string     `json:"request"`        // the request id (deleted once accepted)
	BuildSet string     `json:"build_set_uuid"` // requestor_data.build_set_uuid
	Nodes    []*zk.Node `json:"-"`              // in-use, in Labels order
}

// Request submits a request for spec's labels and waits, by watching it,
// until it is fulfilled or failed or ctx is done; then it accepts the nodes
// as Zuul does. A request that is not fulfilled is deleted before Request
// returns (Zuul's cancel), so no launcher works on it any longer; nodes
// already made for it go back to the warm pool.
func Request(ctx context.Context, c *zk.Client, spec Spec) (*Result, error) {
	if len(spec.Labels) == 0 {
		return nil, errors.New("requesting nodes: no labels")
	}
	if err := checkServed(ctx, c, spec.Labels); err != nil {
		return nil, err
	}
	r := newRequest(spec)
	prio := spec.Priority
	if prio == 0 {
		prio = PriorityNormal
	}
	if err := c.SubmitRequest(ctx, r, prio); err != nil {
		return nil, fmt.Errorf("submitting request for %s: %w", strings.Join(spec.Labels, ", "), err)
	}
	res := &Result{Request: r.ID, BuildSet: r.RequestorData["build_set_uuid"].(string)}
	if spec.OnSubmit != nil {
		spec.OnSubmit(r.ID)
	}
	done, err := wait(ctx, c, r.ID, spec.OnUpdate)
	if err != nil {
		cancelRequest(ctx, c, r.ID)
		return nil, err
	}
	if done.State == zk.RequestFailed {
		cancelRequest(ctx, c, r.ID)
		return nil, &FailedError{Request: r.ID, Labels: spec.Labels, DeclinedBy: done.DeclinedBy}
	}
	nodes, err := accept(ctx, c, done, spec.LockWait)
	if err != nil {
		cancelRequest(ctx, c, r.ID)
		return nil, err
	}
	res.Nodes = nodes
	return res, nil
}

func newRequest(spec Spec) *zk.Request {
	requestor := spec.Requestor
	if requestor == "" {
		host, _ := os.Hostname()
		requestor = "kubepool@" + host
	}
	buildSet := spec.BuildSet
	if buildSet == "" {
		buildSet = randHex(16) // Zuul: uuid4().hex
	}
	job := spec.JobName
	if job == "" {
		job = "kubepool-request"
	}
	data := map[string]any{
		"build_set_uuid": buildSet,
		"job_name":       job,
		"job_uuid":       randHex(16),
	}
	if spec.Tenant != "" {
		data["tenant_name"] = spec.Tenant
	}
	return &zk.Request{
		NodeTypes:     slices.Clone(spec.Labels),
		Requestor:     requestor,
		RequestorData: data,
		Provider:      spec.Provider,
		EventID:       "kubepool-" + randHex(8),
		TenantName:    spec.Tenant,
		Reuse:         true,
		DeclinedBy:    []string{},
		Nodes:         []string{},
	}
}

// checkServed fails early for labels no registered pool serves, which a
// launcher would leave waiting forever if none is registered at all.
func checkServed(ctx context.Context, c *zk.Client, labels []string) error {
	pools, err := c.ListComponents(ctx, zk.KindPool)
	if err != nil {
		return fmt.Errorf("listing launcher pools: %w", err)
	}
	var served []string
	for _, p := range pools {
		served = append(served, p.SupportedLabels...)
	}
	slices.Sort(served)
	served = slices.Compact(served)
	var missing []string
	for _, l := range labels {
		if !slices.Contains(served, l) && !slices.Contains(missing, l) {
			missing = append(missing, l)
		}
	}
	if len(missing) > 0 {
		return &UnservedError{Labels: missing, Served: served}
	}
	return nil
}

// wait watches request id until it is fulfilled or failed.
func wait(ctx context.Context, c *zk.Client, id string, onUpdate func(*zk.Request)) (*zk.Request, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changed := c.WatchRequests(wctx)
	var last *zk.Request
	for {
		r, err := c.GetRequest(ctx, id)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			return nil, fmt.Errorf("waiting for request %s: it was deleted by someone else", id)
		case err != nil && ctx.Err() == nil:
			return nil, fmt.Errorf("waiting for request %s: %w", id, err)
		case err == nil:
			last = r
			if onUpdate != nil {
				onUpdate(r)
			}
			if r.State == zk.RequestFulfilled || r.State == zk.RequestFailed {
				return r, nil
			}
		}
		select {
		case _, ok := <-changed:
			if !ok && ctx.Err() == nil {
				return nil, fmt.Errorf("waiting for request %s: watch ended", id)
			}
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			state := "unknown"
			if last != nil {
				state = last.State
				if len(last.DeclinedBy) > 0 {
					state += ", declined by " + strings.Join(last.DeclinedBy, ", ")
				}
			}
			return nil, fmt.Errorf("waiting for request %s (still %s): is a launcher with free quota serving it? (kubepool label-list, kubepool request-list): %w", id, state, context.Cause(ctx))
		}
	}
}

// accept does what Zuul's acceptNodes does with a fulfilled request: lock
// every node and check it is allocated to the request (before and after
// locking), delete the request, mark the nodes in-use. It then releases the
// locks (see the package doc).
func accept(ctx context.Context, c *zk.Client, r *zk.Request, lockWait time.Duration) ([]*zk.Node, error) {
	if len(r.Nodes) != len(r.NodeTypes) {
		return nil, fmt.Errorf("accepting request %s: fulfilled with %d nodes for %d labels", r.ID, len(r.Nodes), len(r.NodeTypes))
	}
	if lockWait <= 0 {
		lockWait = 30 * time.Second
	}
	var locks []*zk.Lock
	defer func() {
		for _, l := range locks {
			_ = l.Release(context.WithoutCancel(ctx))
		}
	}()
	nodes := make([]*zk.Node, len(r.Nodes))
	for i, id := range r.Nodes {
		if n, err := c.GetNode(ctx, id); err != nil {
			return nil, fmt.Errorf("accepting request %s: reading node %s: %w", r.ID, id, err)
		} else if n.AllocatedTo != r.ID {
			return nil, fmt.Errorf("accepting request %s: node %s is allocated to %q", r.ID, id, n.AllocatedTo)
		}
		lctx, cancel := context.WithTimeout(ctx, lockWait)
		lock, n, err := c.LockNode(lctx, id)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("accepting request %s: %w", r.ID, err)
		}
		locks = append(locks, lock)
		// The launcher may have given it to another request while we
		// waited for the lock.
		if n.AllocatedTo != r.ID {
			return nil, fmt.Errorf("accepting request %s: node %s was reallocated to %q", r.ID, id, n.AllocatedTo)
		}
		nodes[i] = n
	}
	if err := c.DeleteRequest(ctx, r.ID); err != nil {
		return nil, fmt.Errorf("accepting request %s: %w", r.ID, err)
	}
	for i, n := range nodes {
		n.SetState(zk.NodeInUse)
		// We let go of the lock below: say so, or the launcher takes the
		// node for one a dead Zuul left behind.
		n.SetDetached(r.Requestor)
		if err := c.UpdateNode(ctx, n); err != nil {
			// The request is gone; nodes already in-use would stay so:
			// give them back for deletion.
			for _, prev := range nodes[:i] {
				prev.SetState(zk.NodeUsed)
				_ = c.UpdateNode(context.WithoutCancel(ctx), prev)
			}
			return nil, fmt.Errorf("marking node %s in-use: %w", n.ID, err)
		}
	}
	return nodes, nil
}

// cancelRequest deletes a request that will not be accepted, as Zuul's
// cancelRequest does, even if ctx is done.
func cancelRequest(ctx context.Context, c *zk.Client, id string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = c.DeleteRequest(dctx, id)
}

// Return gives nodes back as Zuul does when a build ends: under each
// node's lock, state used; the launcher then deletes the node. Only in-use
// nodes can be returned. It returns the ids of the nodes it returned and
// every other node's error, joined.
func Return(ctx context.Context, a *nodeadmin.Admin, ids []string) (returned []string, err error) {
	var errs []error
	for _, id := range ids {
		_, err := a.Modify(ctx, id, func(n *zk.Node) error {
			if n.State != zk.NodeInUse {
				hint := ""
				switch n.State {
				case zk.NodeHold:
					hint = "use `kubepool release-hold`"
				case zk.NodeReady:
					hint = "nobody has requested it; `kubepool delete` deletes it"
				case zk.NodeUsed, zk.NodeDeleting:
					hint = "it is already returned; the launcher deletes it"
				}
				return &nodeadmin.StateError{ID: id, Action: "return", State: n.State, Want: []string{zk.NodeInUse}, Hint: hint}
			}
			n.SetState(zk.NodeUsed)
			return nil
		})
		if err != nil {
			errs = append(errs, err) // each names the node
			continue
		}
		returned = append(returned, id)
	}
	return returned, errors.Join(errs...)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// WaitDeleted waits, by watching, until the records of nodes ids are gone
// (the launcher deleted their Kubernetes resources first) or ctx is done.
func WaitDeleted(ctx context.Context, c *zk.Client, ids []string) error {
	for _, id := range ids {
		wctx, cancel := context.WithCancel(ctx)
		changed := c.WatchNode(wctx, id)
		for {
			n, err := c.GetNode(ctx, id)
			if errors.Is(err, zk.ErrNoNode) {
				break
			}
			if err != nil && ctx.Err() == nil {
				cancel()
				return fmt.Errorf("waiting for node %s to be deleted: %w", id, err)
			}
			state := "unknown"
			if n != nil {
				state = n.State
			}
			select {
			case <-changed: // closed too when the node is gone
			case <-ctx.Done():
				cancel()
				return fmt.Errorf("waiting for node %s to be deleted (still %s): is the launcher of its provider running? %w", id, state, context.Cause(ctx))
			}
		}
		cancel()
	}
	return nil
}
