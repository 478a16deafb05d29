package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubepool/kubepool/internal/devenv"
)

var k8sBinaries = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl", "kube-proxy"}

func (c *cluster) up(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the dev cluster needs root (it runs a kubelet and containerd)")
	}
	start := time.Now()
	for _, d := range []string{"pids", "logs", "pki", "etcd", "registry", "zookeeper", "containerd", "cni/net.d", "cni/ipam", "kubelet", "certs.d/" + registry} {
		if err := os.MkdirAll(c.path(d), 0o755); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(c.run, 0o755); err != nil {
		return err
	}
	bins, err := c.prepare(ctx)
	if err != nil {
		return err
	}
	if err := c.network(ctx); err != nil {
		return err
	}
	p, err := ensurePKI(c.path("pki"), certSpecs())
	if err != nil {
		return err
	}
	if err := c.writeKubeconfigs(p); err != nil {
		return err
	}
	if err := c.writeConfigs(); err != nil {
		return err
	}
	tlsClient, err := c.adminHTTPClient(p)
	if err != nil {
		return err
	}
	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	plain := &http.Client{Timeout: 2 * time.Second}

	etcd := daemon{
		name: "etcd", bin: "/usr/bin/etcd",
		args: []string{
			"--name", nodeName, "--data-dir", c.path("etcd", "data"),
			"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
			"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
			"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeer),
			"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeer),
			"--initial-cluster", fmt.Sprintf("%s=http://127.0.0.1:%d", nodeName, etcdPeer),
			"--listen-metrics-urls", "", "--log-level", "warn", "--quota-backend-bytes", strconv.Itoa(4 << 30),
		},
		healthy: httpOK(plain, fmt.Sprintf("http://127.0.0.1:%d/health", etcdPort)),
	}
	reg := daemon{
		name: "registry", bin: "/usr/bin/docker-registry",
		args:    []string{"serve", c.path("registry.yml")},
		healthy: httpOK(plain, "http://"+registry+"/v2/"),
	}
	zk := daemon{
		name: "zookeeper", bin: javaPath(),
		args: []string{
			"-Xmx256m", "-XX:+UseSerialGC", "-Dzookeeper.admin.enableServer=false",
			"-Dzookeeper.log.dir=" + c.path("logs"), "-Dzookeeper.root.logger=WARN,CONSOLE",
			"-cp", zkClasspath(), "org.apache.zookeeper.server.ZooKeeperServerMain", c.path("zoo.cfg"),
		},
		healthy: zkOK(fmt.Sprintf("%s:%d", nodeIP, zkPort)),
	}
	pkiPath := p.path
	apiserver := daemon{
		name: "kube-apiserver", bin: bins["kube-apiserver"],
		args: []string{
			"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
			"--bind-address", nodeIP, "--advertise-address", nodeIP, "--secure-port", strconv.Itoa(apiPort),
			"--tls-cert-file", pkiPath("apiserver.crt"), "--tls-private-key-file", pkiPath("apiserver.key"),
			"--client-ca-file", pkiPath("ca.crt"),
			"--kubelet-client-certificate", pkiPath("apiserver-kubelet-client.crt"),
			"--kubelet-client-key", pkiPath("apiserver-kubelet-client.key"),
			"--kubelet-certificate-authority", pkiPath("ca.crt"),
			"--kubelet-preferred-address-types", "InternalIP",
			"--service-account-key-file", pkiPath("sa.pub"),
			"--service-account-signing-key-file", pkiPath("sa.key"),
			"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
			"--service-account-max-token-expiration", "48h",
			"--service-cluster-ip-range", serviceCIDR,
			"--authorization-mode", "Node,RBAC",
			"--enable-admission-plugins", "NodeRestriction",
			// The aggregation layer, for test-only API servers (the
			// OpenShift project API the openshift e2e tests serve): the
			// aggregator proxies with the front-proxy client cert and
			// reaches backends by their endpoints.
			"--requestheader-client-ca-file", pkiPath("ca.crt"),
			"--requestheader-allowed-names", "front-proxy-client",
			"--requestheader-username-headers", "X-Remote-User",
			"--requestheader-group-headers", "X-Remote-Group",
			"--requestheader-extra-headers-prefix", "X-Remote-Extra-",
			"--proxy-client-cert-file", pkiPath("front-proxy-client.crt"),
			"--proxy-client-key-file", pkiPath("front-proxy-client.key"),
			"--enable-aggregator-routing=true",
			"--allow-privileged=true", "--profiling=false", "--v=1",
		},
		healthy: httpOK(tlsClient, fmt.Sprintf("https://%s:%d/readyz", nodeIP, apiPort)),
	}
	cm := daemon{
		name: "kube-controller-manager", bin: bins["kube-controller-manager"],
		args: []string{
			"--kubeconfig", c.path("controller-manager.kubeconfig"),
			"--bind-address", "127.0.0.1", "--secure-port", "10257",
			"--service-account-private-key-file", pkiPath("sa.key"),
			"--root-ca-file", pkiPath("ca.crt"),
			"--cluster-signing-cert-file", pkiPath("ca.crt"), "--cluster-signing-key-file", pkiPath("ca.key"),
			"--use-service-account-credentials=true", "--leader-elect=false",
			"--controllers", "*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
			"--service-cluster-ip-range", serviceCIDR, "--profiling=false", "--v=1",
		},
		healthy: httpOK(insecure, "https://127.0.0.1:10257/healthz"),
	}
	sched := daemon{
		name: "kube-scheduler", bin: bins["kube-scheduler"],
		args: []string{
			"--kubeconfig", c.path("scheduler.kubeconfig"),
			"--bind-address", "127.0.0.1", "--secure-port", "10259",
			"--leader-elect=false", "--profiling=false", "--v=1",
		},
		healthy: httpOK(insecure, "https://127.0.0.1:10259/healthz"),
	}
	ctrd := daemon{
		name: "containerd", bin: "/usr/bin/containerd",
		args:    []string{"--config", c.path("containerd.toml")},
		env:     []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
		healthy: unixOK(c.containerdSocket()),
	}
	kubelet := daemon{
		name: "kubelet", bin: bins["kubelet"],
		args: []string{
			"--config", c.path("kubelet.yaml"),
			"--kubeconfig", c.path("kubelet.kubeconfig"),
			"--hostname-override", nodeName, "--node-ip", nodeIP,
			"--root-dir", c.path("kubelet"), "--v=1",
		},
		env:     []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
		healthy: httpOK(plain, "http://127.0.0.1:10248/healthz"),
	}

	// Services: kube-proxy programs iptables for ClusterIPs, and CoreDNS
	// names them (the kubelet gives pods its address).
	proxy := daemon{
		name: "kube-proxy", bin: bins["kube-proxy"],
		args: []string{
			"--kubeconfig", c.path("kube-proxy.kubeconfig"),
			"--hostname-override", nodeName, "--cluster-cidr", podSubnet,
			"--proxy-mode", "iptables", "--conntrack-max-per-core", "0", "--nodeport-addresses", "primary",
			"--metrics-bind-address", "127.0.0.1:10249", "--healthz-bind-address", "127.0.0.1:10256",
			"--profiling=false", "--v=1",
		},
		env:     []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
		healthy: httpOK(plain, "http://127.0.0.1:10256/livez"),
	}
	dns := daemon{
		name: "coredns", bin: bins["coredns"],
		args:    []string{"-conf", c.path("Corefile")},
		healthy: httpOK(plain, fmt.Sprintf("http://127.0.0.1:%d/ready", corednsReadyPort)),
	}

	for _, d := range []daemon{etcd, reg, zk, apiserver, cm, sched, ctrd} {
		if err := c.start(ctx, d); err != nil {
			return err
		}
	}
	if err := c.corednsRBAC(ctx); err != nil {
		return err
	}
	// CoreDNS before the kubelet, whose pods resolve through it; kube-proxy
	// after, since it is healthy only once it has found its Node (it waits
	// up to 30 s for the kubelet to register it).
	if err := c.start(ctx, dns); err != nil {
		return err
	}
	pause, machine, err := c.images(ctx)
	if err != nil {
		return err
	}
	for _, d := range []daemon{kubelet, proxy} {
		if err := c.start(ctx, d); err != nil {
			return err
		}
	}
	if err := c.waitNodeReady(ctx); err != nil {
		return err
	}
	env := devenv.File{
		Kubeconfig:   c.path("kubeconfig"),
		APIServer:    fmt.Sprintf("https://%s:%d", nodeIP, apiPort),
		Node:         nodeName,
		NodeIP:       nodeIP,
		Registry:     registry,
		MachineImage: machine,
		PauseImage:   pause,
		ZooKeeper:    fmt.Sprintf("%s:%d", nodeIP, zkPort),
		Kubectl:      bins["kubectl"],
	}
	if err := devenv.Write(c.path("env.json"), env); err != nil {
		return err
	}
	rel, _ := filepath.Rel(c.repo, c.path("kubeconfig"))
	fmt.Printf("\nThe dev cluster is up (%s).\n  export KUBECONFIG=%s\n  %s get nodes\n  ZooKeeper: %s   registry: %s   machine image: %s\n",
		time.Since(start).Round(time.Second), rel, bins["kubectl"], env.ZooKeeper, env.Registry, env.MachineImage)
	return nil
}

