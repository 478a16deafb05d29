package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/gitsync/gittest"
	"github.com/kubepool/kubepool/internal/podexec"
	"github.com/kubepool/kubepool/internal/testenv"
)

// TestSyncNode: `kubepool sync NODE` finds a launcher's pod node in
// ZooKeeper and pushes a workspace into it with the node's own token.
func TestSyncNode(t *testing.T) {
	le := startLauncher(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	id := le.zuul.Submit([]string{"pod"}, 100, nil)
	req := le.zuul.WaitRequest(ctx, id)
	if req["state"] != "fulfilled" {
		t.Fatalf("request %s = %v, want fulfilled", id, req["state"])
	}
	nodes, ret := le.zuul.AcceptNodes(id, req)
	defer ret()
	nodeID := req["nodes"].([]any)[0].(string)
	cp := nodes[0]["connection_port"].(map[string]any)

	src := t.TempDir()
	paths := gittest.Workspace(t, src)
	const dest = "/tmp/ws"
	out := newKubepoolCLI(t, le.servers).ok(ctx, "sync", "--src", src, "--dest", dest, nodeID)
	if !strings.Contains(out, "synced") {
		t.Errorf("kubepool sync %s printed %q, want a table of synced repos", nodeID, out)
	}
	target := podexec.Target{Namespace: cp["namespace"].(string), Pod: cp["pod"].(string)}
	compareInPod(t, newExecutor(t, le.env, false), target, src, dest, paths)
}

// TestSyncNodeSidecar: a pod label with git-sidecar gets a git container
// and a shared volume; `kubepool sync NODE` syncs through the sidecar by
// default, and the main container, whose image has no git, sees the repos.
func TestSyncNodeSidecar(t *testing.T) {
	var image string
	le := startLauncherWith(t, func(env *testenv.Env, servers, provider string) string {
		image = nogitImage(t, env)
		return zkServersYAML(servers) + fmt.Sprintf(`
labels: [{name: nogit}]
providers:
  - name: %s
    driver: kubernetes
    context: kubepool-dev
    pools:
      - name: main
        labels:
          - name: nogit
            type: pod
            image: %s
            git-sidecar: {image: %q, path: /srv/ws}
`, provider, image, env.MachineImage)
	}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	id := le.zuul.Submit([]string{"nogit"}, 100, nil)
	req := le.zuul.WaitRequest(ctx, id)
	if req["state"] != "fulfilled" {
		t.Fatalf("request %s = %v, want fulfilled", id, req["state"])
	}
	nodes, ret := le.zuul.AcceptNodes(id, req)
	defer ret()
	cp := nodes[0]["connection_port"].(map[string]any)
	if cp["git_container"] != "git" || cp["git_path"] != "/srv/ws" {
		t.Fatalf("connection_port git_container %v git_path %v, want git and /srv/ws", cp["git_container"], cp["git_path"])
	}
	src := t.TempDir()
	paths := gittest.Workspace(t, src)
	newKubepoolCLI(t, le.servers).ok(ctx, "sync", "--src", src, req["nodes"].([]any)[0].(string))

	ex := newExecutor(t, le.env, false)
	pod := podexec.Target{Namespace: cp["namespace"].(string), Pod: cp["pod"].(string)}
	sidecar := pod
	sidecar.Container = "git"
	compareInPod(t, ex, sidecar, src, "/srv/ws", paths)
	// The main container has no git but sees the same files; kubectl
	// (Zuul's Ansible connection) goes to it by default.
	pod.Container = "nogit"
	var out strings.Builder
	if err := ex.Run(ctx, pod, []string{"sh", "-c", "command -v git || echo no-git; ls /srv/ws/" + paths[0]}, podexec.Options{Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "no-git") || strings.TrimSpace(out.String()) == "no-git" {
		t.Errorf("main container: %q, want no git and the synced repo's files", out.String())
	}
	kout, err := exec.CommandContext(ctx, le.env.Kubectl, "--kubeconfig", le.env.Kubeconfig, "-n", pod.Namespace, "exec", pod.Pod, "--", "sh", "-c", "command -v git || echo no-git").CombinedOutput()
	if err != nil || !strings.Contains(string(kout), "no-git") {
		t.Errorf("kubectl exec without a container: %v: %q, want it in the main container (no git)", err, kout)
	}
}
