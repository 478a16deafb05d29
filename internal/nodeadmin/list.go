package nodeadmin

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kubepool/kubepool/internal/zk"
)

// NodeRow is a node as `kubepool list` shows it. Its JSON members are those
// of Nodepool's webapp /node-list, plus namespace, pod, lock_holder and
// buildset.
type NodeRow struct {
	ID             string   `json:"id"`
	Provider       string   `json:"provider"`
	Pool           string   `json:"pool"`
	Label          string   `json:"label"`
	Labels         []string `json:"labels"`
	State          string   `json:"state"`
	Age            int64    `json:"age"` // seconds in this state
	Locked         string   `json:"locked"`
	LockHolder     string   `json:"lock_holder,omitempty"`
	ExternalID     string   `json:"external_id"`
	InterfaceIP    string   `json:"interface_ip"`
	Hostname       string   `json:"hostname"`
	ConnectionType string   `json:"connection_type"`
	AllocatedTo    string   `json:"allocated_to"`
	Launcher       string   `json:"launcher"`
	Requestor      string   `json:"requestor"`
	HoldJob        string   `json:"hold_job"`
	Comment        string   `json:"comment"`
	Namespace      string   `json:"namespace"`
	Pod            string   `json:"pod,omitempty"`
	// Buildset is the buildset of the node's request, if it had one
	// (kubepool's driver_data).
	Buildset string `json:"buildset,omitempty"`
}

// holderString describes a lock holder in a few words.
func holderString(h *zk.LockHolder) string {
	if h == nil {
		return ""
	}
	if h.Identifier != "" {
		return h.Identifier
	}
	return fmt.Sprintf("session %#x", h.SessionID)
}

// NewNodeRow makes the row of n as of now.
func NewNodeRow(n *zk.Node, now time.Time) NodeRow {
	r := NodeRow{
		ID: n.ID, Provider: n.Provider, Pool: n.Pool, Label: strings.Join(n.Type, ","), Labels: n.Type,
		State: n.State, Age: age(now, n.StateTime), Locked: "unlocked",
		ExternalID: n.ExternalID, InterfaceIP: n.InterfaceIP, Hostname: n.Hostname,
		ConnectionType: n.ConnectionType, AllocatedTo: n.AllocatedTo, Launcher: n.Launcher,
		Requestor: n.Requestor, HoldJob: n.HoldJob, Comment: n.Comment, Namespace: n.ExternalID,
	}
	if r.Labels == nil {
		r.Labels = []string{}
	}
	if n.Locked {
		r.Locked, r.LockHolder = "locked", holderString(n.LockHolder)
	}
	if kc, err := n.KubeConnection(); err == nil {
		if kc.Namespace != "" {
			r.Namespace = kc.Namespace
		}
		r.Pod = kc.Pod
	}
	if r.Pod == "" && n.ConnectionType == zk.ConnectionKubectl {
		r.Pod = n.InterfaceIP
	}
	if dd, ok := n.DriverData.(map[string]any); ok {
		r.Buildset, _ = dd["buildset"].(string)
	}
	return r
}

// Nodes lists every node, by id.
func (a *Admin) Nodes(ctx context.Context) ([]NodeRow, error) {
	nodes, err := a.ZK.ListNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	return NodeRows(nodes, time.Now()), nil
}

// NodeRows are the rows of nodes (with their lock state) as of now, in
// the order given: the one read model of nodes, which `kubepool list` and
// the launcher's /node-list both show.
func NodeRows(nodes []*zk.Node, now time.Time) []NodeRow {
	rows := make([]NodeRow, len(nodes))
	for i, n := range nodes {
		rows[i] = NewNodeRow(n, now)
	}
	return rows
}

// NodeInfo is everything about one node: its record as Nodepool writes it,
// with the id and lock state.
type NodeInfo struct {
	Row    NodeRow
	Record map[string]any // the znode's JSON, decoded
}

// MarshalJSON writes the record's members with id, locked and lock_holder
// added.
func (i NodeInfo) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	for k, v := range i.Record {
		m[k] = v
	}
	m["id"] = i.Row.ID
	m["locked"] = i.Row.Locked
	if i.Row.LockHolder != "" {
		m["lock_holder"] = i.Row.LockHolder
	}
	return json.Marshal(m)
}

// Info reads node id.
func (a *Admin) Info(ctx context.Context, id string) (*NodeInfo, error) {
	n, err := a.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	b, err := n.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding node %s: %w", id, err)
	}
	info := &NodeInfo{Row: NewNodeRow(n, time.Now())}
	if err := json.Unmarshal(b, &info.Record); err != nil {
		return nil, fmt.Errorf("decoding node %s: %w", id, err)
	}
	return info, nil
}

