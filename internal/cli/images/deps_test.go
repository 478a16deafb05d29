package images

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoHeavyDependencies keeps the image-set commands (and so
// kubepool-images) free of the clients whose package initialisation makes
// kubepool's start-up ten times slower (BENCHMARKS.md, "Image-set
// rendering").
func TestNoHeavyDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".", "../../../cmd/kubepool-images").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"k8s.io/", "github.com/go-zookeeper/", "github.com/prometheus/"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("the image-set commands import %s: keep Kubernetes, ZooKeeper and Prometheus out of internal/cli/images and cliutil", dep)
			}
		}
	}
}
