// Command devcluster runs a real single-node Kubernetes on this machine for
// kubepool's tests and demo: etcd, kube-apiserver (real authentication,
// Node+RBAC authorization), kube-controller-manager, kube-scheduler, a kubelet
// with containerd, runc and bridge CNI, kube-proxy and CoreDNS (Services
// reached by name), a local registry holding images built here in Go, and a
// ZooKeeper.
//
//	go run ./hack/devcluster up      # idempotent: starts what is not running
//	go run ./hack/devcluster down    # stops exactly what up started
//	go run ./hack/devcluster status
//	go run ./hack/devcluster prepare # only build and cache binaries and images
//
// State lives in .devcluster/ at the repository root (git-ignored): PKI,
// configs, data, logs, PID files, the kubeconfig and env.json, which tests
// read (internal/testenv). Kubernetes binaries and the machine image's root
// file system are cached by version under $XDG_CACHE_HOME/kubepool (default
// ~/.cache/kubepool), so only the first run builds them.
//
// Every address is on this machine: the API server, the kubelet, CoreDNS
// and ZooKeeper listen on the pod bridge's address, the registry on
// loopback. Pods have a route to the Service range through that address,
// where kube-proxy's rules send each connection to a pod on the bridge.
// Nothing is routed or masqueraded anywhere else.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

const (
	nodeName    = "kubepool-dev"
	bridgeName  = "kubepool0"
	nodeIP      = "10.244.0.1" // the pod bridge's own address
	podSubnet   = "10.244.0.0/24"
	serviceCIDR = "10.96.0.0/24"
	serviceIP   = "10.96.0.1"
	apiPort     = 6443
	kubeletPort = 10250
	etcdPort    = 23790
	etcdPeer    = 23800
	zkPort      = 22181
	registry    = "127.0.0.1:5001"
	// clusterDomain is the DNS domain of Services and pods; CoreDNS serves
	// it on nodeIP:53.
	clusterDomain    = "cluster.local"
	corednsReadyPort = 10252
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := mainErr(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "devcluster:", err)
		os.Exit(1)
	}
}

func mainErr(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: devcluster up|down|status|prepare")
	}
	c, err := newCluster()
	if err != nil {
		return err
	}
	switch args[0] {
	case "up":
		return c.up(ctx)
	case "down":
		return c.down(ctx)
	case "status":
		return c.status(ctx)
	case "prepare":
		_, err := c.prepare(ctx)
		return err
	default:
		return fmt.Errorf("unknown command %q: want up, down, status or prepare", args[0])
	}
}

// cluster is the dev cluster of one checkout.
type cluster struct {
	repo  string // repository root
	dir   string // repo/.devcluster
	cache string // cache of binaries and images, shared by checkouts
	run   string // short directory for sockets
	log   *slog.Logger
}

func newCluster() (*cluster, error) {
	repo, err := repoRoot()
	if err != nil {
		return nil, err
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("finding the cache directory: %w", err)
		}
		cache = filepath.Join(home, ".cache")
	}
	c := &cluster{
		repo:  repo,
		dir:   filepath.Join(repo, ".devcluster"),
		cache: filepath.Join(cache, "kubepool"),
		run:   "/run/kubepool-devcluster",
		log:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	return c, nil
}

// repoRoot finds the directory holding kubepool's go.mod, from the working
// directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if exists(filepath.Join(d, "hack", "devcluster", "k8s", "go.mod")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no kubepool checkout at or above %s", dir)
		}
	}
}

func (c *cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.dir}, elem...)...)
}
