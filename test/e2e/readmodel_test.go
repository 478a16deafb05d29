package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestReadModel: the launcher's /node-list, /request-list and /label-list
// (answered from its watch caches) give exactly what `kubepool list`,
// `request-list` and `label-list -o json` (reading ZooKeeper) give for the
// same state: an in-use pod node locked by Zuul, and a failed request.
func TestReadModel(t *testing.T) {
	le := startLauncher(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	podReq := le.zuul.Submit([]string{"pod"}, 100, nil)
	req := le.zuul.WaitRequest(ctx, podReq)
	if req["state"] != "fulfilled" {
		t.Fatalf("pod request %s = %v, want fulfilled", podReq, req)
	}
	_, unlock := le.zuul.AcceptNodes(podReq, req)
	defer unlock()
	failedReq := le.zuul.Submit([]string{"no-such-label"}, 100, nil)
	if r := le.zuul.WaitRequest(ctx, failedReq); r["state"] != "failed" {
		t.Fatalf("request for an unknown label = %v, want failed", r)
	}

	base := serveStatus(t, le)
	cfgFile := filepath.Join(t.TempDir(), "launcher.yaml")
	if err := os.WriteFile(cfgFile, []byte(launcherConfig(le.env, le.servers, le.provider, 0)), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := newKubepoolCLI(t, le.servers)

	for _, tc := range []struct {
		endpoint string
		args     []string
		min      int // rows there must be
	}{
		{"/node-list", []string{"list", "-o", "json"}, 1},
		{"/request-list", []string{"request-list", "-o", "json"}, 1},
		{"/label-list", []string{"label-list", "-c", cfgFile, "-o", "json"}, 2},
	} {
		// The caches follow ZooKeeper by watches, a moment behind: look
		// again until they agree, or give up after 30 s.
		deadline := time.Now().Add(30 * time.Second)
		for {
			fromWeb := withoutAge(t, httpGet(t, ctx, base+tc.endpoint))
			fromCLI := withoutAge(t, cli.ok(ctx, tc.args...))
			diff := cmp.Diff(fromCLI, fromWeb)
			if diff == "" && len(fromCLI) >= tc.min {
				t.Logf("%s = kubepool %v: %d rows", tc.endpoint, tc.args, len(fromCLI))
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s differs from kubepool %v (-cli +web):\n%s", tc.endpoint, tc.args, diff)
				break
			}
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
		}
	}
}

// withoutAge decodes rows and drops their ages (seconds, which move on
// between two reads).
func withoutAge(t *testing.T, s string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	if err := json.Unmarshal([]byte(s), &rows); err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
	for _, r := range rows {
		delete(r, "age")
	}
	return rows
}
