package zk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// Node states (nodepool/zk/zookeeper.py).
const (
	NodeInit     = "init"
	NodeBuilding = "building"
	NodeTesting  = "testing"
	NodeReady    = "ready"
	NodeInUse    = "in-use"
	NodeUsed     = "used"
	NodeHold     = "hold"
	NodeDeleting = "deleting"
	NodeFailed   = "failed"
	NodeAborted  = "aborted"
	NodeDeleted  = "deleted"
)

// Connection types of Kubernetes nodes.
const (
	ConnectionKubectl   = "kubectl"   // a pod
	ConnectionNamespace = "namespace" // a namespace
	ConnectionProject   = "project"   // an OpenShift project
)

// Node is a node record, /nodepool/nodes/<id>, written by the launcher and
// updated by Zuul (state in-use, used, hold; hold_job, comment, ...). Its
// JSON members are Nodepool's Node toDict; members this type does not know
// (Zuul writes "id", for one) are kept across a write.
type Node struct {
	record

	// ID is the znode name, a 10-digit sequence number.
	ID string `json:"-"`
	// Version is the znode's data version when read; UpdateNode writes only
	// if it is unchanged.
	Version int32 `json:"-"`
	// Locked and LockHolder are filled in by ListNodes and GetNode: whether
	// someone holds the node's lock and who (Zuul while the node is in use,
	// a launcher while building or deleting it).
	Locked     bool        `json:"-"`
	LockHolder *LockHolder `json:"-"`

	State       string
	StateTime   float64 // Unix seconds
	Cloud       string
	Provider    string
	Pool        string
	Type        []string // labels
	AllocatedTo string   // request id
	AZ          string
	Region      string
	PublicIPv4  string
	PrivateIPv4 string
	PublicIPv6  string
	HostID      string
	InterfaceIP string
	// ConnectionPort is raw JSON: a port number for SSH nodes, a
	// KubeConnection object for kubectl, namespace and project nodes. Unset,
	// it is written as 22, Nodepool's default. It is also written as
	// ssh_port, as Nodepool does for old Zuuls.
	ConnectionPort json.RawMessage
	ImageID        string
	Launcher       string
	CreatedTime    float64
	ExternalID     string
	Hostname       string
	Comment        string
	UserData       any
	HoldJob        string
	HostKeys       []string
	Username       string
	ConnectionType string
	ShellType      string
	HoldExpiration int // seconds; 0 for none
	Resources      map[string]any
	Slot           *int
	Attributes     map[string]any
	PythonPath     string
	TenantName     string
	DriverData     any
	Requestor      string
}

func (n *Node) fields() []field {
	return []field{
		{"state", &nullString{&n.State}},
		{"state_time", &nullFloat{&n.StateTime}},
		{"cloud", &nullString{&n.Cloud}},
		{"provider", &nullString{&n.Provider}},
		{"pool", &nullString{&n.Pool}},
		{"type", &stringList{&n.Type}},
		{"allocated_to", &nullString{&n.AllocatedTo}},
		{"az", &nullString{&n.AZ}},
		{"region", &nullString{&n.Region}},
		{"public_ipv4", &nullString{&n.PublicIPv4}},
		{"private_ipv4", &nullString{&n.PrivateIPv4}},
		{"public_ipv6", &nullString{&n.PublicIPv6}},
		{"host_id", &nullString{&n.HostID}},
		{"interface_ip", &nullString{&n.InterfaceIP}},
		{"connection_port", &rawValue{&n.ConnectionPort, "22"}},
		{"ssh_port", &rawValue{&n.ConnectionPort, "22"}},
		{"image_id", &nullString{&n.ImageID}},
		{"launcher", &nullString{&n.Launcher}},
		{"created_time", &nullFloat{&n.CreatedTime}},
		{"external_id", &nullString{&n.ExternalID}},
		{"hostname", &nullString{&n.Hostname}},
		{"comment", &nullString{&n.Comment}},
		{"user_data", &n.UserData},
		{"hold_job", &nullString{&n.HoldJob}},
		{"host_keys", &stringList{&n.HostKeys}},
		{"username", &defaultString{&n.Username, DefaultUsername}},
		{"connection_type", &nullString{&n.ConnectionType}},
		{"shell_type", &nullString{&n.ShellType}},
		{"hold_expiration", &seconds{&n.HoldExpiration}},
		{"resources", &n.Resources},
		{"slot", &n.Slot},
		{"attributes", &n.Attributes},
		{"python_path", &nullString{&n.PythonPath}},
		{"tenant_name", &nullString{&n.TenantName}},
		{"driver_data", &n.DriverData},
		{"requestor", &nullString{&n.Requestor}},
	}
}

