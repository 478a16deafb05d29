package nodeadmin_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubepool/kubepool/internal/nodeadmin"
	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

func connect(t *testing.T, servers string, opts zk.Options) *zk.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := zk.Connect(ctx, servers, opts)
	if err != nil {
		t.Fatalf("zk.Connect(%s) = %v", servers, err)
	}
	t.Cleanup(c.Close)
	return c
}

func createNode(t *testing.T, c *zk.Client, state string, mutate func(*zk.Node)) *zk.Node {
	t.Helper()
	n := &zk.Node{Provider: "dev", Pool: "main", Type: []string{"pod"}, ConnectionType: zk.ConnectionKubectl, ExternalID: "ns-1", InterfaceIP: "pod"}
	n.SetState(state)
	if mutate != nil {
		mutate(n)
	}
	if err := c.CreateNode(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestChanges(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	c := connect(t, servers, zk.Options{})
	a := &nodeadmin.Admin{ZK: c, LockWait: 200 * time.Millisecond}
	ctx := t.Context()

	for _, tt := range []struct {
		name      string
		from      string
		allocated string
		do        func(id string) (*zk.Node, error)
		want      string // state after, or "" for a *StateError
	}{
		{"hold in-use", zk.NodeInUse, "", func(id string) (*zk.Node, error) {
			return a.Hold(ctx, id, nodeadmin.HoldOptions{Reason: "why", Job: "job-1", Expiration: time.Hour})
		}, zk.NodeHold},
		{"hold ready", zk.NodeReady, "", func(id string) (*zk.Node, error) { return a.Hold(ctx, id, nodeadmin.HoldOptions{Reason: "why"}) }, zk.NodeHold},
		{"hold allocated ready", zk.NodeReady, "100-0000000001", func(id string) (*zk.Node, error) { return a.Hold(ctx, id, nodeadmin.HoldOptions{Reason: "why"}) }, ""},
		{"hold building", zk.NodeBuilding, "", func(id string) (*zk.Node, error) { return a.Hold(ctx, id, nodeadmin.HoldOptions{Reason: "why"}) }, ""},
		{"release hold", zk.NodeHold, "", func(id string) (*zk.Node, error) { return a.ReleaseHold(ctx, id) }, zk.NodeUsed},
		{"release in-use", zk.NodeInUse, "", func(id string) (*zk.Node, error) { return a.ReleaseHold(ctx, id) }, ""},
		{"delete ready", zk.NodeReady, "", func(id string) (*zk.Node, error) { return a.Delete(ctx, id) }, zk.NodeDeleting},
		{"delete hold", zk.NodeHold, "", func(id string) (*zk.Node, error) { return a.Delete(ctx, id) }, zk.NodeDeleting},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := createNode(t, c, tt.from, func(n *zk.Node) { n.AllocatedTo = tt.allocated })
			got, err := tt.do(n.ID)
			if tt.want == "" {
				if _, ok := errors.AsType[*nodeadmin.StateError](err); !ok {
					t.Fatalf("%s from %s = %v, want a *StateError", tt.name, tt.from, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s from %s = %v", tt.name, tt.from, err)
			}
			stored, err := c.GetNode(ctx, n.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != tt.want || stored.State != tt.want || stored.Locked {
				t.Errorf("%s from %s: state %s, stored %s (locked %v), want %s, unlocked", tt.name, tt.from, got.State, stored.State, stored.Locked, tt.want)
			}
		})
	}

	n := createNode(t, c, zk.NodeInUse, nil)
	held, err := a.Hold(ctx, n.ID, nodeadmin.HoldOptions{Reason: "flaky test", Job: "tenant/project/job", Expiration: 90 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if held.Comment != "flaky test" || held.HoldJob != "tenant/project/job" || held.HoldExpiration != 5400 {
		t.Errorf("Hold = comment %q hold_job %q hold_expiration %d, want the reason, the job, 5400", held.Comment, held.HoldJob, held.HoldExpiration)
	}
	if _, err := a.Hold(ctx, n.ID, nodeadmin.HoldOptions{}); err == nil || !strings.Contains(err.Error(), "reason") {
		t.Errorf("Hold without a reason = %v, want an error asking for one", err)
	}
}

func TestErrors(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	c := connect(t, servers, zk.Options{})
	zuul := connect(t, servers, zk.Options{LockIdentifier: "zuul-executor-1"})
	a := &nodeadmin.Admin{ZK: c, LockWait: 200 * time.Millisecond}
	ctx := t.Context()

	_, err := a.Delete(ctx, "0000009999")
	if ue, ok := errors.AsType[*nodeadmin.UnknownNodeError](err); !ok || ue.ID != "0000009999" || !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("Delete(unknown) = %v, want *UnknownNodeError matching zk.ErrNoNode", err)
	}
	if _, err := a.Info(ctx, "0000009999"); !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("Info(unknown) = %v, want zk.ErrNoNode", err)
	}

	n := createNode(t, c, zk.NodeInUse, nil)
	lock, _, err := zuul.LockNode(ctx, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Hold(ctx, n.ID, nodeadmin.HoldOptions{Reason: "x"})
	le, ok := errors.AsType[*nodeadmin.LockedError](err)
	if !ok || !errors.Is(err, zk.ErrLocked) || le.Holder == nil || le.Holder.Identifier != "zuul-executor-1" || le.State != zk.NodeInUse {
		t.Fatalf("Hold(locked node) = %v, want *LockedError naming zuul-executor-1", err)
	}
	if !strings.Contains(err.Error(), `locked by "zuul-executor-1"`) {
		t.Errorf("LockedError = %q, want it to name the holder", err)
	}
	if got, _ := c.GetNode(ctx, n.ID); got.State != zk.NodeInUse {
		t.Errorf("locked node changed to %s", got.State)
	}
	// Once the holder lets go, the change goes through.
	if err := lock.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Hold(ctx, n.ID, nodeadmin.HoldOptions{Reason: "x"}); err != nil {
		t.Errorf("Hold after release = %v", err)
	}
}

func TestListings(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	c := connect(t, servers, zk.Options{})
	a := &nodeadmin.Admin{ZK: c}
	ctx := t.Context()

	ready := createNode(t, c, zk.NodeReady, func(n *zk.Node) {
		_ = n.SetKubeConnection(zk.KubeConnection{Name: "ns-r", Namespace: "ns-r", Host: "https://k", Token: "t", User: "u", Pod: "machine"})
		n.ExternalID = "ns-r"
		n.InterfaceIP = "machine"
	})
	createNode(t, c, zk.NodeReady, func(n *zk.Node) { n.AllocatedTo = "100-0000000000" })
	createNode(t, c, zk.NodeReady, func(n *zk.Node) { n.Type = []string{"namespace"}; n.ConnectionType = zk.ConnectionNamespace })
	reg, err := c.Register(ctx, zk.Component{Kind: zk.KindPool, Hostname: "host-a", ID: "pool-a", Name: "main", ProviderName: "dev", SupportedLabels: []string{"pod", "namespace"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Unregister(context.Background()) })

	rows, err := a.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].ID != ready.ID || rows[0].Namespace != "ns-r" || rows[0].Pod != "machine" || rows[0].Locked != "unlocked" {
		t.Errorf("Nodes()[0] = %+v (of %d), want %s in ns-r/machine, unlocked", rows[0], len(rows), ready.ID)
	}

	two := 2
	labels, err := a.Labels(ctx, map[string]int{"pod": 2, "unserved": 0})
	if err != nil {
		t.Fatal(err)
	}
	zero := 0
	want := []nodeadmin.LabelRow{
		{Name: "namespace", Ready: 1, Launchers: []string{"dev/main@host-a"}},
		{Name: "pod", Ready: 1, MinReady: &two, Launchers: []string{"dev/main@host-a"}},
		{Name: "unserved", Ready: 0, MinReady: &zero, Launchers: []string{}},
	}
	if diff := cmp.Diff(want, labels); diff != "" {
		t.Errorf("Labels() (-want +got):\n%s", diff)
	}

	if err := c.SubmitRequest(ctx, &zk.Request{NodeTypes: []string{"pod"}, Requestor: "zuul", RequestorData: map[string]any{"build_set_uuid": "bs1"}}, 100); err != nil {
		t.Fatal(err)
	}
	reqs, err := a.Requests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 1 || reqs[0].BuildSet != "bs1" || reqs[0].State != zk.RequestRequested || reqs[0].Nodes == nil {
		t.Errorf("Requests() = %+v, want one requested with build set bs1", reqs)
	}

	info, err := a.Info(ctx, ready.ID)
	if err != nil {
		t.Fatal(err)
	}
	if info.Record["state"] != zk.NodeReady || info.Row.ID != ready.ID {
		t.Errorf("Info = %+v, want the ready node's record", info)
	}
}
