package cliutil_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoHeavyDependencies: the shared plumbing, the image-set commands and
// kubepool-images link no Kubernetes client, no ZooKeeper client and no
// Prometheus, so that kubepool-images starts as fast as a small Go program.
func TestNoHeavyDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list dependencies with")
	}
	pkgs := []string{
		"github.com/kubepool/kubepool/internal/cli/cliutil",
		"github.com/kubepool/kubepool/internal/cli/progress",
		"github.com/kubepool/kubepool/internal/cli/images",
		"github.com/kubepool/kubepool/cmd/kubepool-images",
	}
	forbidden := []string{
		"k8s.io/client-go",
		"k8s.io/apimachinery",
		"github.com/go-zookeeper/zk",
		"github.com/kubepool/kubepool/internal/zk",
		"github.com/prometheus/",
	}
	for _, pkg := range pkgs {
		out, err := exec.Command(gobin, "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 2 {
			t.Fatalf("go list -deps %s listed %q", pkg, deps)
		}
		for _, d := range deps {
			for _, f := range forbidden {
				if strings.HasPrefix(d, f) {
					t.Errorf("%s depends on %s (no %s* allowed)", pkg, d, f)
				}
			}
		}
	}
}