// prepare builds, or finds in the cache, the Kubernetes binaries and the
// machine image's root file system, side by side (both are slow only the
// first time).
func (c *cluster) prepare(ctx context.Context) (map[string]string, error) {
	var (
		bins map[string]string
		dns  string
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		bins, err = c.kubernetesBinaries(gctx)
		return err
	})
	g.Go(func() error {
		_, err := c.machineRootfs(gctx)
		return err
	})
	g.Go(func() (err error) {
		dns, err = c.corednsBinary(gctx)
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	bins["coredns"] = dns
	return bins, nil
}

// kubernetesBinaries returns the paths of the Kubernetes commands at the
// version pinned in hack/devcluster/k8s/go.mod, building them into the cache
// the first time.
func (c *cluster) kubernetesBinaries(ctx context.Context) (map[string]string, error) {
	pkgs := map[string]string{}
	for _, name := range k8sBinaries {
		pkgs[name] = "k8s.io/kubernetes/cmd/" + name
	}
	return c.pinnedBinaries(ctx, "k8s", "k8s.io/kubernetes", pkgs, "about 5 minutes on 2 cores")
}

// corednsBinary returns the path of CoreDNS at the version pinned in
// hack/devcluster/coredns/go.mod, building it into the cache the first
// time.
func (c *cluster) corednsBinary(ctx context.Context) (string, error) {
	bins, err := c.pinnedBinaries(ctx, "coredns", "github.com/coredns/coredns", map[string]string{"coredns": "github.com/coredns/coredns"}, "about 3 minutes on 2 cores")
	return bins["coredns"], err
}

// pinnedBinaries returns the paths of commands (name -> package) of
// module, built from the module hack/devcluster/<dir> that pins its
// version, into the cache under <dir>/<version>, building those that are
// not there yet.
func (c *cluster) pinnedBinaries(ctx context.Context, dir, module string, pkgs map[string]string, cold string) (map[string]string, error) {
	mod := filepath.Join(c.repo, "hack", "devcluster", dir)
	b, err := os.ReadFile(filepath.Join(mod, "go.mod"))
	if err != nil {
		return nil, err
	}
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(module) + ` (v\S+)`).FindSubmatch(b)
	if m == nil {
		return nil, fmt.Errorf("%s: no `require %s vX.Y.Z` line", filepath.Join(mod, "go.mod"), module)
	}
	version := string(m[1])
	cacheDir := filepath.Join(c.cache, dir, version)
	out := map[string]string{}
	var missing []string
	for name, pkg := range pkgs {
		out[name] = filepath.Join(cacheDir, name)
		if !exists(out[name]) {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	slices.Sort(missing)
	c.log.Info("building "+module+" (cold: "+cold+"; cached afterwards)", "version", version, "into", cacheDir)
	tmp := cacheDir + ".tmp"
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-trimpath", "-o", tmp + "/"}, missing...)...)
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "GOWORK=off")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("building %s %s: %w", module, version, err)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}
	for name := range pkgs {
		if exists(filepath.Join(tmp, name)) {
			if err := os.Rename(filepath.Join(tmp, name), out[name]); err != nil {
				return nil, err
			}
		}
	}
	_ = os.RemoveAll(tmp)
	c.log.Info("built "+module, "version", version, "took", time.Since(t0).Round(time.Second))
	return out, nil
}

