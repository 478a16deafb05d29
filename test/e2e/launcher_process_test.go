package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

// launcherProcess is `kubepool launcher` running as a process of its own.
type launcherProcess struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // its exit, once done is closed
}

// startLauncherProcess starts `kubepool launcher` with config cfg; extra
// flags are added last (so override the defaults here).
func startLauncherProcess(t *testing.T, bin, cfg, kubeconfig, name string, extra ...string) *launcherProcess {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"launcher", "-c", cfg, "--listen", "", "--hostname", name, "--cleanup-interval", "2s", "--log-format", "json"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &launcherProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", name, tailString(string(b), 40))
		}
	})
	return p
}

func tailString(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestLauncherProcesses runs two launcher processes on one ZooKeeper and
// cluster, SIGKILLs one in the middle of ten launches and starts it again:
// every request is fulfilled exactly once, with nodes of its own; once the
// nodes are returned no namespace is left; SIGTERM stops both cleanly.
func TestLauncherProcesses(t *testing.T) {
	env := testenv.Cluster(t)
	bin := kubepoolBinary(t)
	provider := "e2e-" + randHex(3)
	servers := env.ZooKeeper + "/kubepool-e2e-" + randHex(4)
	cfg := filepath.Join(t.TempDir(), "nodepool.yaml")
	text := launcherConfig(env, servers, provider, 0) + "zookeeper-timeout: 4\n"
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	zkc, err := zk.Connect(ctx, servers, zk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer zkc.Close()
	z := newZuul(t, servers)
	t.Cleanup(func() { deleteOwned(env, provider) })

	nodesChanged := zkc.WatchNodes(ctx)
	// a takes the ten requests; b joins while a is building their nodes.
	a := startLauncherProcess(t, bin, cfg, env.Kubeconfig, "launcher-a")
	var ids []string
	for range 10 {
		ids = append(ids, z.Submit([]string{"pod"}, 100, nil))
	}
	// Kill a while it is building nodes.
	for {
		nodes, err := zkc.ListNodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		building := 0
		for _, n := range nodes {
			if n.State == zk.NodeBuilding && strings.HasPrefix(n.Launcher, "launcher-a") {
				building++
			}
		}
		if building > 0 {
			break
		}
		select {
		case <-nodesChanged:
		case <-ctx.Done():
			t.Fatal("launcher-a never built a node")
		}
	}
	b := startLauncherProcess(t, bin, cfg, env.Kubeconfig, "launcher-b")
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.done
	a2 := startLauncherProcess(t, bin, cfg, env.Kubeconfig, "launcher-a")

	for _, ret := range z.AcceptOnce(z.WaitFulfilled(ctx, ids)) {
		ret()
	}
	// Everything goes: nodes (incl. those launcher-a was building when it
	// died), namespaces and request locks.
	waitNothingLeft(t, ctx, env, zkc, provider)
	for _, p := range []*launcherProcess{b, a2} {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.done:
			if p.err != nil {
				t.Errorf("launcher after SIGTERM: %v, want a clean exit", p.err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("launcher still running 30s after SIGTERM")
		}
	}
}
