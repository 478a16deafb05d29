package e2e

// This file plays Zuul: it talks to ZooKeeper with its own client code, the way
// zuul/zk/nodepool.py and zuul/nodepool.py do, independently of kubepool's
// internal/zk, so that the launcher is tested against the protocol and not
// against itself. It also turns node records into a kubeconfig and an Ansible
// inventory the way zuul/executor/server.py does.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"sigs.k8s.io/yaml"

	"github.com/kubepool/kubepool/internal/testenv"
)

const (
	zuulRequestRoot = "/nodepool/requests"
	zuulNodesRoot   = "/nodepool/nodes"
)

type zuul struct {
	t    testing.TB
	conn *zk.Conn
	root string // the chroot, "" for none
}

// newZuul connects to servers, "host:port[,host:port...][/chroot]".
func newZuul(t testing.TB, servers string) *zuul {
	t.Helper()
	root := ""
	if i := strings.Index(servers, "/"); i >= 0 {
		servers, root = servers[:i], servers[i:]
	}
	conn, _, err := zk.Connect(strings.Split(servers, ","), 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatalf("zuul: connecting to ZooKeeper %s: %v", servers, err)
	}
	t.Cleanup(conn.Close)
	return &zuul{t: t, conn: conn, root: root}
}

// submit writes a node request as Zuul's submitNodeRequest does: a
// persistent sequential znode named <priority, 3 digits>-.
func (z *zuul) submit(labels []string, priority int, extra map[string]any) string {
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
		"event_id":          "e2e-" + randHex(4),
		"tenant_name":       "example-tenant",
		"requestor_data": map[string]any{
			"build_set_uuid": randHex(16),
			"tenant_name":    "example-tenant",
			"pipeline_name":  "check",
			"job_name":       "e2e-job",
			"job_uuid":       randHex(16),
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
	p := fmt.Sprintf("%s%s/%03d-", z.root, zuulRequestRoot, priority)
	path, err := z.conn.Create(p, data, zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNoNode) {
		z.mkdirs(zuulRequestRoot)
		path, err = z.conn.Create(p, data, zk.FlagSequence, zk.WorldACL(zk.PermAll))
	}
	if err != nil {
		z.t.Fatalf("zuul: submitting request: %v", err)
	}
	return path[strings.LastIndex(path, "/")+1:]
}

func (z *zuul) mkdirs(p string) {
	cur := ""
	for _, part := range strings.Split(strings.Trim(z.root+p, "/"), "/") {
		cur += "/" + part
		if _, err := z.conn.Create(cur, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			z.t.Fatalf("zuul: creating %s: %v", cur, err)
		}
	}
}

func (z *zuul) getJSON(path string) (map[string]any, *zk.Stat, error) {
	data, st, err := z.conn.Get(z.root + path)
	if err != nil {
		return nil, nil, err
	}
	var d map[string]any
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	return d, st, nil
}

// waitRequest watches the request until it is fulfilled or failed.
func (z *zuul) waitRequest(ctx context.Context, id string) map[string]any {
	z.t.Helper()
	path := zuulRequestRoot + "/" + id
	for {
		data, _, ch, err := z.conn.GetW(z.root + path)
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

// lock takes a kazoo-recipe lock: it creates an ephemeral sequential
// "<uuid4 hex>__lock__" contender and holds the lock once it is the lowest,
// waiting up to timeout (0: not at all) for the contenders before it. It
// returns the release function, or false if it did not get the lock.
func (z *zuul) lock(lockPath string, timeout time.Duration) (func(), bool) {
	z.t.Helper()
	z.mkdirs(lockPath)
	me, err := z.conn.Create(z.root+lockPath+"/"+randHex(16)+"__lock__", nil, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if err != nil {
		z.t.Fatalf("zuul: creating lock contender under %s: %v", lockPath, err)
	}
	release := func() { _ = z.conn.Delete(me, -1) }
	seq := func(n string) string { return n[strings.LastIndex(n, "__lock__")+len("__lock__"):] }
	deadline := time.After(timeout)
	for {
		children, _, err := z.conn.Children(z.root + lockPath)
		if err != nil {
			z.t.Fatalf("zuul: listing %s: %v", lockPath, err)
		}
		sort.Slice(children, func(i, j int) bool { return seq(children[i]) < seq(children[j]) })
		if z.root+lockPath+"/"+children[0] == me {
			return release, true
		}
		if timeout == 0 {
			release()
			return nil, false
		}
		// Wait for the contender just before us to go, as kazoo does.
		prev := children[0]
		for _, c := range children {
			if z.root+lockPath+"/"+c == me {
				break
			}
			prev = c
		}
		exists, _, ev, err := z.conn.ExistsW(z.root + lockPath + "/" + prev)
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

// acceptNodes does what Zuul does with a fulfilled request: lock every node,
// check it is allocated to the request, delete the request, mark the nodes
// in-use. It returns the node records and a function that returns them
// (state "used", unlock) as Zuul does when the build ends.
func (z *zuul) acceptNodes(reqID string, req map[string]any) ([]map[string]any, func()) {
	z.t.Helper()
	var nodes []map[string]any
	var ids []string
	var unlocks []func()
	for _, v := range req["nodes"].([]any) {
		id := v.(string)
		unlock, ok := z.lock(zuulNodesRoot+"/"+id+"/lock", 30*time.Second) // as Zuul's lockNode(node, timeout=30)
		if !ok {
			z.t.Fatalf("zuul: node %s is locked by someone else", id)
		}
		unlocks = append(unlocks, unlock)
		n, _, err := z.getJSON(zuulNodesRoot + "/" + id)
		if err != nil {
			z.t.Fatalf("zuul: reading node %s: %v", id, err)
		}
		if n["allocated_to"] != reqID {
			z.t.Fatalf("zuul: node %s allocated to %v, want %s", id, n["allocated_to"], reqID)
		}
		nodes = append(nodes, n)
		ids = append(ids, id)
	}
	if err := z.conn.Delete(z.root+zuulRequestRoot+"/"+reqID, -1); err != nil {
		z.t.Fatalf("zuul: deleting request %s: %v", reqID, err)
	}
	z.setNodes(ids, nodes, "in-use")
	return nodes, func() {
		z.setNodes(ids, nodes, "used")
		for _, u := range unlocks {
			u()
		}
	}
}

func (z *zuul) setNodes(ids []string, nodes []map[string]any, state string) {
	z.t.Helper()
	for i, id := range ids {
		cur, _, err := z.getJSON(zuulNodesRoot + "/" + id)
		if err != nil {
			z.t.Fatalf("zuul: reading node %s: %v", id, err)
		}
		cur["state"] = state
		cur["state_time"] = float64(time.Now().UnixNano()) / 1e9
		data, _ := json.Marshal(cur)
		if _, err := z.conn.Set(z.root+zuulNodesRoot+"/"+id, data, -1); err != nil {
			z.t.Fatalf("zuul: storing node %s: %v", id, err)
		}
		nodes[i] = cur
	}
}

// executorFiles writes the kubeconfig and the inventory the way Zuul's
// executor does for kubectl and namespace nodes, and returns their paths.
func executorFiles(t testing.TB, dir string, nodes []map[string]any) (kubeconfig, inventory string) {
	t.Helper()
	type named struct {
		Name    string         `json:"name"`
		Cluster map[string]any `json:"cluster,omitempty"`
		User    map[string]any `json:"user,omitempty"`
		Context map[string]any `json:"context,omitempty"`
	}
	kc := struct {
		APIVersion     string         `json:"apiVersion"`
		Kind           string         `json:"kind"`
		Preferences    map[string]any `json:"preferences"`
		Clusters       []named        `json:"clusters"`
		Users          []named        `json:"users"`
		Contexts       []named        `json:"contexts"`
		CurrentContext string         `json:"current-context"`
	}{APIVersion: "v1", Kind: "Config", Preferences: map[string]any{}}
	hosts := map[string]any{}
	for i, n := range nodes {
		data, ok := n["connection_port"].(map[string]any)
		if !ok {
			t.Fatalf("node %d: connection_port is %T, want a dict", i, n["connection_port"])
		}
		u, err := url.Parse(data["host"].(string))
		if err != nil {
			t.Fatalf("node %d: host: %v", i, err)
		}
		clusterName := strings.ReplaceAll(u.Host, ".", "-")
		found := false
		for _, c := range kc.Clusters {
			found = found || c.Name == clusterName
		}
		if !found {
			cluster := map[string]any{"server": data["host"]}
			if ca, _ := data["ca_crt"].(string); ca != "" {
				cluster["certificate-authority-data"] = ca
			}
			if skip, _ := data["skiptls"].(bool); skip {
				cluster["insecure-skip-tls-verify"] = true
			}
			kc.Clusters = append(kc.Clusters, named{Name: clusterName, Cluster: cluster})
		}
		userName := fmt.Sprintf("%s:%s", data["namespace"], data["user"])
		kc.Users = append(kc.Users, named{Name: userName, User: map[string]any{"token": data["token"]}})
		ctxName := userName + "/" + clusterName
		kc.Contexts = append(kc.Contexts, named{Name: ctxName, Context: map[string]any{"user": userName, "cluster": clusterName, "namespace": data["namespace"]}})
		if kc.CurrentContext == "" {
			kc.CurrentContext = ctxName
		}
		if n["connection_type"] != "kubectl" {
			continue // namespaces and projects are not inventory hosts
		}
		hv := map[string]any{
			"ansible_host":               n["interface_ip"],
			"ansible_connection":         "kubectl",
			"ansible_kubectl_context":    ctxName,
			"ansible_python_interpreter": n["python_path"],
		}
		if st, _ := n["shell_type"].(string); st != "" {
			hv["ansible_shell_type"] = st
		}
		// Zuul sets ansible_user only for a node that names its user;
		// otherwise Ansible's remote user is the executor's own, zuul
		// (see ansiblePlaybook).
		if u, _ := n["username"].(string); u != "" {
			hv["ansible_user"] = u
		}
		hosts[fmt.Sprintf("node%d", i)] = hv
	}
	kubeconfig = filepath.Join(dir, "kubeconfig")
	inventory = filepath.Join(dir, "inventory.yaml")
	for path, v := range map[string]any{kubeconfig: kc, inventory: map[string]any{"all": map[string]any{"hosts": hosts}}} {
		b, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return kubeconfig, inventory
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ansiblePlaybook runs ansible-playbook as Zuul's executor does: with the
// kubeconfig and inventory it wrote, kubectl on PATH, and Zuul's default
// remote user, zuul (the executor runs Ansible as user zuul, so a node
// without a username gets ansible_user zuul in effect).
func ansiblePlaybook(ctx context.Context, env *testenv.Env, kubeconfig, inventory, playbook string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ansible-playbook", "-i", inventory, playbook)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "PATH="+filepath.Dir(env.Kubectl)+":"+os.Getenv("PATH"),
		"ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_NOCOLOR=1", "ANSIBLE_REMOTE_USER=zuul")
	return cmd.CombinedOutput()
}
