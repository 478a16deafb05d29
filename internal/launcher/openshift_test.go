package launcher

import (
	"strings"
	"testing"
)

const openshiftPodsConfig = `
zookeeper-servers: [{host: 127.0.0.1}]
labels: [{name: pod}, {name: noimage}]
providers:
  - name: p
    driver: openshiftpods
    context: c
    max-pods: 1
    pools:
      - name: ci-project
        labels:
          - {name: pod, image: "example.org/m:1"}
          - {name: noimage}
`

// TestOpenShiftPodsPool: an openshiftpods pool's nodes live in its
// project, named <label>-<node id>; max-pods is the provider's max-servers;
// a label that can never launch is declined with the reason.
func TestOpenShiftPodsPool(t *testing.T) {
	cfg := parseConfig(t, openshiftPodsConfig)
	pw := &poolWorker{provider: &cfg.Providers[0], pool: &cfg.Providers[0].Pools[0]}
	if !pw.inProject() {
		t.Errorf("inProject() = false for an openshiftpods pool")
	}
	if got, want := projectPodName("pod", "0000000042"), "pod-0000000042"; got != want {
		t.Errorf("projectPodName = %q, want %q", got, want)
	}
	if got := pw.cannotServe([]string{"noimage"}); !strings.Contains(got, "no image") {
		t.Errorf("cannotServe(noimage) = %q; want it to say the label has no image", got)
	}
	if got := pw.cannotServe([]string{"pod"}); got != "" {
		t.Errorf("cannotServe(pod) = %q, want \"\"", got)
	}
	if got := pw.cannotServe([]string{"pod", "pod"}); !strings.Contains(got, "max-servers") {
		t.Errorf("cannotServe(pod, pod) at max-pods 1 = %q; want the provider's quota (max-servers)", got)
	}
}
