package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestNodepoolCompat loads configs shaped as Nodepool's own test fixtures
// and doc examples for the kubernetes, openshift and openshiftpods drivers
// (placeholders filled): each must load unchanged.
func TestNodepoolCompat(t *testing.T) {
	files, err := filepath.Glob("testdata/nodepool-compat/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("Glob = %v, %v; want configs", files, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			c := mustParse(t, file)
			for _, w := range c.Warnings {
				if !strings.HasPrefix(filepath.Base(file), "kubernetes-no-image") {
					t.Errorf("Load(%q) warns %v; want no warnings", file, w)
				}
			}
		})
	}
}

func TestOpenShiftValues(t *testing.T) {
	c := mustParse(t, "testdata/nodepool-compat/openshift-quota.yaml")
	pr := c.Provider("openshift")
	if pr.Driver != DriverOpenShift || pr.Context != "admin-cluster.local" || pr.LaunchRetries != 2 {
		t.Errorf("provider = driver %q context %q launch-retries %d; want openshift, admin-cluster.local, 2", pr.Driver, pr.Context, pr.LaunchRetries)
	}
	if pr.MaxServers != 2 || pr.MaxCores != 8 || pr.MaxRAM != 4096 {
		t.Errorf("provider max-servers/cores/ram = %d/%d/%d; want 2/8/4096 (max-projects is max-servers)", pr.MaxServers, pr.MaxCores, pr.MaxRAM)
	}
	pl := pr.Pools[0]
	if pl.MaxServers != 4 || pl.MaxCores != 4 || pl.MaxRAM != 2048 {
		t.Errorf("pool max-servers/cores/ram = %d/%d/%d; want 4/4/2048", pl.MaxServers, pl.MaxCores, pl.MaxRAM)
	}
	if got := pl.Label("openshift-project").Type; got != TypeProject {
		t.Errorf("openshift-project type = %q, want project", got)
	}
	extra := pl.Label("pod-extra")
	if diff := cmp.Diff([]ImagePullSecret{{Name: "registry-secret"}}, extra.ImagePullSecrets); diff != "" {
		t.Errorf("ImagePullSecrets mismatch (-want +got):\n%s", diff)
	}
	if got := pl.Label("pod-default").CPU.String(); got != "2" {
		t.Errorf("pod-default cpu = %s, want the pool's default 2", got)
	}
	if got := pl.Label("pod-custom-cpu").CPULimit.String(); got != "4" {
		t.Errorf("pod-custom-cpu cpu-limit = %s, want 4", got)
	}

	c = mustParse(t, "testdata/nodepool-compat/openshiftpods-quota.yaml")
	pr = c.Provider("openshift")
	if pr.Driver != DriverOpenShiftPods || pr.MaxServers != 2 {
		t.Errorf("provider = driver %q max-servers %d; want openshiftpods, 2 (max-pods)", pr.Driver, pr.MaxServers)
	}
	for _, l := range pr.Pools[0].Labels {
		if l.Type != TypePod {
			t.Errorf("label %s type = %q; want pod, the only type of openshiftpods", l.Name, l.Type)
		}
	}
}

func TestPodLabelWithoutImageWarns(t *testing.T) {
	file := "testdata/nodepool-compat/kubernetes-no-image.yaml"
	c := mustParse(t, file)
	if len(c.Warnings) != 1 {
		t.Fatalf("Warnings = %v; want one", c.Warnings)
	}
	w := c.Warnings[0]
	if w.Line != 23 || w.Path != "providers[0].pools[0].labels[1].image" {
		t.Errorf("warning = %v; want it at line 23, providers[0].pools[0].labels[1].image", w)
	}
	l := c.Providers[0].Pools[0].Label("pod-default")
	if l.Unlaunchable == "" {
		t.Errorf("pod-default.Unlaunchable is empty; want the reason its requests are declined")
	}
	if ns := c.Providers[0].Pools[0].Label("kubernetes-namespace"); ns.Unlaunchable != "" {
		t.Errorf("kubernetes-namespace.Unlaunchable = %q; want empty", ns.Unlaunchable)
	}
}
