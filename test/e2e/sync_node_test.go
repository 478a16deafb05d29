package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/gitsync/gittest"
	"github.com/kubepool/kubepool/internal/podexec"
)

// TestSyncNode: `kubepool sync NODE` finds a launcher's pod node in
// ZooKeeper and pushes a workspace into it with the node's own token.
func TestSyncNode(t *testing.T) {
	le := startLauncher(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	id := le.zuul.submit([]string{"pod"}, 100, nil)
	req := le.zuul.waitRequest(ctx, id)
	if req["state"] != "fulfilled" {
		t.Fatalf("request %s = %v, want fulfilled", id, req["state"])
	}
	nodes, ret := le.zuul.acceptNodes(id, req)
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
