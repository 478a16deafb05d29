package launcher

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kubepool/kubepool/internal/zk"
)

// Nodes returns every node, as rows of Nodepool's webapp /node-list.
func (l *Launcher) Nodes(ctx context.Context) ([]map[string]any, error) {
	nodes, err := l.zk.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	rows := make([]map[string]any, 0, len(nodes))
	for _, n := range nodes {
		locked := "unlocked"
		if n.Locked {
			locked = "locked"
		}
		rows = append(rows, map[string]any{
			"id": n.ID, "provider": n.Provider, "pool": n.Pool, "label": strings.Join(n.Type, ","), "labels": n.Type,
			"state": n.State, "age": ageSeconds(now, n.StateTime), "locked": locked,
			"external_id": n.ExternalID, "interface_ip": n.InterfaceIP, "hostname": n.Hostname,
			"connection_type": n.ConnectionType, "allocated_to": n.AllocatedTo, "launcher": n.Launcher,
			"hold_job": n.HoldJob, "comment": n.Comment,
		})
	}
	return rows, nil
}

// Requests returns every request, as rows of Nodepool's webapp /request-list.
func (l *Launcher) Requests(ctx context.Context) ([]map[string]any, error) {
	reqs, err := l.zk.ListRequests(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	rows := make([]map[string]any, 0, len(reqs))
	for _, r := range reqs {
		rows = append(rows, map[string]any{
			"id": r.ID, "relative_priority": r.RelativePriority, "state": r.State, "state_time": r.StateTime,
			"node_types": r.NodeTypes, "nodes": r.Nodes, "declined_by": r.DeclinedBy, "requestor": r.Requestor,
			"provider": r.Provider, "event_id": r.EventID, "age": ageSeconds(now, r.CreatedTime),
		})
	}
	return rows, nil
}

// Labels returns every configured label with its ready count, min-ready and
// the launchers' pools that serve it.
func (l *Launcher) Labels(ctx context.Context) ([]map[string]any, error) {
	nodes, err := l.zk.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	pools, err := l.zk.ListComponents(ctx, zk.KindPool)
	if err != nil {
		return nil, err
	}
	rows := make([]map[string]any, 0, len(l.cfg.Labels))
	for _, lb := range l.cfg.Labels {
		ready := 0
		for _, n := range nodes {
			if typeIs(n, lb.Name) && n.State == zk.NodeReady && n.AllocatedTo == "" {
				ready++
			}
		}
		var served []string
		for _, p := range pools {
			if slices.Contains(p.SupportedLabels, lb.Name) {
				served = append(served, p.ProviderName+"/"+p.Name+"@"+p.Hostname)
			}
		}
		slices.Sort(served)
		rows = append(rows, map[string]any{"name": lb.Name, "ready": ready, "min_ready": lb.MinReady, "launchers": slices.Compact(served)})
	}
	return rows, nil
}

// Ready reports whether the launcher is serving: registered, connected,
// and owing ZooKeeper no writes (a write or lock release that failed for
// want of a connection is retried until it lands; until then requests or
// nodes may be stuck behind it).
func (l *Launcher) Ready(ctx context.Context) error {
	l.mu.Lock()
	ready := l.ready
	l.mu.Unlock()
	if !ready {
		return errors.New("launcher not registered yet")
	}
	st, _ := l.zk.State()
	if n := l.zk.Owed(); n > 0 {
		return fmt.Errorf("owing ZooKeeper %d writes (session %s)", n, st)
	}
	if st != zk.StateConnected {
		return errors.New("ZooKeeper " + st.String())
	}
	return nil
}

func ageSeconds(now time.Time, ts float64) int64 {
	if ts <= 0 {
		return 0
	}
	return int64(math.Max(0, now.Sub(zk.TimeOf(ts)).Seconds()))
}
