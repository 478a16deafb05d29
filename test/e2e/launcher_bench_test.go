package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

// benchSamples is how many requests each latency figure is taken over.
const benchSamples = 50

func reportLatency(b *testing.B, took []time.Duration) {
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[len(took)*99/100]), "p99-ms")
	b.ReportMetric(ms(took[0]), "min-ms")
}

// BenchmarkLauncherFulfil measures what Zuul waits for, from writing a
// request for one pod node to seeing it fulfilled:
//
//   - bare-pod: the baseline, a pod created in an existing namespace until
//     it is Ready (seen by watch), with nothing of kubepool's;
//   - cold: every node launched (namespace, service account, role and
//     binding, pod to Ready, bound token, ZooKeeper records);
//   - warm: min-ready 2, a ready node handed out.
//
// Nodes are returned between samples; for warm, the pool is refilled first.
func BenchmarkLauncherFulfil(b *testing.B) {
	b.Run("bare-pod", func(b *testing.B) {
		le := startLauncher(b, 0) // the same environment as the others
		target := machinePod(b, le.env, "bench-bare")
		for b.Loop() {
			var took []time.Duration
			for range benchSamples {
				name := "p" + randHex(3)
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: name},
					Spec: corev1.PodSpec{
						Containers:                    []corev1.Container{{Name: "m", Image: le.env.MachineImage, Command: kube.MachineCommand}},
						AutomountServiceAccountToken:  ptr(false),
						TerminationGracePeriodSeconds: ptr(int64(1)),
					},
				}
				start := time.Now()
				if _, err := le.env.Client.CoreV1().Pods(target.Namespace).Create(b.Context(), pod, metav1.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
				if _, err := kube.WaitForPod(b.Context(), le.env.Client, target.Namespace, name); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
				_ = le.env.Client.CoreV1().Pods(target.Namespace).Delete(b.Context(), name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))})
			}
			reportLatency(b, took)
		}
	})
	for _, bc := range []struct {
		name     string
		minReady int
	}{{"cold", 0}, {"warm", 2}} {
		b.Run(bc.name, func(b *testing.B) {
			le := startLauncher(b, bc.minReady)
			ctx, cancel := context.WithTimeout(b.Context(), 20*time.Minute)
			defer cancel()
			for b.Loop() {
				var took []time.Duration
				for range benchSamples {
					le.waitReady(b, ctx, bc.minReady)
					start := time.Now()
					id := le.zuul.submit([]string{"pod"}, 100, nil)
					req := le.zuul.waitRequest(ctx, id)
					took = append(took, time.Since(start))
					if req["state"] != "fulfilled" {
						b.Fatalf("request %s = %v, want fulfilled", id, req["state"])
					}
					_, ret := le.zuul.acceptNodes(id, req)
					ret()
				}
				reportLatency(b, took)
			}
		})
	}
}

// BenchmarkLauncherBurst writes 100 namespace requests at once and
// measures until the last is fulfilled (requests/s), against the baseline of
// the same 100 namespace nodes made straight through the Kubernetes driver,
// 100 at a time: what the API server allows.
func BenchmarkLauncherBurst(b *testing.B) {
	const burst = 100
	b.Run("driver", func(b *testing.B) {
		env := testenv.Cluster(b)
		provider := "bench-" + randHex(3)
		d, err := kube.NewDriver(env.RESTConfig)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			owned, _ := d.List(context.Background(), provider)
			for _, o := range owned {
				_ = d.Delete(context.Background(), o.Namespace, false)
			}
		})
		for b.Loop() {
			start := time.Now()
			var wg sync.WaitGroup
			errs := make([]error, burst)
			for i := range burst {
				wg.Go(func() {
					ns := kube.DNSLabel(fmt.Sprintf("bench-drv-%s-%d", randHex(2), i))
					_, errs[i] = d.Create(b.Context(), kube.Resource{Kind: kube.KindNamespace, Owner: kube.Owner{Provider: provider, NodeID: "x"}, Namespace: ns})
				})
			}
			wg.Wait()
			took := time.Since(start)
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(burst/took.Seconds(), "nodes/s")
		}
	})
	b.Run("launcher", func(b *testing.B) {
		le := startLauncher(b, 0)
		ctx, cancel := context.WithTimeout(b.Context(), 20*time.Minute)
		defer cancel()
		for b.Loop() {
			start := time.Now()
			ids := make([]string, burst)
			for i := range ids {
				ids[i] = le.zuul.submit([]string{"namespace"}, 100, nil)
			}
			for _, id := range ids {
				if req := le.zuul.waitRequest(ctx, id); req["state"] != "fulfilled" {
					b.Fatalf("request %s = %v, want fulfilled", id, req["state"])
				}
			}
			took := time.Since(start)
			b.ReportMetric(burst/took.Seconds(), "nodes/s")
		}
	})
}

// waitReady waits until n unallocated ready nodes exist.
func (le *launcherEnv) waitReady(tb testing.TB, ctx context.Context, n int) {
	tb.Helper()
	for {
		nodes, err := le.zk.ListNodes(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		ready := 0
		for _, nd := range nodes {
			if nd.State == zk.NodeReady && nd.AllocatedTo == "" && !nd.Locked {
				ready++
			}
		}
		if ready >= n {
			return
		}
		select {
		case <-le.nodesChanged:
		case <-ctx.Done():
			tb.Fatalf("waiting for %d ready nodes: %d ready: %v", n, ready, ctx.Err())
		}
	}
}
