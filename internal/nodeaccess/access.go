package nodeaccess

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"k8s.io/client-go/rest"

	"github.com/kubepool/kubepool/internal/podexec"
	"github.com/kubepool/kubepool/internal/zk"
)

var (
	// ErrNotKubernetes: the node is not a kubectl, namespace or project
	// node, so it has no Kubernetes connection.
	ErrNotKubernetes = errors.New("not a Kubernetes node")
	// ErrNotPod: the node is a namespace or project, not a pod; there is
	// nothing to exec into.
	ErrNotPod = errors.New("not a pod node")
)

// NodeGetter reads a node record; *zk.Client is one.
type NodeGetter interface {
	GetNode(ctx context.Context, id string) (*zk.Node, error)
}

// Access is how to reach a node's Kubernetes resources with the node's own
// credentials.
type Access struct {
	// Node is the record Access was made from.
	Node *zk.Node
	// Connection is the node's decoded connection_port.
	Connection zk.KubeConnection
	// RESTConfig talks to the node's API server as the node's service
	// account (bearer token, the node's CA or skiptls). Each call of
	// Resolve or ForNode returns a new one; the caller may change it.
	RESTConfig *rest.Config
	// Namespace is the node's namespace (or OpenShift project).
	Namespace string
	// Target is the pod of a kubectl node (container empty: the pod has
	// one). It is the zero Target for namespace and project nodes; use Pod
	// to get it with an error that says so.
	Target podexec.Target
}

// Pod returns the pod to exec into, or an error matching ErrNotPod for a
// namespace or project node.
func (a *Access) Pod() (podexec.Target, error) {
	if a.Target.Pod == "" {
		return podexec.Target{}, fmt.Errorf("node %s is a %s node (namespace %s), not a pod: %w", a.Node.ID, a.Node.ConnectionType, a.Namespace, ErrNotPod)
	}
	return a.Target, nil
}

// Resolve reads node id from ZooKeeper and returns how to reach it.
//
//	a, err := nodeaccess.Resolve(ctx, zkc, "0000000042")
//	target, err := a.Pod()                  // ErrNotPod for namespace nodes
//	ex, err := podexec.New(a.RESTConfig)
//	err = ex.Run(ctx, target, []string{"git", "--version"}, podexec.Options{Stdout: os.Stdout})
//
// A node that does not exist is an error matching zk.ErrNoNode. Resolve
// does not look at the node's state or lock: the caller decides whether
// using, say, a ready node that nobody requested is what it wants. It
// neither locks the node nor changes it.
func Resolve(ctx context.Context, nodes NodeGetter, id string) (*Access, error) {
	n, err := nodes.GetNode(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("resolving node %s: %w", id, err)
	}
	return ForNode(n)
}

// ForNode is Resolve for a record already read.
func ForNode(n *zk.Node) (*Access, error) {
	kc, err := connection(n)
	if err != nil {
		return nil, err
	}
	cfg := &rest.Config{Host: kc.Host, BearerToken: kc.Token}
	if kc.SkipTLS {
		cfg.TLSClientConfig.Insecure = true
	} else if kc.CACert != "" {
		ca, err := base64.StdEncoding.DecodeString(kc.CACert)
		if err != nil {
			return nil, fmt.Errorf("node %s: decoding connection_port ca_crt: %w", n.ID, err)
		}
		cfg.TLSClientConfig.CAData = ca
	}
	a := &Access{Node: n, Connection: kc, RESTConfig: cfg, Namespace: kc.Namespace}
	if n.ConnectionType == zk.ConnectionKubectl {
		pod := kc.Pod
		if pod == "" {
			pod = n.InterfaceIP // Nodepool's kubectl nodes: interface_ip is the pod
		}
		if pod == "" {
			return nil, fmt.Errorf("node %s: kubectl node without a pod in connection_port or interface_ip", n.ID)
		}
		a.Target = podexec.Target{Namespace: kc.Namespace, Pod: pod}
	}
	return a, nil
}

// connection decodes a Kubernetes node's connection_port and checks that it
// says where to connect and as whom.
func connection(n *zk.Node) (zk.KubeConnection, error) {
	switch n.ConnectionType {
	case zk.ConnectionKubectl, zk.ConnectionNamespace, zk.ConnectionProject:
	default:
		return zk.KubeConnection{}, fmt.Errorf("node %s has connection_type %q: %w", n.ID, n.ConnectionType, ErrNotKubernetes)
	}
	kc, err := n.KubeConnection()
	if err != nil {
		return kc, err
	}
	if kc.Host == "" || kc.Token == "" || kc.Namespace == "" {
		return kc, fmt.Errorf("node %s: connection_port lacks host, token or namespace (state %s): is the node ready?", n.ID, n.State)
	}
	return kc, nil
}
