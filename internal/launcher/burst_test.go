package launcher

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const burstConfig = `
zookeeper-servers: [{host: 127.0.0.1}]
labels: [{name: ns}]
providers:
  - name: k8s
    driver: kubernetes
    context: c
    pools:
      - name: main
        max-servers: 100000
        labels:
          - {name: ns, type: namespace}
`

// BenchmarkBurstCore measures the launcher's own cost per node on a burst:
// n requests queued in ZooKeeper (the real one) before the launcher
// starts, served with the fake driver (Kubernetes costs nothing), until all
// are fulfilled. It reports nodes/s and the CPU this process spent per
// node (the launcher, its ZooKeeper client and the idle Zuul stand-in; the
// ZooKeeper server is another process). Run:
//
//	go test -run '^$' -bench BurstCore -benchtime 1x ./internal/launcher/
func BenchmarkBurstCore(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				burstOnce(b, n)
			}
		})
	}
}

func burstOnce(b *testing.B, n int) {
	var start time.Time
	var cpu0 time.Duration
	r := newRig(b, burstConfig, rigOptions{before: func(r *rig) {
		for range n {
			r.submit("ns")
		}
		cpu0 = processCPU()
		start = time.Now()
	}})
	fulfilled := func() int {
		var m dto.Metric
		_ = r.l.metrics.FulfilSeconds.WithLabelValues("launched").(prometheus.Histogram).Write(&m)
		return int(m.GetHistogram().GetSampleCount())
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Minute)
	for fulfilled() < n {
		select {
		case <-tick.C:
		case <-deadline:
			b.Fatalf("%d of %d requests fulfilled after 10 minutes", fulfilled(), n)
		}
	}
	took := time.Since(start)
	cpu := processCPU() - cpu0
	b.ReportMetric(float64(n)/took.Seconds(), "nodes/s")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(n), "cpu-ms/node")
	b.ReportMetric(0, "ns/op")
	r.shutdown()
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
