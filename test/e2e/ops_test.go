package e2e

// The operator CLI and `kubepool request`/`return`/`exec`, run as the
// built binary against a launcher in this process, the dev cluster and
// Ansible.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/google/go-cmp/cmp"

	kzk "github.com/kubepool/kubepool/internal/zk"
)

// cliResult is what one kubepool invocation printed and its exit code.
type cliResult struct {
	stdout, stderr string
	code           int
}

// kubepoolCLI runs the kubepool binary against one ZooKeeper.
type kubepoolCLI struct {
	t       *testing.T
	bin     string
	servers string
}

func newKubepoolCLI(t *testing.T, servers string) *kubepoolCLI {
	return &kubepoolCLI{t: t, bin: kubepoolBinary(t), servers: servers}
}

// run runs kubepool with args, the ZooKeeper flag inserted after the
// command's name (exec takes no flags after NODE).
func (k *kubepoolCLI) run(ctx context.Context, args ...string) cliResult {
	k.t.Helper()
	full := append([]string{args[0], "--zookeeper", k.servers}, args[1:]...)
	cmd := exec.CommandContext(ctx, k.bin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		k.t.Fatalf("running kubepool %q: %v", full, err)
	}
	return res
}

// ok runs kubepool and fails the test unless it exits 0.
func (k *kubepoolCLI) ok(ctx context.Context, args ...string) string {
	k.t.Helper()
	res := k.run(ctx, args...)
	if res.code != 0 {
		k.t.Fatalf("kubepool %q: exit code %d\nstderr: %s", args, res.code, res.stderr)
	}
	return res.stdout
}

// fails runs kubepool, wants exit code 1 and an error containing each of
// want, and returns the error output.
func (k *kubepoolCLI) fails(ctx context.Context, want []string, args ...string) string {
	k.t.Helper()
	res := k.run(ctx, args...)
	if res.code != 1 {
		k.t.Errorf("kubepool %q: exit code %d, want 1\nstdout: %s\nstderr: %s", args, res.code, res.stdout, res.stderr)
	}
	for _, w := range want {
		if !strings.Contains(res.stderr, w) {
			k.t.Errorf("kubepool %q: error %q does not say %q", args, strings.TrimSpace(res.stderr), w)
		}
	}
	return res.stderr
}

// jsonOf decodes out into v.
func jsonOf[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("decoding %q: %v", out, err)
	}
	return v
}

// waitRegistered waits, by watching, until a launcher pool is registered:
// `kubepool request` refuses labels that no registered pool serves.
func (le *launcherEnv) waitRegistered(t *testing.T, ctx context.Context) {
	t.Helper()
	p := le.zuul.Root + kzk.ComponentRoot + "/" + kzk.KindPool
	for {
		children, _, ch, err := le.zuul.Conn.ChildrenW(p)
		if errors.Is(err, zk.ErrNoNode) {
			var ok bool
			ok, _, ch, err = le.zuul.Conn.ExistsW(p)
			if ok {
				continue
			}
		}
		if err != nil {
			t.Fatalf("watching %s: %v", p, err)
		}
		if len(children) > 0 {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("no launcher pool registered under %s: %v", p, ctx.Err())
		}
	}
}

// requestOutput is `kubepool request -o json`.
type requestOutput struct {
	Request  string           `json:"request"`
	BuildSet string           `json:"build_set_uuid"`
	Nodes    []map[string]any `json:"nodes"`
}