// network makes the pod bridge with the node's address on it. The bridge
// CNI plugin attaches pods to it; the API server, kubelet and ZooKeeper
// listen on its address, which pods reach as their gateway.
func (c *cluster) network(ctx context.Context) error {
	if _, err := net.InterfaceByName(bridgeName); err != nil {
		if err := run(ctx, "ip", "link", "add", bridgeName, "type", "bridge"); err != nil {
			return fmt.Errorf("creating the pod bridge: %w", err)
		}
	}
	ifc, err := net.InterfaceByName(bridgeName)
	if err != nil {
		return err
	}
	addrs, _ := ifc.Addrs()
	has := false
	for _, a := range addrs {
		has = has || strings.HasPrefix(a.String(), nodeIP+"/")
	}
	if !has {
		if err := run(ctx, "ip", "addr", "add", nodeIP+"/24", "dev", bridgeName); err != nil {
			return fmt.Errorf("addressing the pod bridge: %w", err)
		}
	}
	return run(ctx, "ip", "link", "set", bridgeName, "up")
}

func certSpecs() []certSpec {
	ip := func(s ...string) []net.IP {
		var out []net.IP
		for _, x := range s {
			out = append(out, net.ParseIP(x))
		}
		return out
	}
	return []certSpec{
		{name: "apiserver", cn: "kube-apiserver", server: true, ips: ip(nodeIP, "127.0.0.1", serviceIP),
			dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}},
		{name: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", org: []string{"system:masters"}, client: true},
		{name: "admin", cn: "kubepool-admin", org: []string{"system:masters"}, client: true},
		{name: "controller-manager", cn: "system:kube-controller-manager", client: true},
		{name: "scheduler", cn: "system:kube-scheduler", client: true},
		{name: "kubelet-client", cn: "system:node:" + nodeName, org: []string{"system:nodes"}, client: true},
		{name: "kubelet-server", cn: nodeName, server: true, ips: ip(nodeIP, "127.0.0.1"), dns: []string{nodeName, "localhost"}},
		// Bound to system:node-proxier by the API server's own policy.
		{name: "kube-proxy", cn: "system:kube-proxy", client: true},
		// Bound to the kubepool:coredns ClusterRole that up makes.
		{name: "coredns", cn: "system:coredns", client: true},
		// Only this name may assert a user to an aggregated API server
		// (--requestheader-allowed-names), though the CA is the cluster's.
		{name: "front-proxy-client", cn: "front-proxy-client", client: true},
	}
}

