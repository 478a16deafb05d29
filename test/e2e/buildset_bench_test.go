package e2e

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkBuildsetLaunch compares, on one launcher whose provider has a
// buildset-registry, the cold launch of a node whose request carries a
// buildset (a registry credential in ZooKeeper, its Secret, the default
// service account's imagePullSecrets, for pods the mounted config) with a
// plain one (a request without build_set_uuid), from writing the request to
// seeing it fulfilled. Samples alternate plain and buildset, each once the
// previous node's namespace is gone.
func BenchmarkBuildsetLaunch(b *testing.B) {
	for _, bc := range []struct {
		label string
		pairs int
	}{{"namespace", 30}, {"pod", 10}} {
		b.Run(bc.label, func(b *testing.B) {
			be := startBuildsetLauncher(b, 0)
			ctx, cancel := context.WithTimeout(b.Context(), 20*time.Minute)
			defer cancel()
			for b.Loop() {
				var plain, withBuildset []time.Duration
				for i := range 2 * bc.pairs {
					data := map[string]any{"job_name": "bench"}
					if i%2 == 1 {
						data["build_set_uuid"] = randHex(16)
					}
					start := time.Now()
					id := be.zuul.submit([]string{bc.label}, 100, map[string]any{"requestor_data": data})
					req := be.zuul.waitRequest(ctx, id)
					took := time.Since(start)
					if req["state"] != "fulfilled" {
						b.Fatalf("request %s = %v, want fulfilled", id, req["state"])
					}
					if i%2 == 1 {
						withBuildset = append(withBuildset, took)
					} else {
						plain = append(plain, took)
					}
					nodes, ret := be.zuul.acceptNodes(id, req)
					ret()
					be.waitGone(b, req["nodes"].([]any)[0].(string), nodes[0]["external_id"].(string))
				}
				reportPair(b, "plain", plain)
				reportPair(b, "buildset", withBuildset)
			}
		})
	}
}

// reportPair reports the p50 and p99 of took as <name>-p50-ms, <name>-p99-ms.
func reportPair(b *testing.B, name string, took []time.Duration) {
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(took[len(took)/2]), name+"-p50-ms")
	b.ReportMetric(ms(took[len(took)*99/100]), name+"-p99-ms")
}