// DefaultUsername is the user Zuul runs jobs as on a node whose record has
// no username; a node's username is written only when it is another.
const DefaultUsername = "zuul"

// MarshalJSON encodes the node as Nodepool writes it, keeping members it
// was decoded with that it does not model.
func (n *Node) MarshalJSON() ([]byte, error) { return n.encode(n.fields()) }

// UnmarshalJSON decodes a node with Nodepool's defaults for absent members:
// username "zuul", connection_port from ssh_port, else 22.
func (n *Node) UnmarshalJSON(b []byte) error {
	n.Username = DefaultUsername
	fs := n.fields()
	// connection_port wins over ssh_port: decode ssh_port first.
	slices.SortStableFunc(fs, func(a, b field) int {
		if a.name == "ssh_port" {
			return -1
		}
		if b.name == "ssh_port" {
			return 1
		}
		return 0
	})
	if err := n.decode(b, fs); err != nil {
		return err
	}
	if _, ok := n.raw["username"]; !ok {
		n.Username = DefaultUsername
	}
	return nil
}

// SetState sets State and StateTime (now), as Nodepool's state setter does.
func (n *Node) SetState(s string) {
	n.State = s
	n.StateTime = Timestamp(time.Now())
}

// detachedKey marks, in a node's user_data, an in-use node whose user
// does not hold its lock while using it (see SetDetached).
const detachedKey = "kubepool_detached"

// SetDetached marks n, in its user_data, as used by a requestor that does
// not hold the node's lock while it uses it (`kubepool request`, a command
// that exits). A launcher deletes an unlocked in-use node as abandoned, as
// Nodepool does when a Zuul executor dies, unless it is detached: a
// detached node lives until it is returned, held or deleted.
func (n *Node) SetDetached(by string) {
	ud, _ := n.UserData.(map[string]any)
	if ud == nil {
		ud = map[string]any{}
	}
	ud[detachedKey] = map[string]any{"requestor": by, "since": Timestamp(time.Now())}
	n.UserData = ud
}

// Detached reports whether n was marked with SetDetached.
func (n *Node) Detached() bool {
	ud, _ := n.UserData.(map[string]any)
	_, ok := ud[detachedKey]
	return ok
}

// KubeConnection is connection_port of a kubectl, namespace or project node
// (nodepool/driver/kubernetes/provider.py createNamespace/createPod).
type KubeConnection struct {
	Name      string `json:"name"`      // the namespace (or project) name
	Namespace string `json:"namespace"` // the namespace
	Host      string `json:"host"`      // API server URL
	SkipTLS   bool   `json:"skiptls"`
	Token     string `json:"token"`
	User      string `json:"user"`             // the service account
	CACert    string `json:"ca_crt,omitempty"` // base64 PEM; absent when skiptls
	Pod       string `json:"pod,omitempty"`    // the pod, for kubectl nodes
	// GitContainer and GitPath name the pod's git sidecar and where its
	// shared volume is mounted, when the label has one (kubepool; Zuul
	// reads only the keys above).
	GitContainer string `json:"git_container,omitempty"`
	GitPath      string `json:"git_path,omitempty"`
}

// SetKubeConnection sets ConnectionPort to kc.
func (n *Node) SetKubeConnection(kc KubeConnection) error {
	b, err := marshal(kc)
	if err != nil {
		return err
	}
	n.ConnectionPort = b
	return nil
}

