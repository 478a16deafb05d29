package launcher

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the launcher's Prometheus metrics. Gauges that describe
// ZooKeeper state (requests and nodes by state) are set from the launcher's
// latest view each time it refreshes it.
type Metrics struct {
	Requests        *prometheus.GaugeVec     // by state
	Nodes           *prometheus.GaugeVec     // by provider, label, state
	LaunchSeconds   *prometheus.HistogramVec // by label, phase
	Launches        *prometheus.CounterVec   // by label, result
	FulfilSeconds   *prometheus.HistogramVec // request→fulfilled, by source (warm, launched)
	LeakDeleted     *prometheus.CounterVec   // by provider
	ZKConnected     prometheus.Gauge
	ZKSessionLosses prometheus.Counter
	KubeErrors      *prometheus.CounterVec // by operation
	LaunchWaits     *prometheus.CounterVec // by label, reason
	TokenRequests   *prometheus.CounterVec // buildset registry token requests, by provider, code
}

// NewMetrics creates the launcher's metrics and registers them with reg
// (which may be nil, for tests that do not serve them).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := []float64{.01, .025, .05, .1, .25, .5, 1, 2, 4, 8, 15, 30, 60, 120, 300}
	m := &Metrics{
		Requests: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kubepool", Name: "requests",
			Help: "Node requests in ZooKeeper, by state.",
		}, []string{"state"}),
		Nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kubepool", Name: "nodes",
			Help: "Nodes of this launcher's providers, by provider, label and state.",
		}, []string{"provider", "label", "state"}),
		LaunchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kubepool", Name: "launch_phase_seconds",
			Help:    "Time spent in each phase of a node launch: schedule, image_pull, container_start, ready, and total.",
			Buckets: buckets,
		}, []string{"label", "phase"}),
		Launches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kubepool", Name: "launches_total",
			Help: "Node launches, by label and result (ready, retry, failed).",
		}, []string{"label", "result"}),
		FulfilSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kubepool", Name: "request_fulfil_seconds",
			Help:    "Time from taking a request to fulfilling it, by how its nodes were found (warm, launched).",
			Buckets: buckets,
		}, []string{"source"}),
		LeakDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kubepool", Name: "leak_sweep_deleted_total",
			Help: "Namespaces the leak sweep deleted because no node owned them.",
		}, []string{"provider"}),
		ZKConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kubepool", Name: "zookeeper_connected",
			Help: "1 while the ZooKeeper session is connected, 0 otherwise.",
		}),
		ZKSessionLosses: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kubepool", Name: "zookeeper_session_losses_total",
			Help: "ZooKeeper sessions that expired; ephemeral registrations were recreated after each.",
		}),
		KubeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kubepool", Name: "kubernetes_api_errors_total",
			Help: "Kubernetes API calls that failed, by operation.",
		}, []string{"operation"}),
		LaunchWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kubepool", Name: "launch_waits_total",
			Help: "Times a launching pod started waiting for something that may pass (Unschedulable, a failed image pull), by label and reason; the launch waits up to the boot timeout.",
		}, []string{"label", "reason"}),
		TokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kubepool", Name: "buildset_token_requests_total",
			Help: "Requests to the buildset registries' token endpoints, by provider and HTTP status (401: unknown, revoked or ended credentials).",
		}, []string{"provider", "code"}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Nodes, m.LaunchSeconds, m.Launches, m.FulfilSeconds,
			m.LeakDeleted, m.ZKConnected, m.ZKSessionLosses, m.KubeErrors, m.LaunchWaits, m.TokenRequests)
	}
	return m
}
