package zk

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// Request states (nodepool/zk/zookeeper.py).
const (
	RequestRequested = "requested"
	RequestPending   = "pending"
	RequestFulfilled = "fulfilled"
	RequestFailed    = "failed"
)

// Request is a node request, /nodepool/requests/<PPP>-<seq>, written by Zuul
// and worked by a launcher. Its JSON members are Nodepool's NodeRequest
// toDict; members this type does not know are kept across a write.
type Request struct {
	record

	// ID is the znode name, "<priority, 3 digits>-<sequence, 10 digits>".
	ID string `json:"-"`
	// Version is the znode's data version when read; UpdateRequest writes
	// only if it is unchanged.
	Version int32 `json:"-"`

	State            string
	StateTime        float64 // Unix seconds
	DeclinedBy       []string
	NodeTypes        []string // labels, one node each
	Nodes            []string // node ids, in NodeTypes order, set on fulfilment
	Reuse            bool
	Requestor        string
	RequestorData    map[string]any // Zuul's opaque data: build_set_uuid, job_name, ...
	Provider         string         // preferred provider (affinity), "" for none
	RelativePriority int
	EventID          string
	CreatedTime      float64
	TenantName       string
}

func (r *Request) fields() []field {
	return []field{
		{"state", &nullString{&r.State}},
		{"state_time", &nullFloat{&r.StateTime}},
		{"declined_by", &stringList{&r.DeclinedBy}},
		{"node_types", &stringList{&r.NodeTypes}},
		{"nodes", &stringList{&r.Nodes}},
		{"reuse", &r.Reuse},
		{"requestor", &nullString{&r.Requestor}},
		{"requestor_data", &r.RequestorData},
		{"provider", &nullString{&r.Provider}},
		{"relative_priority", &r.RelativePriority},
		{"event_id", &nullString{&r.EventID}},
		{"created_time", &nullFloat{&r.CreatedTime}},
		{"tenant_name", &nullString{&r.TenantName}},
	}
}

// MarshalJSON encodes the request as Nodepool writes it, keeping members
// it was decoded with that it does not model.
func (r *Request) MarshalJSON() ([]byte, error) { return r.encode(r.fields()) }

// UnmarshalJSON decodes a request, with Nodepool's defaults for absent
// members (reuse true).
func (r *Request) UnmarshalJSON(b []byte) error {
	r.Reuse = true
	return r.decode(b, r.fields())
}

// SetState sets State and StateTime (now), as Nodepool's state setter does.
func (r *Request) SetState(s string) {
	r.State = s
	r.StateTime = Timestamp(time.Now())
}

// Priority returns the request's queue priority, the 3-digit prefix of its
// id ("100" for Zuul's default; lower is served first).
func (r *Request) Priority() string {
	p, _, _ := strings.Cut(r.ID, "-")
	return p
}

// Sequence returns the sequence part of the request id.
func (r *Request) Sequence() string {
	_, s, _ := strings.Cut(r.ID, "-")
	return s
}

// DeclinedByID reports whether id is in DeclinedBy.
func (r *Request) DeclinedByID(id string) bool { return slices.Contains(r.DeclinedBy, id) }

// CompareRequests orders requests as Nodepool's launcher takes them: by
// priority (id prefix), then relative_priority, then submission order (id
// sequence).
func CompareRequests(a, b *Request) int {
	if c := strings.Compare(a.Priority(), b.Priority()); c != 0 {
		return c
	}
	if a.RelativePriority != b.RelativePriority {
		if a.RelativePriority < b.RelativePriority {
			return -1
		}
		return 1
	}
	return strings.Compare(a.Sequence(), b.Sequence())
}

func requestPath(id string) string     { return RequestRoot + "/" + id }
func requestLockPath(id string) string { return RequestLockRoot + "/" + id }