// RequestRow is a node request as `kubepool request-list` shows it; its
// JSON members are those of Nodepool's webapp /request-list, plus
// build_set_uuid from the requestor data.
type RequestRow struct {
	ID               string   `json:"id"`
	RelativePriority int      `json:"relative_priority"`
	State            string   `json:"state"`
	StateTime        float64  `json:"state_time"`
	NodeTypes        []string `json:"node_types"`
	Nodes            []string `json:"nodes"`
	DeclinedBy       []string `json:"declined_by"`
	Requestor        string   `json:"requestor"`
	Provider         string   `json:"provider"`
	EventID          string   `json:"event_id"`
	BuildSet         string   `json:"build_set_uuid,omitempty"`
	Age              int64    `json:"age"` // seconds since it was submitted
}

// Requests lists every request, in the order launchers take them.
func (a *Admin) Requests(ctx context.Context) ([]RequestRow, error) {
	reqs, err := a.ZK.ListRequests(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing requests: %w", err)
	}
	return RequestRows(reqs, time.Now()), nil
}

// RequestRows are the rows of reqs as of now, in the order launchers take
// them (as `kubepool request-list` and the launcher's /request-list show
// them).
func RequestRows(reqs []*zk.Request, now time.Time) []RequestRow {
	reqs = slices.Clone(reqs)
	slices.SortStableFunc(reqs, zk.CompareRequests)
	rows := make([]RequestRow, len(reqs))
	for i, r := range reqs {
		bs, _ := r.RequestorData["build_set_uuid"].(string)
		rows[i] = RequestRow{
			ID: r.ID, RelativePriority: r.RelativePriority, State: r.State, StateTime: r.StateTime,
			NodeTypes: nonNil(r.NodeTypes), Nodes: nonNil(r.Nodes), DeclinedBy: nonNil(r.DeclinedBy),
			Requestor: r.Requestor, Provider: r.Provider, EventID: r.EventID, BuildSet: bs, Age: age(now, r.CreatedTime),
		}
	}
	return rows
}

// LabelRow is a label as `kubepool label-list` shows it: the launchers'
// pools that serve it and its warm pool.
type LabelRow struct {
	Name string `json:"name"`
	// Ready counts ready nodes not allocated to a request.
	Ready int `json:"ready"`
	// MinReady is the configured warm pool size, nil when no config was
	// given (ZooKeeper does not carry it).
	MinReady *int `json:"min_ready"`
	// Launchers are the pools serving it, "provider/pool@hostname".
	Launchers []string `json:"launchers"`
}

// Labels lists the labels that registered pools serve together with
// configured (label name to min-ready; nil if no config is at hand), by
// name.
func (a *Admin) Labels(ctx context.Context, configured map[string]int) ([]LabelRow, error) {
	nodes, err := a.ZK.ListNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	pools, err := a.ZK.ListComponents(ctx, zk.KindPool)
	if err != nil {
		return nil, fmt.Errorf("listing pools: %w", err)
	}
	return LabelRows(nodes, pools, configured), nil
}

// LabelRows are the labels that pools serve together with configured
// (label name to min-ready; nil if no config is at hand), by name, with
// their ready, unallocated nodes (as `kubepool label-list` and the
// launcher's /label-list show them).
func LabelRows(nodes []*zk.Node, pools []*zk.Component, configured map[string]int) []LabelRow {
	rows := map[string]*LabelRow{}
	row := func(name string) *LabelRow {
		if rows[name] == nil {
			rows[name] = &LabelRow{Name: name, Launchers: []string{}}
		}
		return rows[name]
	}
	for name, min := range configured {
		row(name).MinReady = &min
	}
	for _, p := range pools {
		for _, l := range p.SupportedLabels {
			r := row(l)
			r.Launchers = append(r.Launchers, p.ProviderName+"/"+p.Name+"@"+p.Hostname)
		}
	}
	for _, n := range nodes {
		if n.State == zk.NodeReady && n.AllocatedTo == "" && len(n.Type) > 0 {
			if r, ok := rows[n.Type[0]]; ok {
				r.Ready++
			}
		}
	}
	out := make([]LabelRow, 0, len(rows))
	for _, r := range rows {
		slices.Sort(r.Launchers)
		r.Launchers = slices.Compact(r.Launchers)
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b LabelRow) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func age(now time.Time, ts float64) int64 {
	if ts <= 0 {
		return 0
	}
	return max(0, int64(now.Sub(zk.TimeOf(ts))/time.Second))
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
