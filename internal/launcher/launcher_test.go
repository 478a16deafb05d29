package launcher

import (
	"strings"
	"testing"

	"github.com/kubepool/kubepool/internal/config"
	"github.com/kubepool/kubepool/internal/zk"
)

func TestRenderDynamic(t *testing.T) {
	n := &zk.Node{ID: "0000000042", Provider: "k8s", Pool: "main"}
	r := &zk.Request{ID: "100-0000000007", Requestor: "zuul-scheduler", TenantName: "t1",
		RequestorData: map[string]any{"job_name": "tox-py311", "build_set_uuid": "abc", "nested": map[string]any{"k": "v"}}}
	tests := []struct {
		format string
		req    *zk.Request
		want   string
	}{
		{"{node.id}", r, "0000000042"},
		{"{request.id}", r, "100-0000000007"},
		{"job-{request.requestor_data[job_name]}", r, "job-tox-py311"},
		{"{request.requestor_data['build_set_uuid']}", r, "abc"},
		{"{request.requestor_data[nested][k]}", r, "v"},
		{"{request.requestor_data[missing]}", r, ""},
		{"{request.tenant_name}/{node.pool}", r, "t1/main"},
		{"{request.id}", nil, ""},
		{"plain", r, "plain"},
	}
	for _, tt := range tests {
		if got := renderDynamic(tt.format, n, tt.req); got != tt.want {
			t.Errorf("renderDynamic(%q) = %q, want %q", tt.format, got, tt.want)
		}
	}
}

func parseConfig(t testing.TB, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatalf("config.Parse = %v", err)
	}
	return cfg
}

const quotaConfig = `
zookeeper-servers: [{host: 127.0.0.1}]
labels: [{name: small}, {name: big}, {name: ns}]
providers:
  - name: p
    driver: kubernetes
    context: c
    max-servers: 3
    pools:
      - name: main
        max-cores: 2
        max-ram: 4096
        labels:
          - {name: small, type: pod, image: "example.org/m:1", cpu: 1, memory: 1024}
          - {name: big, type: pod, image: "example.org/m:1", cpu: 3, memory: 1024}
          - {name: ns, type: namespace}
`

func TestQuota(t *testing.T) {
	cfg := parseConfig(t, quotaConfig)
	pw := &poolWorker{provider: &cfg.Providers[0], pool: &cfg.Providers[0].Pools[0]}
	l := &Launcher{cfg: cfg, busy: map[string]bool{}}
	node := func(label string) *zk.Node {
		return &zk.Node{Provider: "p", Pool: "main", Type: []string{label}, State: zk.NodeReady,
			Resources: resourcesMap(pw.pool.Label(label).Resources())}
	}
	tests := []struct {
		name    string
		nodes   []*zk.Node
		labels  []string
		wantWhy string // substring; "" means it fits
	}{
		{"empty", nil, []string{"small", "small"}, ""},
		{"cores", []*zk.Node{node("small")}, []string{"small", "small"}, "max-cores"},
		{"servers", []*zk.Node{node("ns"), node("ns")}, []string{"ns", "ns"}, "max-servers"},
		{"other provider does not count", []*zk.Node{{Provider: "q", Pool: "main", Resources: map[string]any{"cores": 8.0}}}, []string{"small"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := l.quotaShort(pw, tt.nodes, tt.labels)
			if tt.wantWhy == "" && got != "" || tt.wantWhy != "" && !strings.Contains(got, tt.wantWhy) {
				t.Errorf("quotaShort(%v) = %q, want %q", tt.labels, got, tt.wantWhy)
			}
		})
	}
	for labels, want := range map[string]string{"big": "exceeds the pool's quota", "unknown": "does not serve", "": "no nodes"} {
		var ls []string
		if labels != "" {
			ls = []string{labels}
		}
		if got := pw.cannotServe(ls); !strings.Contains(got, want) {
			t.Errorf("cannotServe(%v) = %q, want it to say %q", ls, got, want)
		}
	}
	if got := pw.cannotServe([]string{"small", "small"}); got != "" {
		t.Errorf("cannotServe(small, small) = %q, want \"\"", got)
	}
}