// SubmitRequest creates a request the way Zuul's submitNodeRequest does: a
// persistent sequential znode /nodepool/requests/<priority>-. It sets r.ID,
// r.Version and, if unset, CreatedTime, State and StateTime. Launchers do
// not submit requests; this is for tests and tools.
func (c *Client) SubmitRequest(ctx context.Context, r *Request, priority int) error {
	now := Timestamp(time.Now())
	if r.CreatedTime == 0 {
		r.CreatedTime = now
	}
	if r.State == "" {
		r.State = RequestRequested
		r.StateTime = now
	}
	data, err := r.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encoding request: %w", err)
	}
	if err := c.ensurePath(ctx, c.abs(RequestRoot)); err != nil {
		return err
	}
	p, err := c.conn.Create(c.abs(fmt.Sprintf("%s/%03d-", RequestRoot, priority)), data, zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if err != nil {
		return fmt.Errorf("submitting request: %w", zkErr(err))
	}
	r.ID = p[strings.LastIndex(p, "/")+1:]
	r.Version = 0
	return nil
}

// RequestIDs returns the ids of all requests, sorted by name as Nodepool's
// getNodeRequests does (priority, then sequence).
func (c *Client) RequestIDs(ctx context.Context) ([]string, error) {
	return c.childIDs(ctx, RequestRoot)
}

// ListRequests returns every request, in the order a launcher should take
// them (CompareRequests). Requests deleted while listing are skipped; a
// request whose data cannot be decoded fails the listing with a
// *DecodeError naming it.
func (c *Client) ListRequests(ctx context.Context) ([]*Request, error) {
	ids, err := c.RequestIDs(ctx)
	if err != nil {
		return nil, err
	}
	reqs, err := getAll(ctx, ids, c.GetRequest)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(reqs, CompareRequests)
	return reqs, nil
}

// GetRequest reads one request.
func (c *Client) GetRequest(ctx context.Context, id string) (*Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := requestPath(id)
	data, st, err := c.conn.Get(c.abs(p))
	if err != nil {
		return nil, fmt.Errorf("reading request %s: %w", id, zkErr(err))
	}
	r := &Request{ID: id, Version: st.Version}
	if err := r.UnmarshalJSON(data); err != nil {
		return nil, &DecodeError{Path: p, Err: err}
	}
	return r, nil
}

// UpdateRequest writes r if the znode's version is still r.Version
// (otherwise ErrConflict) and sets r.Version to the new one. The caller
// should hold the request's lock. While ZooKeeper cannot be reached the
// write is retried (Owed counts it) until it lands, ctx ends or the session
// ends (ErrSessionLost).
func (c *Client) UpdateRequest(ctx context.Context, r *Request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := r.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encoding request %s: %w", r.ID, err)
	}
	st, err := c.setData(ctx, c.session(), c.abs(requestPath(r.ID)), data, r.Version)
	if err != nil {
		return fmt.Errorf("storing request %s: %w", r.ID, zkErr(err))
	}
	r.Version = st.Version
	return nil
}

// DeleteRequest deletes a request (Zuul does this once it has accepted the
// nodes, or to cancel). A missing request is not an error.
func (c *Client) DeleteRequest(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := c.conn.Delete(c.abs(requestPath(id)), -1)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("deleting request %s: %w", id, zkErr(err))
	}
	return nil
}

// MarkPending sets a locked request pending (the launcher accepted it) and
// stores it.
func (c *Client) MarkPending(ctx context.Context, r *Request) error {
	r.SetState(RequestPending)
	return c.UpdateRequest(ctx, r)
}

// Fulfil records the nodes (ids in NodeTypes order) on a locked request,
// sets it fulfilled and stores it.
func (c *Client) Fulfil(ctx context.Context, r *Request, nodeIDs []string) error {
	r.Nodes = append(r.Nodes[:0:0], nodeIDs...)
	r.SetState(RequestFulfilled)
	return c.UpdateRequest(ctx, r)
}

// Fail sets a locked request failed and stores it.
func (c *Client) Fail(ctx context.Context, r *Request) error {
	r.SetState(RequestFailed)
	return c.UpdateRequest(ctx, r)
}

