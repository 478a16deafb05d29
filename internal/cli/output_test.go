package cli

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

// keyPaths lists every member name in a decoded JSON or YAML document, as
// paths ("[].id", "credential_list[].node"), sorted.
func keyPaths(v any) []string {
	set := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				p := prefix + "." + k
				set[p] = true
				walk(p, c)
			}
		case []any:
			for _, c := range v {
				walk(prefix+"[]", c)
			}
		}
	}
	walk("", v)
	return slices.Sorted(maps.Keys(set))
}

// sameFields runs a command with -o json and -o yaml and fails unless both
// have the same member names, at the same places, and some at all; with
// sameValues, unless they are the same document.
func sameFields(t *testing.T, run func(format string) (string, error), what string, sameValues bool) {
	t.Helper()
	jsonOut, err := run("json")
	if err != nil {
		t.Fatalf("%s -o json = %v", what, err)
	}
	yamlOut, err := run("yaml")
	if err != nil {
		t.Fatalf("%s -o yaml = %v", what, err)
	}
	var j, y any
	if err := json.Unmarshal([]byte(jsonOut), &j); err != nil {
		t.Fatalf("%s -o json: %v in %q", what, err, jsonOut)
	}
	if err := yaml.Unmarshal([]byte(yamlOut), &y); err != nil {
		t.Fatalf("%s -o yaml: %v in %q", what, err, yamlOut)
	}
	jk, yk := keyPaths(j), keyPaths(y)
	if len(jk) == 0 {
		t.Errorf("%s -o json has no members: %q", what, jsonOut)
	}
	if !slices.Equal(jk, yk) {
		t.Errorf("%s: -o json members %v, -o yaml members %v", what, jk, yk)
	}
	// Values too: the YAML document is the JSON one (but for ages, which
	// may have moved on by a second between the two runs).
	jb, _ := json.Marshal(dropAges(j))
	yb, _ := json.Marshal(dropAges(y))
	if sameValues && string(jb) != string(yb) {
		t.Errorf("%s: -o json is %s, -o yaml is %s", what, jb, yb)
	}
}

// dropAges removes the members named age.
func dropAges(v any) any {
	switch v := v.(type) {
	case map[string]any:
		delete(v, "age")
		for _, c := range v {
			dropAges(c)
		}
	case []any:
		for _, c := range v {
			dropAges(c)
		}
	}
	return v
}

func lines(s string) []string { return strings.Fields(s) }

// TestOutputFormats renders every command that lists records with -o json
// and -o yaml and checks they have the same fields, and -o name.
func TestOutputFormats(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c, err := zk.Connect(ctx, servers, zk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ids []string
	for _, st := range []string{zk.NodeInUse, zk.NodeReady} {
		n := &zk.Node{Provider: "dev", Pool: "main", Type: []string{"pod"}, ConnectionType: zk.ConnectionKubectl, ExternalID: "ns-" + st, InterfaceIP: "machine"}
		if err := n.SetKubeConnection(zk.KubeConnection{Name: "ns", Namespace: "ns-" + st, Host: "https://k:6443", Token: "secret", User: "zuul-worker", Pod: "machine"}); err != nil {
			t.Fatal(err)
		}
		n.SetState(st)
		if err := c.CreateNode(ctx, n); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, n.ID)
	}
	if _, err := c.Register(ctx, zk.Component{Kind: zk.KindPool, Hostname: "host-a", ID: "pool-a", Name: "main", ProviderName: "dev", SupportedLabels: []string{"pod"}, State: zk.ComponentRunning}); err != nil {
		t.Fatal(err)
	}
	r := &zk.Request{NodeTypes: []string{"pod"}, Requestor: "test", RequestorData: map[string]any{"build_set_uuid": "bs1"}, DeclinedBy: []string{}, Nodes: []string{}}
	if err := c.SubmitRequest(ctx, r, 200); err != nil {
		t.Fatal(err)
	}
	now := float64(time.Now().Unix())
	bs := &zk.Buildset{ID: "b0c1d2", State: "active", Created: now, LastNodeSeen: now,
		Credentials: map[string]zk.BuildsetCredential{"cred1": {Hash: "sha256:00", Created: now, Node: ids[0]}}}
	if err := c.CreateBuildset(ctx, bs); err != nil {
		t.Fatal(err)
	}
	zkf := "--zookeeper=" + servers

	for _, tc := range []struct {
		what  string
		args  []string
		names []string
	}{
		{"list", []string{"list"}, ids},
		{"info", []string{"info", ids[0]}, ids[:1]},
		{"request-list", []string{"request-list"}, []string{r.ID}},
		{"label-list", []string{"label-list"}, []string{"pod"}},
		{"buildset list", []string{"buildset", "list"}, []string{bs.ID}},
		{"buildset info", []string{"buildset", "info", bs.ID}, []string{bs.ID}},
	} {
		run := func(format string) (string, error) {
			return runRoot(t, append(slices.Clone(tc.args), zkf, "-o", format)...)
		}
		sameFields(t, run, tc.what, true)
		out, err := run("name")
		if err != nil {
			t.Fatalf("%s -o name = %v", tc.what, err)
		}
		if got := lines(out); !slices.Equal(got, tc.names) {
			t.Errorf("%s -o name = %q, want %q", tc.what, got, tc.names)
		}
	}
	// Commands that change a node print its row (the fields of list's
	// rows); -o name is its id. Each change is made once, so one format
	// each.
	out, err := runRoot(t, "hold", ids[1], zkf, "--reason", "looking", "-o", "name")
	if err != nil || out != ids[1]+"\n" {
		t.Errorf("hold -o name = %q, %v; want %s", out, err, ids[1])
	}
	changes := [][]string{{"release-hold", ids[1]}, {"delete", ids[1]}}
	sameFields(t, func(format string) (string, error) {
		args := changes[0]
		changes = changes[1:]
		return runRoot(t, append(slices.Clone(args), zkf, "-o", format)...)
	}, "release-hold -o json, delete -o yaml", false)
}

// TestImagesOutputFormats: kubepool images list with -o json, yaml and
// name (the image-set commands share cliutil.Output).
func TestImagesOutputFormats(t *testing.T) {
	tpl, err := filepath.Abs("../imageset/testdata/overcloud_containers.2019.yaml.j2")
	if err != nil {
		t.Fatal(err)
	}
	params, _ := filepath.Abs("../imageset/testdata/params-2019.yaml")
	if _, err := os.Stat(params); err != nil {
		t.Fatal(err)
	}
	args := []string{"images", "list", "-t", tpl, "--params", params, "--include", "nova"}
	table, err := runRoot(t, args...)
	if err != nil {
		t.Fatalf("images list = %v", err)
	}
	want := lines(table)
	if len(want) == 0 {
		t.Fatal("images list printed no image")
	}
	out, err := runRoot(t, append(slices.Clone(args), "-o", "name")...)
	if err != nil || !slices.Equal(lines(out), want) {
		t.Errorf("images list -o name = %q, %v; want %q", out, err, want)
	}
	for _, format := range []string{"json", "yaml"} {
		var got []string
		out, _ = runRoot(t, append(slices.Clone(args), "-o", format)...)
		if err := yaml.Unmarshal([]byte(out), &got); err != nil || !slices.Equal(got, want) {
			t.Errorf("images list -o %s = %q (%v), want %q", format, out, err, want)
		}
	}
	if _, err := runRoot(t, "images", "render", "-t", tpl, "-o", "json"); err == nil {
		t.Errorf("images render -o json: want an unknown-flag error (render prints one document)")
	}
}
