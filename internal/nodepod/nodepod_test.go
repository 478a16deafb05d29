package nodepod_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubepool/kubepool/internal/config"
	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/nodepod"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const labelsConfig = `
zookeeper-servers: [{host: 127.0.0.1}]
labels: [{name: plain}, {name: tuned}, {name: with-git}, {name: own-spec}, {name: ns}]
providers:
  - name: k8s
    driver: kubernetes
    context: c
    pools:
      - name: main
        labels:
          - {name: plain, type: pod, image: "registry.example.org/machine:1"}
          - name: tuned
            type: pod
            image: "registry.example.org/machine:1"
            image-pull: Always
            cpu: 2
            memory: 2048
            cpu-limit: 4
            memory-limit: 4096
            storage: 1024
            gpu: 1
            gpu-resource: nvidia.com/gpu
            env: [{name: FOO, value: bar}]
            node-selector: {disk: ssd}
            privileged: true
            scheduler-name: fair
            volumes: [{name: cache, emptyDir: {}}]
            volume-mounts: [{name: cache, mountPath: /cache}]
            labels: {team: infra}
            dynamic-labels: {job: "{request.requestor_data[job_name]}"}
            annotations: {example.org/owner: ci}
          - name: with-git
            type: pod
            image: "registry.example.org/nogit:1"
            git-sidecar: {image: "registry.example.org/git:1", path: /home/zuul/src/, size-limit: 512}
          - name: own-spec
            type: pod
            spec:
              containers:
                - {name: main, image: "registry.example.org/main:1", command: [sleep, infinity]}
                - {name: helper, image: "registry.example.org/helper:1"}
            git-sidecar: {image: "registry.example.org/git:1", path: /src}
            annotations: {kubectl.kubernetes.io/default-container: helper}
          - {name: ns, type: namespace}
