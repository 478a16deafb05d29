package zk_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubepool/kubepool/internal/zk"
)

func decodeMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return m
}

// A record written back with no change keeps every member, known or not,
// with its value; a change touches only the member changed.
func TestNodeRoundTrip(t *testing.T) {
	// As Zuul writes a node back (zuul/model.py Node.toDict): its own "id",
	// every key it read, and a member from some future version.
	in := `{"id": "0000000007", "state": "in-use", "state_time": 1712345678.123456,
		"provider": "k8s", "pool": "main", "type": ["pod"], "allocated_to": "100-0000000001",
		"connection_port": {"name": "ns", "namespace": "ns", "host": "https://h:6443", "skiptls": true, "token": "t", "user": "zuul-worker", "pod": "p"},
		"ssh_port": {"name": "ns"}, "hold_expiration": "3600", "resources": {"cores": 2, "ram": 2048, "instances": 1},
		"future_member": [1, {"a": null}], "comment": null, "user_data": {"x": 1}, "python_path": "auto", "slot": null}`
	for _, tc := range []struct {
		name   string
		change func(*zk.Node)
		want   func(map[string]any)
	}{
		{"unchanged", func(*zk.Node) {}, func(map[string]any) {}},
		{"state", func(n *zk.Node) { n.State = zk.NodeUsed }, func(m map[string]any) { m["state"] = "used" }},
		{"hold", func(n *zk.Node) { n.HoldJob = "job"; n.HoldExpiration = 60; n.Comment = "why" },
			func(m map[string]any) { m["hold_job"] = "job"; m["hold_expiration"] = 60.0; m["comment"] = "why" }},
		{"clear allocation", func(n *zk.Node) { n.AllocatedTo = "" }, func(m map[string]any) { m["allocated_to"] = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n zk.Node
			if err := json.Unmarshal([]byte(in), &n); err != nil {
				t.Fatalf("Unmarshal() = %v", err)
			}
			if n.HoldExpiration != 3600 || n.Username != "zuul" || n.Type[0] != "pod" || n.Resources["cores"] != 2.0 {
				t.Errorf("decoded %+v, want hold_expiration 3600, username zuul, type pod, 2 cores", n)
			}
			tc.change(&n)
			out, err := json.Marshal(&n)
			if err != nil {
				t.Fatalf("Marshal() = %v", err)
			}
			got := decodeMap(t, out)
			want := decodeMap(t, []byte(in))
			// Nodepool writes every member it knows; these were absent.
			for _, k := range []string{"cloud", "az", "region", "public_ipv4", "private_ipv4", "public_ipv6", "host_id", "interface_ip", "image_id", "launcher", "created_time", "external_id", "hostname", "hold_job", "connection_type", "shell_type", "attributes", "tenant_name", "driver_data", "requestor"} {
				want[k] = nil
			}
			want["host_keys"] = []any{}
			// username: absent, Zuul's default; left out as Nodepool does.
			want["hold_expiration"] = "3600" // unchanged: kept as written
			// As Nodepool does, ssh_port is always written as connection_port.
			want["ssh_port"] = want["connection_port"]
			tc.want(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Marshal(Unmarshal(in)) (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNodeDecodeDefaults(t *testing.T) {
	for _, tc := range []struct {
		in       string
		wantType []string
		wantPort string
		wantHold int
	}{
		{`{}`, nil, ``, 0},
		{`{"type": "old-label"}`, []string{"old-label"}, ``, 0},
		{`{"type": ""}`, nil, ``, 0},
		{`{"ssh_port": 2222}`, nil, `2222`, 0},
		{`{"ssh_port": 2222, "connection_port": 22}`, nil, `22`, 0},
		{`{"hold_expiration": "soon"}`, nil, ``, 0},
		{`{"hold_expiration": 99.7}`, nil, ``, 99},
	} {
		var n zk.Node
		if err := json.Unmarshal([]byte(tc.in), &n); err != nil {
			t.Errorf("Unmarshal(%s) = %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.wantType, n.Type); diff != "" {
			t.Errorf("Unmarshal(%s).Type (-want +got):\n%s", tc.in, diff)
		}
		if string(n.ConnectionPort) != tc.wantPort || n.HoldExpiration != tc.wantHold {
			t.Errorf("Unmarshal(%s) = port %s, hold %d; want %s, %d", tc.in, n.ConnectionPort, n.HoldExpiration, tc.wantPort, tc.wantHold)
		}
		out, _ := json.Marshal(&n)
		m := decodeMap(t, out)
		if tc.wantPort == "" && (m["connection_port"] != 22.0 || m["ssh_port"] != 22.0) {
			t.Errorf("Marshal(%s): connection_port %v, ssh_port %v; want Nodepool's default 22", tc.in, m["connection_port"], m["ssh_port"])
		}
	}
}

// A request as Zuul submits it lacks members Nodepool adds; reading and
// writing it back adds them as Nodepool would and keeps Zuul's.
func TestRequestRoundTrip(t *testing.T) {
	in := `{"node_types": ["a", "b"], "requestor": "zuul", "created_time": 1.5, "provider": null,
		"state": "requested", "state_time": 1.5, "relative_priority": 3, "event_id": "ev",
		"tenant_name": "t", "requestor_data": {"build_set_uuid": "u", "span_info": null}, "from_the_future": true}`
	var r zk.Request
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Reuse || r.RelativePriority != 3 || r.Provider != "" {
		t.Errorf("decoded %+v, want reuse true, relative_priority 3, no provider", r)
	}
	r.Nodes = []string{"0000000001", "0000000002"}
	r.State = zk.RequestFulfilled
	out, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	want := decodeMap(t, []byte(in))
	want["nodes"] = []any{"0000000001", "0000000002"}
	want["state"] = "fulfilled"
	want["declined_by"] = []any{}
	want["reuse"] = true
	if diff := cmp.Diff(want, decodeMap(t, out)); diff != "" {
		t.Errorf("Marshal(Unmarshal(in)) (-want +got):\n%s", diff)
	}
}

func ExampleNode_SetKubeConnection() {
	n := &zk.Node{ConnectionType: zk.ConnectionKubectl, InterfaceIP: "fedora"}
	_ = n.SetKubeConnection(zk.KubeConnection{
		Name: "zuul-ci-abc", Namespace: "zuul-ci-abc", Host: "https://10.0.0.1:6443",
		Token: "<token>", User: "zuul-worker", CACert: "<base64 PEM>", Pod: "fedora",
	})
	fmt.Println(string(n.ConnectionPort))
	// Output:
	// {"name":"zuul-ci-abc","namespace":"zuul-ci-abc","host":"https://10.0.0.1:6443","skiptls":false,"token":"<token>","user":"zuul-worker","ca_crt":"<base64 PEM>","pod":"fedora"}
}

// TestNodeUsername: a node record has a username only when it is not
// Zuul's default, as Nodepool writes it; one read with a username keeps it.
func TestNodeUsername(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string // decoded first, if set
		user string
		want any // the member's value; nil for absent
	}{
		{name: "unset", want: nil},
		{name: "default", user: "zuul", want: nil},
		{name: "label's", user: "cloud-user", want: "cloud-user"},
		{name: "read without", in: `{"state": "ready"}`, user: "zuul", want: nil},
		{name: "read with", in: `{"username": "zuul"}`, user: "zuul", want: "zuul"},
		{name: "read null", in: `{"username": null}`, user: "", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n zk.Node
			if tc.in != "" {
				if err := json.Unmarshal([]byte(tc.in), &n); err != nil {
					t.Fatal(err)
				}
			}
			n.Username = tc.user
			out, err := json.Marshal(&n)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := decodeMap(t, out)["username"]
			if tc.in == `{"username": null}` {
				if !ok || got != nil {
					t.Errorf("Marshal() username = %v (present %v), want null kept", got, ok)
				}
				return
			}
			if tc.want == nil && ok || tc.want != nil && got != tc.want {
				t.Errorf("Marshal() = %s, want username %v", out, tc.want)
			}
		})
	}
}
