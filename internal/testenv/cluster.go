package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubepool/kubepool/internal/devenv"
)

// Env is the dev cluster as tests see it.
type Env struct {
	Kubeconfig   string       // admin kubeconfig (system:masters)
	RESTConfig   *rest.Config // from Kubeconfig
	Client       kubernetes.Interface
	APIServer    string // https://host:port
	Node         string // the Kubernetes node's name
	NodeIP       string // the node's address; pods reach it as their gateway
	Registry     string // host:port of the cluster's registry (plain HTTP)
	MachineImage string // an image with sh, git and python3, pullable by the cluster
	ZooKeeper    string // host:port of the dev cluster's ZooKeeper
	Kubectl      string // path of the kubectl binary built with the cluster
	StateDir     string // hack/devcluster's state directory (pids, logs)
}

var (
	clusterOnce sync.Once
	clusterEnv  *Env
	clusterErr  error
)

// E2E reports whether end-to-end tests were asked for (KUBEPOOL_E2E=1).
func E2E() bool { return os.Getenv("KUBEPOOL_E2E") == "1" }

// Cluster returns the running dev cluster. It skips the test unless
// KUBEPOOL_E2E=1, and fails it if that is set but the cluster is not up.
// KUBEPOOL_DEVCLUSTER may name the env.json to use; by default it is
// .devcluster/env.json in the checkout the test runs in.
func Cluster(t testing.TB) *Env {
	t.Helper()
	if !E2E() {
		t.Skip("end-to-end test: needs the dev cluster (make cluster-up) and KUBEPOOL_E2E=1")
	}
	clusterOnce.Do(func() { clusterEnv, clusterErr = loadCluster() })
	if clusterErr != nil {
		t.Fatalf("dev cluster: %v", clusterErr)
	}
	return clusterEnv
}

func loadCluster() (*Env, error) {
	path := os.Getenv("KUBEPOOL_DEVCLUSTER")
	if path == "" {
		dir, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		for d := dir; ; d = filepath.Dir(d) {
			if p := filepath.Join(d, ".devcluster", "env.json"); fileExists(p) {
				path = p
				break
			}
			if fileExists(filepath.Join(d, "go.mod")) && fileExists(filepath.Join(d, "hack", "devcluster")) || filepath.Dir(d) == d {
				return nil, fmt.Errorf("no .devcluster/env.json at or above %s: run `make cluster-up`", dir)
			}
		}
	}
	f, err := devenv.Read(path)
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", f.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", f.Kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Env{
		Kubeconfig: f.Kubeconfig, RESTConfig: cfg, Client: cs,
		APIServer: f.APIServer, Node: f.Node, NodeIP: f.NodeIP,
		Registry: f.Registry, MachineImage: f.MachineImage, ZooKeeper: f.ZooKeeper, Kubectl: f.Kubectl,
		StateDir: filepath.Dir(path),
	}, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