// TestRequestAnsiblePlaybook is the acceptance test of `kubepool request`:
// a pod and a namespace requested as Zuul would, the kubeconfig and
// inventory exactly as Zuul's executor writes them for the same nodes,
// ansible-playbook running a task in the pod over the kubectl connection,
// and `kubepool return` cleaning both up.
func TestRequestAnsiblePlaybook(t *testing.T) {
	le := startLauncher(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	le.waitRegistered(t, ctx)
	k := newKubepoolCLI(t, le.servers)

	dir := t.TempDir()
	job := filepath.Join(dir, "job")
	kubeconfig := k.ok(ctx, "request", "pod", "namespace", "--buildset", "bs-e2e", "--output-dir", job, "-o", "kubeconfig")
	b, err := os.ReadFile(filepath.Join(job, "request.json"))
	if err != nil {
		t.Fatal(err)
	}
	res := jsonOf[requestOutput](t, string(b))
	if len(res.Nodes) != 2 || res.BuildSet != "bs-e2e" {
		t.Fatalf("request.json = %d nodes, buildset %q; want 2 nodes, bs-e2e", len(res.Nodes), res.BuildSet)
	}
	pod, ns := res.Nodes[0], res.Nodes[1]
	podCP := pod["connection_port"].(map[string]any)
	nsCP := ns["connection_port"].(map[string]any)

	// As Zuul leaves them: request gone, nodes in-use; and unlocked,
	// because the command has exited.
	if _, err := le.zk.GetRequest(ctx, res.Request); !errors.Is(err, kzk.ErrNoNode) {
		t.Errorf("request %s after acceptance: GetRequest = %v, want ErrNoNode", res.Request, err)
	}
	for _, n := range res.Nodes {
		cur, err := le.zk.GetNode(ctx, n["id"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if cur.State != kzk.NodeInUse || cur.Locked || cur.AllocatedTo != res.Request {
			t.Errorf("node %s = state %s locked %v allocated_to %s, want in-use, unlocked, %s", cur.ID, cur.State, cur.Locked, cur.AllocatedTo, res.Request)
		}
	}

	// The same files as the Zuul stand-in's executor writes.
	zuulKubeconfig, zuulInventory := executorFiles(t, filepath.Join(dir), res.Nodes)
	for _, f := range []struct{ ours, zuuls string }{
		{filepath.Join(job, "kubeconfig"), zuulKubeconfig},
		{filepath.Join(job, "inventory.yaml"), zuulInventory},
	} {
		ours, err := os.ReadFile(f.ours)
		if err != nil {
			t.Fatal(err)
		}
		zuuls, err := os.ReadFile(f.zuuls)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(zuuls), string(ours)); diff != "" {
			t.Errorf("%s differs from what Zuul's executor writes (-zuul +kubepool):\n%s", filepath.Base(f.ours), diff)
		}
	}
	if ours, _ := os.ReadFile(filepath.Join(job, "kubeconfig")); string(ours) != kubeconfig {
		t.Errorf("-o kubeconfig printed something else than it wrote into --output-dir")
	}

	// ansible-playbook runs tasks in the pod through the kubectl connection.
	playbook := filepath.Join(dir, "playbook.yaml")
	if err := os.WriteFile(playbook, []byte(`- hosts: all
  gather_facts: false
  tasks:
    - name: git works
      command: git --version
      register: git
    - name: leave a mark
      copy:
        content: "{{ git.stdout }}\n"
        dest: /tmp/kubepool-e2e-mark
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := ansiblePlaybook(ctx, le.env, filepath.Join(job, "kubeconfig"), filepath.Join(job, "inventory.yaml"), playbook)
	if err != nil || !strings.Contains(string(out), "node0") || !strings.Contains(string(out), "failed=0") {
		t.Fatalf("ansible-playbook through the kubectl connection: %v\n%s", err, out)
	}
	if got := k.ok(ctx, "exec", pod["id"].(string), "--", "cat", "/tmp/kubepool-e2e-mark"); !strings.HasPrefix(got, "git version") {
		t.Errorf("mark left by the playbook = %q, want git's version", got)
	}

	// The namespace node's kubeconfig context works with kubectl.
	kubectl := exec.CommandContext(ctx, le.env.Kubectl, "--context", nsCP["namespace"].(string)+":"+nsCP["user"].(string)+"/10-244-0-1:6443", "auth", "can-i", "create", "pods")
	kubectl.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(job, "kubeconfig"))
	if out, err := kubectl.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "yes" {
		t.Errorf("kubectl auth can-i create pods with the namespace node's context = %q, %v; want yes", out, err)
	}

	got := k.ok(ctx, "return", "--wait", "3m", pod["id"].(string), ns["id"].(string))
	for _, id := range []string{pod["id"].(string), ns["id"].(string)} {
		if !strings.Contains(got, id+" deleted") {
			t.Errorf("kubepool return --wait printed %q, want %s deleted", got, id)
		}
	}
	le.waitGone(t, pod["id"].(string), podCP["namespace"].(string))
	le.waitGone(t, ns["id"].(string), nsCP["namespace"].(string))
}

// TestOpsCLI runs the operator commands against real records: list, info,
// request-list and label-list; hold, release-hold and delete, which the
// launcher acts on; exec's exit code; and the errors that name the cause
// and the fix.
func TestOpsCLI(t *testing.T) {
	le := startLauncher(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	k := newKubepoolCLI(t, le.servers)

	// Zuul's request, fulfilled and not yet accepted, in request-list.
	zid := le.zuul.Submit([]string{"pod"}, 100, nil)
	zreq := le.zuul.WaitRequest(ctx, zid)
	reqs := jsonOf[[]map[string]any](t, k.ok(ctx, "request-list", "-o", "json"))
	if len(reqs) != 1 || reqs[0]["id"] != zid || reqs[0]["state"] != "fulfilled" || !cmp.Equal(reqs[0]["nodes"], zreq["nodes"]) {
		t.Errorf("request-list = %v, want %s fulfilled with %v", reqs, zid, zreq["nodes"])
	}
	if out := k.ok(ctx, "request-list"); !strings.Contains(out, zid) || !strings.Contains(out, "fulfilled") {
		t.Errorf("request-list table = %q, want %s fulfilled", out, zid)
	}
	labels := jsonOf[[]map[string]any](t, k.ok(ctx, "label-list", "-o", "json"))
	var podLabel map[string]any
	for _, l := range labels {
		if l["name"] == "pod" {
			podLabel = l
		}
	}
	if launchers, _ := podLabel["launchers"].([]any); len(launchers) != 1 || !strings.HasPrefix(launchers[0].(string), le.provider+"/main@") {
		t.Errorf("label-list pod = %v, want served by %s/main", podLabel, le.provider)
	}

	// Zuul holds its node locked: operators cannot change it, and are told who holds it.
	zuulNodes, zuulReturn := le.zuul.AcceptNodes(zid, zreq)
	zuulNode := zreq["nodes"].([]any)[0].(string)
	k.fails(ctx, []string{"node " + zuulNode + " in-use is locked by session 0x", "try again once it is released"}, "hold", zuulNode, "--reason", "look")
	k.fails(ctx, []string{"locked by"}, "return", zuulNode)
	zuulReturn()
	le.waitGone(t, zuulNode, zuulNodes[0]["external_id"].(string))

	// A node of our own.
	id := strings.TrimSpace(k.ok(ctx, "request", "pod", "-o", "ids"))
	rows := jsonOf[[]map[string]any](t, k.ok(ctx, "list", "-o", "json"))
	if len(rows) != 1 || rows[0]["id"] != id || rows[0]["state"] != "in-use" || rows[0]["locked"] != "unlocked" || rows[0]["pod"] == "" || rows[0]["namespace"] == "" {
		t.Fatalf("list = %v, want %s in-use, unlocked, with namespace and pod", rows, id)
	}
	namespace := rows[0]["namespace"].(string)
	if out := k.ok(ctx, "list"); !strings.Contains(out, id) || !strings.Contains(out, namespace+"/"+rows[0]["pod"].(string)) {
		t.Errorf("list table = %q, want %s with %s/pod", out, id, namespace)
	}
	info := jsonOf[map[string]any](t, k.ok(ctx, "info", id, "-o", "json"))
	if info["id"] != id || info["state"] != "in-use" || info["connection_type"] != "kubectl" || info["external_id"] != namespace {
		t.Errorf("info -o json = %v, want %s, in-use kubectl node in %s", info, id, namespace)
	}
	if out := k.ok(ctx, "info", id); strings.Contains(out, info["connection_port"].(map[string]any)["token"].(string)) {
		t.Errorf("info table shows the node's token")
	}

	// exec streams and exits with the command's code.
	res := k.run(ctx, "exec", id, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
	if res.code != 3 || res.stdout != "out\n" || !strings.Contains(res.stderr, "err\n") {
		t.Errorf("exec exit 3 = code %d stdout %q stderr %q, want 3, out, err", res.code, res.stdout, res.stderr)
	}
	// A command that cannot start: 127, as a shell says, naming it.
	if res := k.run(ctx, "exec", id, "--", "no-such-command"); res.code != 127 || !strings.Contains(res.stderr, "no-such-command") {
		t.Errorf("exec no-such-command = code %d stderr %q, want 127 naming the command", res.code, res.stderr)
	}

	// hold, return refused, release-hold: used, and the launcher deletes it.
	held := jsonOf[map[string]any](t, k.ok(ctx, "hold", id, "--reason", "looking at a failure", "-o", "json"))
	if held["state"] != "hold" || held["comment"] != "looking at a failure" {
		t.Errorf("hold -o json = %v, want state hold with the reason as comment", held)
	}
	k.fails(ctx, []string{"cannot return node " + id + ": it is hold", "release-hold"}, "return", id)
	k.fails(ctx, []string{"--reason is required"}, "hold", id)
	if n, err := le.zk.GetNode(ctx, id); err != nil || n.State != kzk.NodeHold || n.Comment != "looking at a failure" {
		t.Fatalf("held node = %+v, %v", n, err)
	}
	released := jsonOf[map[string]any](t, k.ok(ctx, "release-hold", id, "-o", "json"))
	if released["state"] != "used" {
		t.Errorf("release-hold -o json = %v, want state used", released)
	}
	le.waitGone(t, id, namespace)

	// delete: deleting, and the launcher deletes it.
	id = strings.TrimSpace(k.ok(ctx, "request", "pod", "-o", "ids"))
	node, err := le.zk.GetNode(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if out := k.ok(ctx, "delete", id); !strings.Contains(out, id) {
		t.Errorf("delete printed %q, want the node's row", out)
	}
	le.waitGone(t, id, node.ExternalID)

	// Errors that name the cause and the fix.
	k.fails(ctx, []string{"node 0000099999 does not exist", "kubepool list"}, "info", "0000099999")
	k.fails(ctx, []string{"node 0000099999 does not exist"}, "delete", "0000099999")
	k.fails(ctx, []string{"no launcher serves no-such-label", "label-list"}, "request", "no-such-label")
	k.fails(ctx, []string{"request 200-", "for broken failed", "logs say why"}, "request", "broken", "--wait", "4m")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	unreachable := &kubepoolCLI{t: t, bin: k.bin, servers: closed}
	unreachable.fails(ctx, []string{"connecting to ZooKeeper " + closed, "no session within 2s", "check --zookeeper"}, "list", "--zookeeper-timeout", "2s")
	cfg := filepath.Join(t.TempDir(), "launcher.yaml")
	host, port, _ := strings.Cut(closed, ":")
	if err := os.WriteFile(cfg, []byte("zookeeper-servers:\n  - host: "+host+"\n    port: "+port+"\nlabels: []\nproviders: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, k.bin, "list", "-c", cfg, "--zookeeper-timeout", "2s")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "check zookeeper-servers in "+cfg) {
		t.Errorf("list -c with an unreachable ZooKeeper = %q, want it to point at zookeeper-servers in %s", out, cfg)
	}
}