func (c *cluster) writeKubeconfigs(p *pki) error {
	ca, err := os.ReadFile(p.path("ca.crt"))
	if err != nil {
		return err
	}
	for file, user := range map[string]string{
		"kubeconfig":                    "admin",
		"controller-manager.kubeconfig": "controller-manager",
		"scheduler.kubeconfig":          "scheduler",
		"kubelet.kubeconfig":            "kubelet-client",
		"kube-proxy.kubeconfig":         "kube-proxy",
		"coredns.kubeconfig":            "coredns",
	} {
		crt, err := os.ReadFile(p.path(user + ".crt"))
		if err != nil {
			return err
		}
		key, err := os.ReadFile(p.path(user + ".key"))
		if err != nil {
			return err
		}
		cfg := clientcmdapi.NewConfig()
		cfg.Clusters["kubepool-dev"] = &clientcmdapi.Cluster{Server: fmt.Sprintf("https://%s:%d", nodeIP, apiPort), CertificateAuthorityData: ca}
		cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
		cfg.Contexts["kubepool-dev"] = &clientcmdapi.Context{Cluster: "kubepool-dev", AuthInfo: user, Namespace: "default"}
		cfg.CurrentContext = "kubepool-dev"
		if err := clientcmd.WriteToFile(*cfg, c.path(file)); err != nil {
			return fmt.Errorf("writing %s: %w", file, err)
		}
	}
	return nil
}

func (c *cluster) containerdSocket() string { return filepath.Join(c.run, "containerd.sock") }

func (c *cluster) writeConfigs() error {
	files := map[string]string{
		"registry.yml": fmt.Sprintf(`version: 0.1
log: {level: warn, formatter: text}
storage:
  filesystem: {rootdirectory: %s}
  delete: {enabled: true}
http: {addr: %q}
`, c.path("registry", "data"), registry),
		"zoo.cfg": fmt.Sprintf(`tickTime=2000
dataDir=%s
clientPort=%d
clientPortAddress=%s
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr,stat
# A dev cluster's data is disposable: no fsync per write, so that latency
# figures measure kubepool, not a shared disk.
forceSync=no
`, c.path("zookeeper"), zkPort, nodeIP),
		"containerd.toml": fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%s/kubepool/pause:3.10"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
`, c.path("containerd", "root"), filepath.Join(c.run, "containerd-state"), c.containerdSocket(), registry, c.path("cni", "net.d"), c.path("certs.d")),
		filepath.Join("certs.d", registry, "hosts.toml"): fmt.Sprintf(`server = "http://%s"
[host."http://%s"]
  capabilities = ["pull", "resolve"]
`, registry, registry),
		filepath.Join("cni", "net.d", "10-kubepool.conflist"): fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "kubepool",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q, "rangeStart": "10.244.0.10", "gateway": %q}]],
        "routes": [{"dst": %q}]
      }
    }
  ]
}
`, bridgeName, c.path("cni", "ipam"), podSubnet, nodeIP, serviceCIDR),
		"kubelet.yaml": fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %s}
