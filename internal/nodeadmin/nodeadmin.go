// Package nodeadmin is what the nodepool command does to node records, for
// kubepool's operator commands: list nodes, requests and labels, show a
// node, hold it and release the hold, and mark it for deletion.
//
// Contract: every change is made the way Zuul and Nodepool make it, under
// the node's ZooKeeper lock (kazoo's Lock recipe, shared with them), with a
// versioned write, and the lock is released before returning. A node
// someone else holds (Zuul while a job uses it, a launcher while it builds
// or deletes it) is not changed: the error is a *LockedError naming the
// holder. An unknown node is a *UnknownNodeError (errors.Is zk.ErrNoNode);
// a change that the node's state does not allow is a *StateError. Nothing
// here deletes a Kubernetes resource: the launcher's cleanup does, once a
// node is used or deleting.
package nodeadmin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kubepool/kubepool/internal/zk"
)

// DefaultLockWait is how long a change waits for a node's lock, as
// Nodepool's `nodepool delete` does (5 s): long enough for a launcher's
// brief hold, short enough to report a node in use by a job.
const DefaultLockWait = 5 * time.Second

// UnknownNodeError: there is no node with that id.
type UnknownNodeError struct{ ID string }

func (e *UnknownNodeError) Error() string {
	return fmt.Sprintf("node %s does not exist: see `kubepool list` for the nodes there are", e.ID)
}

// Unwrap makes it match zk.ErrNoNode.
func (e *UnknownNodeError) Unwrap() error { return zk.ErrNoNode }

// LockedError: someone else holds the node's lock.
type LockedError struct {
	ID     string
	State  string         // the node's state when last read ("" if unknown)
	Holder *zk.LockHolder // nil if it let go just as we looked
}

func (e *LockedError) Error() string {
	who := "another ZooKeeper session"
	if h := e.Holder; h != nil {
		if h.Identifier != "" {
			who = fmt.Sprintf("%q (session %#x)", h.Identifier, h.SessionID)
		} else {
			who = fmt.Sprintf("session %#x (no lock identifier: Zuul, Nodepool or a kubepool launcher)", h.SessionID)
		}
	}
	state := ""
	if e.State != "" {
		state = " " + e.State
	}
	return fmt.Sprintf("node %s%s is locked by %s: Zuul holds a node's lock while a job uses it, a launcher while it builds or deletes it; try again once it is released", e.ID, state, who)
}

// Unwrap makes it match zk.ErrLocked.
func (e *LockedError) Unwrap() error { return zk.ErrLocked }

// StateError: the node is in a state the change does not apply to.
type StateError struct {
	ID     string
	Action string   // "hold", "return", ...
	State  string   // the node's state
	Want   []string // the states the action applies to
	Hint   string   // what to do instead, or ""
}

func (e *StateError) Error() string {
	msg := fmt.Sprintf("cannot %s node %s: it is %s, want %s", e.Action, e.ID, e.State, strings.Join(e.Want, " or "))
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

// Admin changes node records in one ZooKeeper.
type Admin struct {
	ZK *zk.Client
	// LockWait bounds the wait for a node's lock; 0 means DefaultLockWait.
	LockWait time.Duration
}

// Modify locks node id, calls change with the current record, stores it if
// change returns nil, and unlocks it. It returns the stored record.
func (a *Admin) Modify(ctx context.Context, id string, change func(*zk.Node) error) (*zk.Node, error) {
	lock, n, err := a.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer func() { _ = lock.Release(context.WithoutCancel(ctx)) }()
	if err := change(n); err != nil {
		return nil, err
	}
	if err := a.ZK.UpdateNode(ctx, n); err != nil {
		return nil, fmt.Errorf("storing node %s: %w", id, err)
	}
	return n, nil
}

// lock takes node id's lock, waiting up to LockWait.
func (a *Admin) lock(ctx context.Context, id string) (*zk.Lock, *zk.Node, error) {
	wait := a.LockWait
	if wait <= 0 {
		wait = DefaultLockWait
	}
	lctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	lock, n, err := a.ZK.LockNode(lctx, id)
	switch {
	case err == nil:
		return lock, n, nil
	case errors.Is(err, zk.ErrNoNode):
		return nil, nil, &UnknownNodeError{ID: id}
	case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		le := &LockedError{ID: id}
		if cur, gerr := a.ZK.GetNode(ctx, id); gerr == nil {
			le.State, le.Holder = cur.State, cur.LockHolder
		} else if errors.Is(gerr, zk.ErrNoNode) {
			return nil, nil, &UnknownNodeError{ID: id}
		}
		return nil, nil, le
	}
	return nil, nil, fmt.Errorf("locking node %s: %w", id, err)
}

// Get reads node id with its lock state; an unknown id is an
// *UnknownNodeError.
func (a *Admin) Get(ctx context.Context, id string) (*zk.Node, error) {
	n, err := a.ZK.GetNode(ctx, id)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, &UnknownNodeError{ID: id}
	}
	return n, err
}

// Delete marks node id for deletion as `nodepool delete` does: under its
// lock, state deleting. The launcher that owns the node's provider deletes
// its namespace and then the record. Nodes in any state can be deleted;
// one that is already deleting is left as it is.
func (a *Admin) Delete(ctx context.Context, id string) (*zk.Node, error) {
	return a.Modify(ctx, id, func(n *zk.Node) error {
		if n.State != zk.NodeDeleting {
			n.SetState(zk.NodeDeleting)
		}
		return nil
	})
}

// HoldOptions say why and how long a node is held.
type HoldOptions struct {
	// Reason goes into the node's comment, as Zuul's autohold writes it.
	Reason string
	// Job goes into hold_job; "" leaves it as it is.
	Job string
	// Expiration, if positive, is hold_expiration: the launcher deletes the
	// node once it has been held this long.
	Expiration time.Duration
}

// Hold keeps node id from being deleted or handed out, as Zuul's autohold
// does to the nodes of a failed build: state hold, comment the reason. It
// applies to in-use, used and unallocated ready nodes.
func (a *Admin) Hold(ctx context.Context, id string, o HoldOptions) (*zk.Node, error) {
	if strings.TrimSpace(o.Reason) == "" {
		return nil, errors.New("holding a node needs a reason: it goes into the node's comment for whoever finds it")
	}
	return a.Modify(ctx, id, func(n *zk.Node) error {
		want := []string{zk.NodeInUse, zk.NodeUsed, zk.NodeReady}
		if !slices.Contains(want, n.State) {
			return &StateError{ID: id, Action: "hold", State: n.State, Want: want}
		}
		if n.State == zk.NodeReady && n.AllocatedTo != "" {
			return &StateError{ID: id, Action: "hold", State: "ready and allocated to request " + n.AllocatedTo, Want: []string{"unallocated"}, Hint: "hold it once the requestor has it"}
		}
		n.SetState(zk.NodeHold)
		n.Comment = o.Reason
		if o.Job != "" {
			n.HoldJob = o.Job
		}
		n.HoldExpiration = int(o.Expiration / time.Second)
		return nil
	})
}

// ReleaseHold ends the hold of node id. A held node has run a job and is
// not handed out again: like Zuul's autohold-delete, it marks the node
// used, and the launcher deletes it.
func (a *Admin) ReleaseHold(ctx context.Context, id string) (*zk.Node, error) {
	return a.Modify(ctx, id, func(n *zk.Node) error {
		if n.State != zk.NodeHold {
			return &StateError{ID: id, Action: "release the hold of", State: n.State, Want: []string{zk.NodeHold}}
		}
		n.SetState(zk.NodeUsed)
		return nil
	})
}
