package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

var update = flag.Bool("update", false, "rewrite the testdata/bad/*.err golden files")

// quantityEqual compares quantities by value: 1024Mi equals 1Gi.
var quantityEqual = cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })

func ptr[T any](v T) *T { return &v }

func mustParse(t *testing.T, file string) *Config {
	t.Helper()
	c, err := Load(file)
	if err != nil {
		t.Fatalf("Load(%q) = %v, want no error", file, err)
	}
	return c
}

func TestLoadNodepoolConfig(t *testing.T) {
	c := mustParse(t, "testdata/nodepool.yaml")

	wantZK := ZooKeeperConfig{
		Servers: []ZooKeeperServer{
			{Host: "zk01.example.org", Port: 2281, Chroot: "/nodepool"},
			{Host: "zk02.example.org", Port: 2281, Chroot: "/nodepool"},
		},
		TLS:     &ZooKeeperTLS{CA: "/etc/zookeeper/ca.pem", Cert: "/etc/zookeeper/client.pem", Key: "/etc/zookeeper/client.key"},
		Timeout: 30 * time.Second,
	}
	if diff := cmp.Diff(wantZK, c.ZooKeeper); diff != "" {
		t.Errorf("ZooKeeper mismatch (-want +got):\n%s", diff)
	}
	if got, want := c.ZooKeeper.Addrs(), []string{"zk01.example.org:2281", "zk02.example.org:2281"}; !cmp.Equal(got, want) {
		t.Errorf("Addrs() = %v, want %v", got, want)
	}
	if got, want := c.WebApp, (WebApp{Port: 8005, ListenAddress: "127.0.0.1"}); got != want {
		t.Errorf("WebApp = %+v, want %+v", got, want)
	}
	if got, want := c.MaxHoldAge, 24*time.Hour; got != want {
		t.Errorf("MaxHoldAge = %v, want %v", got, want)
	}
	wantTenants := []TenantResourceLimit{{TenantName: "example-tenant", MaxServers: Unlimited, MaxCores: 64, MaxRAM: 131072}}
	if diff := cmp.Diff(wantTenants, c.TenantResourceLimits); diff != "" {
		t.Errorf("TenantResourceLimits mismatch (-want +got):\n%s", diff)
	}
	wantLabels := []Label{
		{Name: "pod-fedora", MinReady: 1},
		{Name: "pod-debian-big"},
		{Name: "kubernetes-namespace", MaxReadyAge: time.Hour},
		{Name: "pod-custom"},
	}
	if diff := cmp.Diff(wantLabels, c.Labels); diff != "" {
		t.Errorf("Labels mismatch (-want +got):\n%s", diff)
	}
	wantIgnored := []IgnoredKey{
		{Path: "elements-dir", Line: 7}, {Path: "images-dir", Line: 8},
		{Path: "build-log-dir", Line: 9}, {Path: "build-log-retention", Line: 10},
		{Path: "diskimages", Line: 42},
	}
	if diff := cmp.Diff(wantIgnored, c.Ignored); diff != "" {
		t.Errorf("Ignored mismatch (-want +got):\n%s", diff)
	}

	fedora := PoolLabel{
		Quota:           DefaultPodQuota,
		Network:         NetworkOpen,
		Name:            "pod-fedora",
		Type:            TypePod,
		Image:           "docker.io/fedora:28",
		ImagePullPolicy: corev1.PullIfNotPresent,
		PythonPath:      "/usr/bin/python3",
		// From the pool's default-label-*; limits default to requests
		// except memory, which has a pool default limit.
		CPU:           resource.MustParse("1"),
		Memory:        resource.MustParse("1Gi"),
		Storage:       resource.MustParse("2G"),
		CPULimit:      resource.MustParse("1"),
		MemoryLimit:   resource.MustParse("4Gi"),
		StorageLimit:  resource.MustParse("2G"),
		Env:           []corev1.EnvVar{{Name: "LANG", Value: "C.UTF-8"}},
		Labels:        map[string]string{"team": "ci"},
		DynamicLabels: map[string]string{"zuul-request": "{request.id}"},
		Annotations:   map[string]string{"example.org/owner": "ci-team"},
	}
	big := fedora // merged from fedora with "<<", then overridden
	big.Name = "pod-debian-big"
	big.Image = "docker.io/library/debian:bookworm"
	big.CPU = resource.MustParse("4")
	big.Memory = resource.MustParse("8Gi")
	big.CPULimit = resource.MustParse("8")
	big.MemoryLimit = resource.MustParse("16Gi")
	big.ExtraResources = map[string]int64{"licenses": 1}
	big.NodeSelector = map[string]string{"disktype": "ssd"}
	big.Privileged = ptr(false)
	big.SchedulerName = "default-scheduler"
	big.Volumes = []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	big.VolumeMounts = []corev1.VolumeMount{{Name: "cache", MountPath: "/var/cache/ci"}}

	wantProviders := []Provider{{
		Name:            "kubespray",
		Driver:          "kubernetes",
		Context:         "admin-cluster.local",
		Priority:        100,
		LaunchRetries:   5,
		BootTimeout:     DefaultBootTimeout,
		MaxServers:      40,
		MaxCores:        128,
		MaxRAM:          Unlimited,
		TokenExpiration: 8 * time.Hour,
		Pools: []Pool{{
			Name:           "main",
			Priority:       50,
			MaxServers:     20,
			MaxCores:       128,
			MaxRAM:         Unlimited,
			NodeAttributes: map[string]any{"region": "eu-west", "tier": int64(2)},
			DefaultLabel: LabelDefaults{
				CPU:         resource.MustParse("1"),
				Memory:      resource.MustParse("1Gi"),
				Storage:     resource.MustParse("2G"),
				MemoryLimit: resource.MustParse("4Gi"),
			},
			Labels: []PoolLabel{
				{
					Name: "kubernetes-namespace", Type: TypeNamespace, PythonPath: "auto",
					PodSecurity: PodSecurityBaseline, Quota: DefaultNamespaceQuota, Network: NetworkOpen,
					// The LimitRange's defaults: the pool's default-label-*,
					// limits from requests as in Nodepool, except memory.
					CPU: resource.MustParse("1"), CPULimit: resource.MustParse("1"),
					Memory: resource.MustParse("1Gi"), MemoryLimit: resource.MustParse("4Gi"),
					Storage: resource.MustParse("2G"), StorageLimit: resource.MustParse("2G"),
				},
				fedora,
				big,
			},
		}, {
			Name:       "custom",
			Priority:   100,
			MaxServers: 40,
			MaxCores:   128,
			MaxRAM:     Unlimited,
			Labels: []PoolLabel{{
				Name:        "pod-custom",
				Type:        TypePod,
				Quota:       DefaultPodQuota,
				Network:     NetworkOpen,
				PythonPath:  "auto",
				Annotations: map[string]string{"example.org/purpose": "custom"},
				Spec: &corev1.PodSpec{Containers: []corev1.Container{{
					Name:            "custom-pod",
					Image:           "ubuntu:jammy",
					ImagePullPolicy: corev1.PullIfNotPresent,
					Command:         []string{"/bin/sh", "-c"},
					Args:            []string{"while true; do sleep 30; done;"},
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU:    resource.MustParse("500m"),
						corev1.ResourceMemory: resource.MustParse("512Mi"),
					}},
				}}},
			}},
		}},
	}}
	if diff := cmp.Diff(wantProviders, c.Providers, quantityEqual); diff != "" {
		t.Errorf("Providers mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadKubepoolConfig(t *testing.T) {
	c := mustParse(t, "testdata/kubepool.yaml")
	pr := c.Provider("devcluster")
	if pr == nil {
		t.Fatalf("Provider(%q) = nil, want the provider", "devcluster")
	}
	if got, want := pr.TokenExpiration, 12*time.Hour; got != want {
		t.Errorf("TokenExpiration = %v, want %v", got, want)
	}
	if got, want := pr.BootTimeout, 2*time.Minute; got != want {
		t.Errorf("BootTimeout = %v, want %v", got, want)
	}
	if got, want := c.Label("pod-debian").MaxReadyAge, time.Hour; got != want {
		t.Errorf("MaxReadyAge = %v, want %v", got, want)
	}
	pool := pr.Pools[0]
	if got, want := []int64{pool.MaxServers, pool.MaxCores, pool.MaxRAM}, []int64{10, 8, 16384}; !cmp.Equal(got, want) {
		t.Errorf("pool limits = %v, want %v", got, want)
	}
	if got, want := pool.SupportedLabels(), []string{"pod-debian", "namespace"}; !cmp.Equal(got, want) {
		t.Errorf("SupportedLabels() = %v, want %v", got, want)
	}
	want := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("1Gi")},
	}
	if diff := cmp.Diff(want, pool.Label("pod-debian").ResourceRequirements(), quantityEqual); diff != "" {
		t.Errorf("ResourceRequirements() mismatch (-want +got):\n%s", diff)
	}
}