// KubeConnection decodes ConnectionPort as a KubeConnection.
func (n *Node) KubeConnection() (KubeConnection, error) {
	var kc KubeConnection
	if len(n.ConnectionPort) == 0 || n.ConnectionPort[0] != '{' {
		return kc, fmt.Errorf("node %s: connection_port is %s, not an object", n.ID, n.ConnectionPort)
	}
	if err := json.Unmarshal(n.ConnectionPort, &kc); err != nil {
		return kc, fmt.Errorf("node %s: decoding connection_port: %w", n.ID, err)
	}
	return kc, nil
}

func nodePath(id string) string     { return NodeRoot + "/" + id }
func nodeLockPath(id string) string { return NodeRoot + "/" + id + "/lock" }

// CreateNode stores a new node as Nodepool's storeNode does: a persistent
// sequential znode under /nodepool/nodes/, created_time taken from
// state_time. It sets n.ID (10 digits) and n.Version. The node is not
// locked: create it in state init or building and lock it (TryLockNode)
// before doing anything slow.
func (c *Client) CreateNode(ctx context.Context, n *Node) error {
	if n.State == "" {
		n.SetState(NodeInit)
	}
	if n.StateTime != 0 {
		n.CreatedTime = n.StateTime
	} else {
		n.CreatedTime = Timestamp(time.Now())
	}
	data, err := n.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encoding node: %w", err)
	}
	p, err := c.conn.Create(c.abs(NodeRoot+"/"), data, zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNoNode) { // the first node ever
		if err := c.ensurePath(ctx, c.abs(NodeRoot)); err != nil {
			return err
		}
		p, err = c.conn.Create(c.abs(NodeRoot+"/"), data, zk.FlagSequence, zk.WorldACL(zk.PermAll))
	}
	if err != nil {
		return fmt.Errorf("creating node: %w", zkErr(err))
	}
	n.ID = p[strings.LastIndex(p, "/")+1:]
	n.Version = 0
	return nil
}

// NodeIDs returns the ids of all nodes, sorted.
func (c *Client) NodeIDs(ctx context.Context) ([]string, error) {
	return c.childIDs(ctx, NodeRoot)
}

// GetNode reads one node and its lock state. A node znode without data
// (left by a race between a lock and a delete) reads as a Node with empty
// State; delete it.
func (c *Client) GetNode(ctx context.Context, id string) (*Node, error) {
	n, err := c.getNodeData(ctx, id)
	if err != nil {
		return nil, err
	}
	h, err := c.lockHolder(ctx, nodeLockPath(id))
	if err != nil && !errors.Is(err, ErrNoNode) {
		return nil, fmt.Errorf("reading node %s: %w", id, err)
	}
	n.LockHolder = h
	n.Locked = h != nil
	return n, nil
}

// getNodeData reads one node, without its lock state.
func (c *Client) getNodeData(ctx context.Context, id string) (*Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := nodePath(id)
	data, st, err := c.conn.Get(c.abs(p))
	if err != nil {
		return nil, fmt.Errorf("reading node %s: %w", id, zkErr(err))
	}
	n := &Node{ID: id, Version: st.Version}
	if err := n.UnmarshalJSON(data); err != nil {
		return nil, &DecodeError{Path: p, Err: err}
	}
	return n, nil
}

// ListNodes returns every node, sorted by id. Nodes deleted while listing
// are skipped; a node whose data cannot be decoded fails the listing with a
// *DecodeError naming it.
func (c *Client) ListNodes(ctx context.Context) ([]*Node, error) {
	ids, err := c.NodeIDs(ctx)
	if err != nil {
		return nil, err
	}
	return getAll(ctx, ids, c.GetNode)
}

// ListNodeRecords is ListNodes without the lock state (Locked and
// LockHolder are not set): one read per node instead of three.
func (c *Client) ListNodeRecords(ctx context.Context) ([]*Node, error) {
	ids, err := c.NodeIDs(ctx)
	if err != nil {
		return nil, err
	}
	return getAll(ctx, ids, c.getNodeData)
}

