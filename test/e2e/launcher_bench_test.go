package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/zk"
)

// BenchmarkLauncherFulfil measures what Zuul waits for: from writing a
// request for one pod node to seeing it fulfilled, cold (every node
// launched: namespace, service account, role, pod to Ready, token) and warm
// (min-ready 2: a ready node handed out with a fresh token). Each sample is
// one request; nodes are returned between samples and, for warm, the pool is
// refilled before the next. Reported: p50 and p90 in milliseconds.
func BenchmarkLauncherFulfil(b *testing.B) {
	const samples = 15
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
				for range samples {
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
				slices.Sort(took)
				b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(took[len(took)*9/10].Microseconds())/1000, "p90-ms")
				b.ReportMetric(float64(took[0].Microseconds())/1000, "min-ms")
			}
		})
	}
}

// waitReady waits until n unallocated ready pod nodes exist.
func (le *launcherEnv) waitReady(tb testing.TB, ctx context.Context, n int) {
	tb.Helper()
	for {
		ch := le.zk.WatchNodes(ctx)
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
		case <-ch:
		case <-ctx.Done():
			tb.Fatalf("waiting for %d ready nodes: %d ready: %v", n, ready, ctx.Err())
		}
	}
}