// TestBad parses each testdata/bad/*.yaml and compares the errors, one per
// line, with the .err file beside it. Run with -update to rewrite them.
func TestBad(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("Glob = %v, %v; want bad configs", files, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Base(file)
			c, err := Parse(name, data)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, nil; want errors", name, c)
			}
			if !errors.Is(err, ErrInvalid) || errors.Is(err, ErrNoConfig) {
				t.Errorf("Parse(%q) = %v; want an error matching ErrInvalid, not ErrNoConfig", name, err)
			}
			if got, want := len(FieldErrors(err)), strings.Count(err.Error(), "\n")+1; got != want {
				t.Errorf("FieldErrors(err) has %d errors, want one per line (%d)", got, want)
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".err"
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("Parse(%q) errors mismatch (-want +got):\n%s", name, diff)
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nodepool.yaml"))
	if !errors.Is(err, ErrNoConfig) || errors.Is(err, ErrInvalid) {
		t.Errorf("Load(missing) = %v; want an error matching ErrNoConfig, not ErrInvalid", err)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v; want it to wrap os.ErrNotExist", err)
	}
}

func TestParseValues(t *testing.T) {
	const head = "zookeeper-servers: [{host: zk}]\nlabels: [{name: l}]\nproviders:\n- name: p\n  driver: kubernetes\n  pools:\n  - name: main\n"
	tests := []struct {
		name string
		yaml string // appended to head: more pool keys, then the pool's labels
		want PoolLabel
	}{{
		name: "nodepool units",
		yaml: "    labels: [{name: l, type: pod, image: x, cpu: 2, memory: 100, storage: 10}]\n",
		want: PoolLabel{
			CPU: resource.MustParse("2"), Memory: resource.MustParse("100Mi"), Storage: resource.MustParse("10M"),
			CPULimit: resource.MustParse("2"), MemoryLimit: resource.MustParse("100Mi"), StorageLimit: resource.MustParse("10M"),
		},
	}, {
		name: "quantity strings and fractional cpu",
		yaml: "    labels: [{name: l, type: pod, image: x, cpu: 0.5, memory: 1Gi, storage: '5Gi', cpu-limit: '2'}]\n",
		want: PoolLabel{
			CPU: resource.MustParse("500m"), Memory: resource.MustParse("1Gi"), Storage: resource.MustParse("5Gi"),
			CPULimit: resource.MustParse("2"), MemoryLimit: resource.MustParse("1Gi"), StorageLimit: resource.MustParse("5Gi"),
		},
	}, {
		name: "label value beats pool default limit beats request",
		yaml: "    default-label-cpu: 1\n    default-label-cpu-limit: 3\n    default-label-memory: 64\n" +
			"    labels: [{name: l, type: pod, image: x, memory-limit: 128}]\n",
		want: PoolLabel{
			CPU: resource.MustParse("1"), CPULimit: resource.MustParse("3"),
			Memory: resource.MustParse("64Mi"), MemoryLimit: resource.MustParse("128Mi"),
		},
	}, {
		name: "explicit zero limit means no limit",
		yaml: "    default-label-cpu: 1\n    labels: [{name: l, type: pod, image: x, cpu-limit: 0}]\n",
		want: PoolLabel{CPU: resource.MustParse("1")},
	}, {
		name: "default extra resources merge",
		yaml: "    default-label-extra-resources: {a: 1, b: 2}\n    labels: [{name: l, type: pod, image: x, extra-resources: {b: 5}}]\n",
		want: PoolLabel{ExtraResources: map[string]int64{"a": 1, "b": 5}},
	}, {
		name: "namespace labels: pool defaults and kubepool's for the LimitRange, the default quota, baseline",
		yaml: "    default-label-cpu: 1\n    labels: [{name: l, type: namespace}]\n",
		want: PoolLabel{
			Type: TypeNamespace, PodSecurity: PodSecurityBaseline, Quota: DefaultNamespaceQuota,
			CPU: resource.MustParse("1"), CPULimit: resource.MustParse("1"),
			Memory: DefaultContainerMemory, MemoryLimit: DefaultContainerMemoryLimit,
			Storage: DefaultContainerStorage, StorageLimit: DefaultContainerStorageLimit,
		},
	}, {
		name: "namespace label with its own quota, pod security and network",
		yaml: "    labels: [{name: l, type: namespace, pod-security: restricted, network: isolated, memory-limit: 2Gi,\n" +
			"      quota: {pods: 3, cpu: 2, memory: 4096, ephemeral-storage: 0, services: 0, persistentvolumeclaims: 1}}]\n",
		want: PoolLabel{
			Type: TypeNamespace, PodSecurity: PodSecurityRestricted, Network: NetworkIsolated,
			Quota: Quota{Pods: 3, CPU: resource.MustParse("2"), Memory: resource.MustParse("4Gi"), PersistentVolumeClaims: 1},
			CPU:   DefaultContainerCPU, CPULimit: DefaultContainerCPULimit,
			Memory: DefaultContainerMemory, MemoryLimit: resource.MustParse("2Gi"),
			Storage: DefaultContainerStorage, StorageLimit: DefaultContainerStorageLimit,
		},
	}, {
		name: "pod label: privileged asked for, one pod",
		yaml: "    labels: [{name: l, type: pod, image: x, pod-security: privileged}]\n",
		want: PoolLabel{PodSecurity: PodSecurityPrivileged, Quota: DefaultPodQuota},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("test.yaml", []byte(head+tt.yaml))
			if err != nil {
				t.Fatalf("Parse(%q) = %v, want no error", tt.yaml, err)
			}
			got := c.Providers[0].Pools[0].Labels[0]
			want := tt.want
			want.Name, want.PythonPath = "l", "auto"
			if want.Type == "" {
				want.Type, want.Image, want.ImagePullPolicy = TypePod, "x", corev1.PullIfNotPresent
				want.Quota = DefaultPodQuota
			}
			if want.Network == "" {
				want.Network = NetworkOpen
			}
			if diff := cmp.Diff(want, got, quantityEqual); diff != "" {
				t.Errorf("Parse(%q) label mismatch (-want +got):\n%s", tt.yaml, diff)
			}
		})
	}
}