`

// TestFor compares each label's pod with testdata/<label>.yaml; run with
// -update to rewrite them after a deliberate change.
func TestFor(t *testing.T) {
	cfg, err := config.Parse("labels.yaml", []byte(labelsConfig))
	if err != nil {
		t.Fatalf("config.Parse = %v", err)
	}
	pool := &cfg.Providers[0].Pools[0]
	dynamic := map[string]map[string]string{"tuned": {"job": "tox py311/with spaces"}}
	for _, name := range []string{"plain", "tuned", "with-git", "own-spec"} {
		t.Run(name, func(t *testing.T) {
			label := pool.Label(name)
			before, _ := yaml.Marshal(label.Spec)
			p, err := nodepod.For(label, dynamic[name])
			if err != nil {
				t.Fatalf("For(%s) = %v", name, err)
			}
			got, err := yaml.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join("testdata", name+".yaml"), got, "For("+name+")")
			// The label is not changed by shaping its pod.
			if after, _ := yaml.Marshal(label.Spec); string(after) != string(before) {
				t.Errorf("For(%s) changed the label's spec", name)
			}
			if p.Spec.RestartPolicy != corev1.RestartPolicyNever || p.Spec.ServiceAccountName != kube.ServiceAccountName ||
				p.Spec.AutomountServiceAccountToken == nil || *p.Spec.AutomountServiceAccountToken {
				t.Errorf("For(%s): restart policy %q, service account %q, automount %v; want Never, %q, false",
					name, p.Spec.RestartPolicy, p.Spec.ServiceAccountName, p.Spec.AutomountServiceAccountToken, kube.ServiceAccountName)
			}
		})
	}
	if _, err := nodepod.For(pool.Label("ns"), nil); err == nil {
		t.Errorf("For(namespace label) = nil error, want one")
	}
}

// TestForTwice checks that two pods of one label share nothing.
func TestForTwice(t *testing.T) {
	cfg, err := config.Parse("labels.yaml", []byte(labelsConfig))
	if err != nil {
		t.Fatal(err)
	}
	label := cfg.Providers[0].Pools[0].Label("tuned")
	a, _ := nodepod.For(label, nil)
	b, _ := nodepod.For(label, nil)
	a.Spec.Containers[0].Env[0].Value = "changed"
	a.Spec.NodeSelector["disk"] = "changed"
	a.Annotations["example.org/owner"] = "changed"
	if b.Spec.Containers[0].Env[0].Value != "bar" || b.Spec.NodeSelector["disk"] != "ssd" || b.Annotations["example.org/owner"] != "ci" {
		t.Errorf("changing one pod of label tuned changed another: %+v", b)
	}
}

func ExampleAddGitSidecar() {
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "alpine"}}}
	err := nodepod.AddGitSidecar(&spec, nodepod.GitSidecar{
		Image:     "registry.example.org/git:latest",
		MountPath: "/home/zuul/src",
		Command:   []string{"sleep", "infinity"},
	})
	if err != nil {
		panic(err)
	}
	for _, c := range spec.Containers {
		fmt.Println(c.Name, c.Image, c.VolumeMounts[0].Name, c.VolumeMounts[0].MountPath)
	}
	fmt.Println(spec.Volumes[0].Name, spec.Volumes[0].EmptyDir != nil)
	// Output:
	// main alpine kubepool-git /home/zuul/src
	// git registry.example.org/git:latest kubepool-git /home/zuul/src
	// kubepool-git true
}

func TestAddGitSidecarErrors(t *testing.T) {
	ok := nodepod.GitSidecar{Image: "git", MountPath: "/src", Command: []string{"sleep", "infinity"}}
	for _, tt := range []struct {
		name string
		spec corev1.PodSpec
		opts nodepod.GitSidecar
		want string
	}{
		{"no image", corev1.PodSpec{}, nodepod.GitSidecar{MountPath: "/src", Command: ok.Command}, "image"},
		{"relative path", corev1.PodSpec{}, nodepod.GitSidecar{Image: "git", MountPath: "src", Command: ok.Command}, "absolute"},
		{"root path", corev1.PodSpec{}, nodepod.GitSidecar{Image: "git", MountPath: "/", Command: ok.Command}, "absolute"},
		{"no command", corev1.PodSpec{}, nodepod.GitSidecar{Image: "git", MountPath: "/src"}, "command"},
		{"name taken", corev1.PodSpec{Containers: []corev1.Container{{Name: "git"}}}, ok, "already has a container"},
		{"volume taken", corev1.PodSpec{Volumes: []corev1.Volume{{Name: "kubepool-git"}}}, ok, "already has a volume"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := nodepod.AddGitSidecar(&tt.spec, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("AddGitSidecar = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestAddBuildsetRegistry compares pods of buildset nodes with
// testdata/<label>-buildset.yaml (-update rewrites them).
func TestAddBuildsetRegistry(t *testing.T) {
	cfg, err := config.Parse("labels.yaml", []byte(labelsConfig))
	if err != nil {
		t.Fatal(err)
	}
	pool := &cfg.Providers[0].Pools[0]
	reg := nodepod.BuildsetRegistry{Secret: kube.RegistrySecretName, Path: "registry.example.org:5000/buildsets/0123abcd"}
	for _, name := range []string{"plain", "with-git", "own-spec"} {
		t.Run(name, func(t *testing.T) {
			p, err := nodepod.For(pool.Label(name), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := nodepod.AddBuildsetRegistry(&p.Spec, reg); err != nil {
				t.Fatalf("AddBuildsetRegistry = %v", err)
			}
			got, err := yaml.Marshal(p.Spec)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join("testdata", name+"-buildset.yaml"), got, "AddBuildsetRegistry("+name+")")
			// Every container but the git sidecar has the credentials.
			for _, c := range p.Spec.Containers {
				env := map[string]string{}
				for _, e := range c.Env {
					env[e.Name] = e.Value
				}
				has := env[nodepod.EnvBuildsetRegistry] == reg.Path && env[nodepod.EnvRegistryAuthFile] == nodepod.RegistryDir+"/config.json"
				if has == (c.Name == nodepod.GitContainer) {
					t.Errorf("container %s: buildset environment %v, want it only outside the git sidecar", c.Name, env)
				}
			}
		})
	}
	t.Run("twice", func(t *testing.T) {
		p, _ := nodepod.For(pool.Label("plain"), nil)
		if err := nodepod.AddBuildsetRegistry(&p.Spec, reg); err != nil {
			t.Fatal(err)
		}
		if err := nodepod.AddBuildsetRegistry(&p.Spec, reg); err == nil || !strings.Contains(err.Error(), "already has a volume") {
			t.Errorf("AddBuildsetRegistry twice = %v, want an error about the volume", err)
		}
		if err := nodepod.AddBuildsetRegistry(&corev1.PodSpec{}, nodepod.BuildsetRegistry{Secret: "s"}); err == nil {
			t.Errorf("AddBuildsetRegistry without a path = nil error, want one")
		}
	})
}

// checkGolden compares got, what call made, with the golden file (written
// with -update).
func checkGolden(t *testing.T, golden string, got []byte, call string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to write it): %v", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s differs from %s (-want +got):\n%s", call, golden, d)
	}
}