// UpdateNode writes n if the znode's version is still n.Version (otherwise
// ErrConflict) and sets n.Version to the new one. The caller should hold the
// node's lock. While ZooKeeper cannot be reached the write is retried (Owed
// counts it) until it lands, ctx ends or the session ends (ErrSessionLost).
func (c *Client) UpdateNode(ctx context.Context, n *Node) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := n.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encoding node %s: %w", n.ID, err)
	}
	st, err := c.setData(ctx, c.session(), c.abs(nodePath(n.ID)), data, n.Version)
	if err != nil {
		return fmt.Errorf("storing node %s: %w", n.ID, zkErr(err))
	}
	n.Version = st.Version
	return nil
}

// DeleteNode deletes a node as Nodepool's deleteNode does: it first stores
// state "deleted" (so a reader that finds the lock gone before the znode
// knows why), then deletes the znode with its lock directory. The caller
// should hold the node's lock; the lock goes with the znode. A missing node
// is not an error. Like UpdateNode, it is retried while ZooKeeper cannot be
// reached.
func (c *Client) DeleteNode(ctx context.Context, n *Node) error {
	n.SetState(NodeDeleted)
	data, err := n.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encoding node %s: %w", n.ID, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sid := c.session()
	if _, err := c.setData(ctx, sid, c.abs(nodePath(n.ID)), data, -1); err != nil {
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		return fmt.Errorf("storing node %s: %w", n.ID, zkErr(err))
	}
	if err := c.owe(ctx, sid, func(bool) error { return c.deleteTree(ctx, nodePath(n.ID)) }); err != nil {
		return fmt.Errorf("deleting node %s: %w", n.ID, err)
	}
	return nil
}

// DeleteRawNode deletes a node znode and everything under it without
// looking at its data (Nodepool's deleteRawNode), for records without data.
func (c *Client) DeleteRawNode(ctx context.Context, id string) error {
	if err := c.deleteTree(ctx, nodePath(id)); err != nil {
		return fmt.Errorf("deleting node %s: %w", id, err)
	}
	return nil
}

// TryLockNode takes the node's lock (/nodepool/nodes/<id>/lock) without
// waiting, then reads the node, as Nodepool's lockNode does. It returns a
// *LockedError (ErrLocked) if another contender holds it and ErrNoNode if
// the node is gone.
func (c *Client) TryLockNode(ctx context.Context, id string) (*Lock, *Node, error) {
	return c.lockNode(ctx, id, false)
}

// LockNode is TryLockNode that waits for the lock until ctx is done.
func (c *Client) LockNode(ctx context.Context, id string) (*Lock, *Node, error) {
	return c.lockNode(ctx, id, true)
}

func (c *Client) lockNode(ctx context.Context, id string, wait bool) (*Lock, *Node, error) {
	// Never create /nodepool/nodes/<id> itself: locking a node that was just
	// deleted must not resurrect it as an empty znode.
	l, err := c.acquire(ctx, nodeLockPath(id), false, wait)
	if err != nil {
		return nil, nil, fmt.Errorf("locking node %s: %w", id, err)
	}
	// We hold the lock: read the data alone, waiting out a dropped
	// connection while our session lasts.
	n, err := c.getNodeData(ctx, id)
	for err != nil && isRetryable(err) && !c.sessionEnded(l.sid) {
		if werr := c.retryWait(ctx, 100*time.Millisecond); werr != nil {
			break
		}
		n, err = c.getNodeData(ctx, id)
	}
	if err != nil {
		_ = l.Release(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	n.Locked = true
	n.LockHolder = &LockHolder{Contender: l.name, Identifier: c.opts.LockIdentifier, SessionID: c.conn.SessionID()}
	return l, n, nil
}

// NodeLockHolder returns who holds the node's lock, or nil if nobody does.
func (c *Client) NodeLockHolder(ctx context.Context, id string) (*LockHolder, error) {
	h, err := c.lockHolder(ctx, nodeLockPath(id))
	if errors.Is(err, ErrNoNode) {
		return nil, nil
	}
	return h, err
}

// WatchNode returns a channel that receives a value when the node's data
// changes or it is deleted, and once at the start. It is closed when ctx is
// done or the node no longer exists.
func (c *Client) WatchNode(ctx context.Context, id string) <-chan struct{} {
	ch := make(chan struct{}, 1)
	go func() {
		defer close(ch)
		c.watchData(ctx, nodePath(id), func() { notify(ch) }, nil)
	}()
	return ch
}
