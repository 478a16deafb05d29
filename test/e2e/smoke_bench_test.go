package e2e

import (
	"context"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/podexec"
	"github.com/kubepool/kubepool/internal/testenv"
)

// BenchmarkDevClusterPodReady measures pod create → Ready (seen by watch)
// for a machine pod in an existing namespace.
func BenchmarkDevClusterPodReady(b *testing.B) {
	env := testenv.Cluster(b)
	target := machinePod(b, env, "bench-ready") // the namespace; its pod warms the image
	const samples = 10
	for b.Loop() {
		var took []time.Duration
		for i := range samples {
			name := "p" + randHex(3)
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: corev1.PodSpec{
					Containers:                    []corev1.Container{{Name: "m", Image: env.MachineImage, Command: kube.MachineCommand}},
					AutomountServiceAccountToken:  ptr(false),
					TerminationGracePeriodSeconds: ptr(int64(1)),
				},
			}
			start := time.Now()
			if _, err := env.Client.CoreV1().Pods(target.Namespace).Create(b.Context(), pod, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
			_, err := kube.WaitForPod(ctx, env.Client, target.Namespace, name)
			cancel()
			if err != nil {
				b.Fatalf("sample %d: %v", i, err)
			}
			took = append(took, time.Since(start))
			_ = env.Client.CoreV1().Pods(target.Namespace).Delete(b.Context(), name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))})
		}
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "p50-ms")
		b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "max-ms")
	}
}

// BenchmarkDevClusterExec measures an exec round trip (`true`) and the
// throughput of exec stdin (64 MiB into `cat >/dev/null`), over WebSocket
// and over SPDY.
func BenchmarkDevClusterExec(b *testing.B) {
	env := testenv.Cluster(b)
	target := machinePod(b, env, "bench-exec")
	for _, proto := range []struct {
		name string
		spdy bool
	}{{"websocket", false}, {"spdy", true}} {
		ex := newExecutor(b, env, proto.spdy)
		b.Run("roundtrip-"+proto.name, func(b *testing.B) {
			for b.Loop() {
				if err := ex.Run(b.Context(), target, []string{"true"}, podexec.Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("stdin-64MiB-"+proto.name, func(b *testing.B) {
			const size = 64 << 20
			b.SetBytes(size)
			for b.Loop() {
				src := io.LimitReader(rand.NewChaCha8([32]byte{9}), size)
				if err := ex.Run(b.Context(), target, []string{"sh", "-c", "cat >/dev/null"}, podexec.Options{Stdin: src}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
