package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/podexec"
	"github.com/kubepool/kubepool/internal/testenv"
)

// machinePod creates a namespace with one machine-like pod in it, waits
// for it to be Ready by watching, and deletes the namespace when the test
// ends. It returns the exec target.
func machinePod(tb testing.TB, env *testenv.Env, prefix string) podexec.Target {
	tb.Helper()
	ctx := context.Background()
	ns := uniqueNS(prefix)
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		tb.Fatalf("creating namespace %s: %v", ns, err)
	}
	tb.Cleanup(func() {
		d := &kube.Driver{Client: env.Client}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := d.Delete(ctx, ns, true); err != nil {
			tb.Errorf("deleting namespace %s: %v", ns, err)
		}
	})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "machine"},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "machine", Image: env.MachineImage, Command: kube.MachineCommand}},
			AutomountServiceAccountToken:  ptr(false),
			TerminationGracePeriodSeconds: ptr(int64(5)),
		},
	}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		tb.Fatalf("creating pod %s/machine: %v", ns, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if _, err := kube.WaitForPod(wctx, env.Client, ns, "machine"); err != nil {
		tb.Fatalf("WaitForPod(%s/machine) = %v", ns, err)
	}
	return podexec.Target{Namespace: ns, Pod: "machine", Container: "machine"}
}

func newExecutor(tb testing.TB, env *testenv.Env, spdy bool) *podexec.Executor {
	tb.Helper()
	ex, err := podexec.New(env.RESTConfig)
	if err != nil {
		tb.Fatal(err)
	}
	ex.NoWebSocket = spdy
	return ex
}

// TestSmoke is the dev cluster's smoke test: a pod from the machine image
// becomes Ready, commands run in it over WebSocket and over SPDY with their
// output and exit codes, and 100 MB streamed through exec stdin arrive
// intact.
func TestSmoke(t *testing.T) {
	env := testenv.Cluster(t)
	target := machinePod(t, env, "e2e-smoke")

	for _, proto := range []struct {
		name string
		spdy bool
	}{{"websocket", false}, {"spdy", true}} {
		t.Run(proto.name, func(t *testing.T) {
			ex := newExecutor(t, env, proto.spdy)
			for _, tt := range []struct {
				cmd        []string
				wantPrefix string
			}{
				{[]string{"git", "--version"}, "git version "},
				{[]string{"python3", "-c", "print(1)"}, "1\n"},
			} {
				var out bytes.Buffer
				if err := ex.Run(t.Context(), target, tt.cmd, podexec.Options{Stdout: &out}); err != nil {
					t.Fatalf("Run(%q) = %v", tt.cmd, err)
				}
				if !strings.HasPrefix(out.String(), tt.wantPrefix) {
					t.Errorf("Run(%q) printed %q, want it to start with %q", tt.cmd, out.String(), tt.wantPrefix)
				}
			}

			err := ex.Run(t.Context(), target, []string{"sh", "-c", "echo oops >&2; exit 3"}, podexec.Options{})
			var ee *podexec.ExecError
			if !errors.As(err, &ee) || ee.ExitCode != 3 || !strings.Contains(ee.Stderr, "oops") {
				t.Errorf("Run(exit 3) = %v, want an *ExecError with exit code 3 and stderr %q", err, "oops")
			}

			err = ex.Run(t.Context(), target, []string{"no-such-command"}, podexec.Options{})
			var se *podexec.StartError
			if !errors.As(err, &se) || errors.Is(err, podexec.ErrStream) || !strings.Contains(err.Error(), "no-such-command") {
				t.Errorf("Run(no-such-command) = %v, want a *StartError naming it, not a broken stream", err)
			}
		})
	}

	t.Run("stdin 100MB", func(t *testing.T) {
		const size = 100 << 20
		for _, spdy := range []bool{false, true} {
			ex := newExecutor(t, env, spdy)
			src := io.LimitReader(rand.NewChaCha8([32]byte{1, 2, 3}), size)
			h := sha256.New()
			var out bytes.Buffer
			start := time.Now()
			err := ex.Run(t.Context(), target, []string{"sha256sum"}, podexec.Options{Stdin: io.TeeReader(src, h), Stdout: &out})
			if err != nil {
				t.Fatalf("streaming %d bytes into sha256sum (spdy=%v): %v", size, spdy, err)
			}
			want := hex.EncodeToString(h.Sum(nil))
			if got, _, _ := strings.Cut(out.String(), " "); got != want {
				t.Fatalf("sha256 in the pod = %q, want %q (spdy=%v)", got, want, spdy)
			}
			t.Logf("100 MiB through exec stdin (spdy=%v): %v", spdy, time.Since(start).Round(time.Millisecond))
		}
	})
}