authorization: {mode: Webhook}
tlsCertFile: %s
tlsPrivateKeyFile: %s
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
serializeImagePulls: false
resolvConf: ""
clusterDNS: [%s]
clusterDomain: %s
staticPodPath: ""
maxPods: 200
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
shutdownGracePeriod: 0s
`, nodeIP, kubeletPort, c.path("pki", "ca.crt"), c.path("pki", "kubelet-server.crt"), c.path("pki", "kubelet-server.key"), c.containerdSocket(), nodeIP, clusterDomain),
		// Cluster DNS on the node's address (pods reach it as their
		// gateway): Services and pods of cluster.local from the API;
		// every other name is answered NXDOMAIN at once, since nothing
		// beyond this machine is reachable.
		"Corefile": fmt.Sprintf(`%[1]s:53 in-addr.arpa:53 ip6.arpa:53 {
    bind %[2]s
    errors
    ready 127.0.0.1:%[4]d
    kubernetes %[1]s in-addr.arpa ip6.arpa {
        kubeconfig %[3]s kubepool-dev
        pods insecure
        ttl 5
    }
    cache 5
}
.:53 {
    bind %[2]s
    errors
    template ANY ANY {
        rcode NXDOMAIN
    }
}
`, clusterDomain, nodeIP, c.path("coredns.kubeconfig"), corednsReadyPort),
	}
	for name, content := range files {
		if err := os.WriteFile(c.path(name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (c *cluster) adminHTTPClient(p *pki) (*http.Client, error) {
	cert, err := tls.LoadX509KeyPair(p.path("admin.crt"), p.path("admin.key"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.caCert)
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}, nil
}

func (c *cluster) client() (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.path("kubeconfig"))
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// corednsRBAC lets CoreDNS's identity read what it serves names for.
func (c *cluster) corednsRBAC(ctx context.Context) error {
	cs, err := c.client()
	if err != nil {
		return err
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "kubepool:coredns"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kubepool:coredns"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "system:coredns"}},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating CoreDNS's ClusterRole: %w", err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating CoreDNS's ClusterRoleBinding: %w", err)
	}
	return nil
}

// waitNodeReady waits until the node is Ready and the default namespace's
// service account exists (pods need it).
func (c *cluster) waitNodeReady(ctx context.Context) error {
	cs, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = nodeReady(ctx, cs)
		if last == nil {
			_, last = cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
			if last == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not ready: %v; see %s", nodeName, last, c.logFile("kubelet"))
		case <-tick.C:
		}
	}
}

func nodeReady(ctx context.Context, cs kubernetes.Interface) error {
	n, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("node %s not registered yet", nodeName)
	}
	if err != nil {
		return err
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			if cond.Status == corev1.ConditionTrue {
				return nil
			}
			return fmt.Errorf("node %s: %s: %s", nodeName, cond.Reason, cond.Message)
		}
	}
	return fmt.Errorf("node %s has no Ready condition yet", nodeName)
}

func httpOK(client *http.Client, url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

func unixOK(path string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			return err
		}
		return conn.Close()
	}
}

// zkOK asks ZooKeeper "ruok" and wants "imok".
func zkOK(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		d := net.Dialer{Timeout: time.Second}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write([]byte("ruok")); err != nil {
			return err
		}
		line, _ := bufio.NewReader(conn).ReadString('\n')
		if !strings.HasPrefix(line, "imok") {
			return fmt.Errorf("ZooKeeper at %s answered %q to ruok", addr, line)
		}
		return nil
	}
}

func javaPath() string {
	if p, err := exec.LookPath("java"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		return p
	}
	return "/usr/bin/java"
}

// zkClasspath is Debian's ZooKeeper and the jars it needs.
func zkClasspath() string {
	jars := []string{"zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar", "slf4j-simple.jar",
		"netty-handler.jar", "netty-common.jar", "netty-buffer.jar", "netty-transport.jar", "netty-codec.jar",
		"netty-resolver.jar", "netty-transport-native-epoll.jar", "netty-transport-native-unix-common.jar",
		"metrics-core.jar", "snappy-java.jar", "commons-cli.jar", "commons-io.jar"}
	var cp []string
	for _, j := range jars {
		cp = append(cp, filepath.Join("/usr/share/java", j))
	}
	return strings.Join(cp, ":")
}
