package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/cli/cliutil"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/kubepool/kubepool/internal/nodeadmin"
	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

// runOps runs one operator command in-process, under a root command with
// the shared flags and plumbing, and returns its stdout.
func runOps(t *testing.T, newCmd func(*rootOptions) *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	o := &rootOptions{Options: cliutil.Options{Out: &out, Err: &errOut}}
	root := &cobra.Command{Use: "kubepool", SilenceUsage: true, SilenceErrors: true}
	o.AddFlags(root)
	cmd := newCmd(o)
	root.AddCommand(cmd)
	root.SetArgs(append([]string{cmd.Name()}, args...))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

// runRoot runs kubepool with args in-process and returns its stdout.
func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRoot(&rootOptions{Options: cliutil.Options{Out: &out, Err: &errOut}})
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

func TestOpsCommands(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c, err := zk.Connect(ctx, servers, zk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := &zk.Node{Provider: "dev", Pool: "main", Type: []string{"pod"}, ConnectionType: zk.ConnectionKubectl, ExternalID: "ns-1", InterfaceIP: "machine"}
	if err := n.SetKubeConnection(zk.KubeConnection{Name: "ns-1", Namespace: "ns-1", Host: "https://k:6443", Token: "secret-token", User: "zuul-worker", Pod: "machine"}); err != nil {
		t.Fatal(err)
	}
	n.SetState(zk.NodeInUse)
	if err := c.CreateNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	zkf := "--zookeeper=" + servers

	out, err := runOps(t, newListCmd, zkf)
	if err != nil {
		t.Fatalf("list = %v", err)
	}
	if !strings.Contains(out, "NAMESPACE/POD") || !strings.Contains(out, n.ID+"  dev") || !strings.Contains(out, "ns-1/machine") {
		t.Errorf("list table = %q, want a header and %s with ns-1/machine", out, n.ID)
	}
	for _, format := range []string{"json", "yaml"} {
		out, err := runOps(t, newListCmd, zkf, "-o", format)
		if err != nil {
			t.Fatalf("list -o %s = %v", format, err)
		}
		var rows []nodeadmin.NodeRow
		if err := yaml.Unmarshal([]byte(out), &rows); err != nil { // YAML is a superset of JSON
			t.Fatalf("list -o %s: decoding %q: %v", format, out, err)
		}
		if len(rows) != 1 || rows[0].ID != n.ID || rows[0].State != zk.NodeInUse || rows[0].Pod != "machine" {
			t.Errorf("list -o %s = %+v, want %s in-use in pod machine", format, rows, n.ID)
		}
	}

	out, err = runOps(t, newInfoCmd, n.ID, zkf)
	if err != nil {
		t.Fatalf("info = %v", err)
	}
	if strings.Contains(out, "secret-token") || !strings.Contains(out, "external_id") {
		t.Errorf("info table = %q, want the record without its token", out)
	}
	out, err = runOps(t, newInfoCmd, n.ID, zkf, "-o", "json")
	if err != nil {
		t.Fatalf("info -o json = %v", err)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["id"] != n.ID || rec["locked"] != "unlocked" || rec["connection_port"].(map[string]any)["token"] != "secret-token" {
		t.Errorf("info -o json = %v, want the whole record with id and lock state", rec)
	}

	if _, err := runOps(t, newHoldCmd, n.ID, zkf, "--reason", "debugging", "-o", "json"); err != nil {
		t.Fatalf("hold = %v", err)
	}
	if _, err := runOps(t, newReturnCmd, n.ID, zkf); !strings.Contains(fmt.Sprint(err), "release-hold") {
		t.Errorf("return of a held node = %v, want a pointer to release-hold", err)
	}
	if _, err := runOps(t, newReleaseHoldCmd, n.ID, zkf); err != nil {
		t.Fatalf("release-hold = %v", err)
	}
	if _, err := runOps(t, newDeleteCmd, n.ID, zkf); err != nil {
		t.Fatalf("delete = %v", err)
	}
	if got, err := c.GetNode(ctx, n.ID); err != nil || got.State != zk.NodeDeleting {
		t.Errorf("node after delete = %v, %v; want deleting", got, err)
	}
	if _, err := runOps(t, newInfoCmd, "0000000999", zkf); !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("info of an unknown node = %v, want zk.ErrNoNode", err)
	}
	if _, err := runOps(t, newListCmd, zkf, "-o", "xml"); err == nil || !strings.Contains(err.Error(), "want table, json, yaml or name") {
		t.Errorf("list -o xml = %v, want the formats there are", err)
	}
	if _, err := runOps(t, newRequestCmd, "pod", zkf, "-o", "xml"); err == nil || !strings.Contains(err.Error(), "want json, yaml, table, name, kubeconfig or inventory") {
		t.Errorf("request -o xml = %v, want the formats there are", err)
	}
}

func TestOpsZooKeeperUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = runOps(t, newListCmd, "--zookeeper", addr, "--zookeeper-timeout", "300ms")
	ue, ok := errors.AsType[*ZooKeeperUnreachableError](err)
	if !ok || ue.Servers != addr || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("list against a closed port = %v, want *ZooKeeperUnreachableError for %s", err, addr)
	}
	if !strings.Contains(err.Error(), "check --zookeeper") {
		t.Errorf("error %q does not say what to check", err)
	}
	_, err = runOps(t, newListCmd, "-c", "testdata-does-not-exist.yaml")
	if err == nil || !strings.Contains(err.Error(), "testdata-does-not-exist.yaml") {
		t.Errorf("list -c missing = %v, want it to name the file", err)
	}
}

func TestExitCode(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("x"), 1},
		{cliutil.Exitf(3, "command exited with code 3"), 3},
		{fmt.Errorf("wrapped: %w", &cliutil.ExitError{Code: ExitStreamBroken, Err: errors.New("cut")}), 255},
	} {
		if got := cliutil.ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