func TestResources(t *testing.T) {
	tests := []struct {
		name  string
		label PoolLabel
		want  map[string]float64
	}{{
		name: "pod with everything",
		label: PoolLabel{
			Type: TypePod, CPU: resource.MustParse("2"), Memory: resource.MustParse("1536Mi"),
			Storage: resource.MustParse("10G"), GPU: resource.MustParse("1"), GPUResource: "nvidia.com/gpu",
			ExtraResources: map[string]int64{"licenses": 3},
		},
		want: map[string]float64{"cores": 2, "ram": 1536, "instances": 1, "ephemeral-storage": 10000, "nvidia.com/gpu": 1, "licenses": 3},
	}, {
		name:  "fractions round up",
		label: PoolLabel{Type: TypePod, CPU: resource.MustParse("250m"), Memory: resource.MustParse("1G")},
		want:  map[string]float64{"cores": 0.25, "ram": 954, "instances": 1},
	}, {
		name:  "namespace without quota",
		label: PoolLabel{Type: TypeNamespace},
		want:  map[string]float64{"cores": 0, "ram": 0, "instances": 1},
	}, {
		name: "namespace counts what its quota lets it use",
		label: PoolLabel{Type: TypeNamespace, CPU: resource.MustParse("1"), ExtraResources: map[string]int64{"licenses": 1},
			Quota: Quota{Pods: 5, CPU: resource.MustParse("2500m"), Memory: resource.MustParse("3Gi"), EphemeralStorage: resource.MustParse("10Gi")}},
		want: map[string]float64{"cores": 2.5, "ram": 3072, "instances": 1, "ephemeral-storage": 10738, "licenses": 1},
	}, {
		name:  "spec counts an instance only, as in Nodepool",
		label: PoolLabel{Type: TypePod, Spec: &corev1.PodSpec{}, CPU: resource.MustParse("4")},
		want:  map[string]float64{"cores": 0, "ram": 0, "instances": 1},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.label.Resources().Map()); diff != "" {
				t.Errorf("Resources().Map() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateInCode(t *testing.T) {
	c := mustParse(t, "testdata/kubepool.yaml")
	c.Providers[0].Pools[0].Labels[0].Image = "UPPER/case"
	c.Providers[0].TokenExpiration = time.Minute
	err := c.Validate()
	var got []string
	for _, fe := range FieldErrors(err) {
		got = append(got, fe.Path)
	}
	want := []string{"providers[0].token-expiration", "providers[0].pools[0].labels[0].image"}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Validate() paths mismatch (-want +got):\n%s\nerror: %v", diff, err)
	}
}

func TestRESTConfig(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "config")
	const cfg = `apiVersion: v1
kind: Config
clusters:
- name: dev
  cluster: {server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: secret}
contexts:
- name: kubepool-dev
  context: {cluster: dev, user: admin}
current-context: kubepool-dev
`
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kubeconfig)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")

	rc, err := (&Provider{Context: "kubepool-dev"}).RESTConfig()
	if err != nil {
		t.Fatalf("RESTConfig() = %v, want no error", err)
	}
	if rc.Host != "https://10.0.0.1:6443" || rc.BearerToken != "secret" {
		t.Errorf("RESTConfig() = host %q token %q, want the context's", rc.Host, rc.BearerToken)
	}
	if _, err := (&Provider{Context: "nope"}).RESTConfig(); err == nil {
		t.Errorf("RESTConfig() for a missing context = nil, want an error")
	}
	if _, err := (&Provider{}).RESTConfig(); err == nil {
		t.Errorf("RESTConfig() outside a cluster with no context = nil, want an error")
	}
}