// Decline adds poolID (the pool component's id) to the locked request's
// declined_by and stores it. As Nodepool does, the request becomes failed if
// every registered pool component has now declined it, and requested (for
// another launcher to take) otherwise. It reports whether it failed.
func (c *Client) Decline(ctx context.Context, r *Request, poolID string) (failed bool, err error) {
	if !r.DeclinedByID(poolID) {
		r.DeclinedBy = append(r.DeclinedBy, poolID)
	}
	var pools []*Component
	err = c.owe(ctx, c.session(), func(bool) error {
		var err error
		pools, err = c.ListComponents(ctx, KindPool)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("declining request %s: %w", r.ID, err)
	}
	failed = true
	for _, p := range pools {
		if !r.DeclinedByID(p.ID) {
			failed = false
			break
		}
	}
	if failed {
		r.SetState(RequestFailed)
	} else {
		r.SetState(RequestRequested)
	}
	return failed, c.UpdateRequest(ctx, r)
}

// TryLockRequest takes the request's lock (/nodepool/requests-lock/<id>)
// without waiting, then reads the request, as Nodepool's lockNodeRequest
// does. It returns a *LockedError (ErrLocked) if another contender holds it
// and ErrNoNode if the request is gone.
func (c *Client) TryLockRequest(ctx context.Context, id string) (*Lock, *Request, error) {
	return c.lockRequest(ctx, id, false)
}

// LockRequest is TryLockRequest that waits for the lock until ctx is done.
func (c *Client) LockRequest(ctx context.Context, id string) (*Lock, *Request, error) {
	return c.lockRequest(ctx, id, true)
}

func (c *Client) lockRequest(ctx context.Context, id string, wait bool) (*Lock, *Request, error) {
	l, err := c.acquire(ctx, requestLockPath(id), true, wait)
	if err != nil {
		return nil, nil, fmt.Errorf("locking request %s: %w", id, err)
	}
	r, err := c.GetRequest(ctx, id)
	// We hold the lock while our session lasts: a dropped connection is
	// waited out rather than throwing the lock away.
	for err != nil && isRetryable(err) && !c.sessionEnded(l.sid) {
		if werr := c.retryWait(ctx, 100*time.Millisecond); werr != nil {
			break
		}
		r, err = c.GetRequest(ctx, id)
	}
	if err != nil {
		_ = l.Release(context.WithoutCancel(ctx))
		if errors.Is(err, ErrNoNode) {
			_ = c.DeleteRequestLock(context.WithoutCancel(ctx), id)
		}
		return nil, nil, err
	}
	return l, r, nil
}

// RequestLockIDs lists /nodepool/requests-lock; lock directories of requests
// that no longer exist are left behind and are for the launcher to clean up
// (DeleteRequestLock), as Nodepool's cleanup does.
func (c *Client) RequestLockIDs(ctx context.Context) ([]string, error) {
	return c.childIDs(ctx, RequestLockRoot)
}

// DeleteStaleRequestLock deletes the lock directory of request id if the
// request does not exist and nobody contends for its lock, as Nodepool's
// cleanup does; it reports whether it deleted it.
func (c *Client) DeleteStaleRequestLock(ctx context.Context, id string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	ok, _, err := c.conn.Exists(c.abs(requestPath(id)))
	if err != nil {
		return false, fmt.Errorf("looking for request %s: %w", id, zkErr(err))
	}
	if ok {
		return false, nil
	}
	err = c.conn.Delete(c.abs(requestLockPath(id)), -1)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, zk.ErrNoNode), errors.Is(err, zk.ErrNotEmpty):
		return false, nil // gone already, or someone is in it
	}
	return false, fmt.Errorf("deleting lock of request %s: %w", id, zkErr(err))
}

// DeleteRequestLock deletes a request's lock directory and any contenders
// in it.
func (c *Client) DeleteRequestLock(ctx context.Context, id string) error {
	return c.deleteTree(ctx, requestLockPath(id))
}
