package nodeaccess

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubepool/kubepool/internal/zk"
)

// Kubeconfig is the kubeconfig Zuul's executor writes for a build's
// Kubernetes nodes: one cluster per API server, and one user and one
// context per node.
type Kubeconfig struct {
	APIVersion     string         `json:"apiVersion"`
	Kind           string         `json:"kind"`
	Preferences    map[string]any `json:"preferences"`
	Clusters       []NamedCluster `json:"clusters"`
	Users          []NamedUser    `json:"users"`
	Contexts       []NamedContext `json:"contexts"`
	CurrentContext string         `json:"current-context"`
}

// NamedCluster is a kubeconfig cluster entry.
type NamedCluster struct {
	Name    string  `json:"name"`
	Cluster Cluster `json:"cluster"`
}

// Cluster is an API server and how to trust it.
type Cluster struct {
	Server                   string `json:"server"`
	CertificateAuthorityData string `json:"certificate-authority-data,omitempty"` // base64 PEM, as in ca_crt
	InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify,omitempty"`
}

// NamedUser is a kubeconfig user entry.
type NamedUser struct {
	Name string `json:"name"`
	User User   `json:"user"`
}

// User is a node's service-account token.
type User struct {
	Token string `json:"token"`
}

// NamedContext is a kubeconfig context entry.
type NamedContext struct {
	Name    string  `json:"name"`
	Context Context `json:"context"`
}

// Context binds a node's user to its cluster and namespace.
type Context struct {
	User      string `json:"user"`
	Cluster   string `json:"cluster"`
	Namespace string `json:"namespace"`
}

// Inventory is the Ansible inventory Zuul's executor writes, restricted to
// what concerns Kubernetes nodes: every pod node is a host in group all,
// reached with the kubernetes.core.kubectl connection plugin through its
// kubeconfig context. Namespace and project nodes are not hosts; jobs reach
// them with kubectl and the kubeconfig.
type Inventory struct {
	All InventoryGroup `json:"all"`
}

// InventoryGroup is an inventory group: hosts and their variables.
type InventoryGroup struct {
	Hosts map[string]HostVars `json:"hosts"`
}

// HostVars are a pod node's connection variables.
type HostVars struct {
	AnsibleConnection        string `json:"ansible_connection"` // kubectl
	AnsibleHost              string `json:"ansible_host"`       // the pod
	AnsibleKubectlContext    string `json:"ansible_kubectl_context"`
	AnsiblePythonInterpreter string `json:"ansible_python_interpreter"`
	AnsibleShellType         string `json:"ansible_shell_type,omitempty"`
	// AnsibleUser is the node's username, when its record names one (the
	// label's username key); Zuul leaves it unset otherwise, and Ansible
	// runs as the executor's user, zuul.
	AnsibleUser string `json:"ansible_user,omitempty"`
}

// ansibleUser is the inventory's ansible_user for a node's username: none
// for Zuul's default, whose record has none (Nodepool leaves it out, and so
// does Zuul's executor: Ansible's remote user is then its own, zuul).
func ansibleUser(username string) string {
	if username == zk.DefaultUsername {
		return ""
	}
	return username
}

// ExecutorFiles are the kubeconfig and inventory for a set of nodes, with
// the kubeconfig context of each node.
type ExecutorFiles struct {
	Kubeconfig Kubeconfig
	Inventory  Inventory
	// Contexts holds each node's kubeconfig context, by node id.
	Contexts map[string]string
	// Hosts holds each pod node's inventory host name, by node id.
	Hosts map[string]string
}

// HostName is the inventory name of the i-th node of a request. Zuul names
// hosts after the job's nodeset; a request made outside Zuul has no
// nodeset, so nodes are node0, node1, ... in request order.
func HostName(i int) string { return fmt.Sprintf("node%d", i) }

// NewExecutorFiles builds the kubeconfig and inventory for nodes, in
// request order, as Zuul's executor does (prepareKubeConfig): the cluster
// is named after the API server's host:port with dots replaced by dashes
// and added once; each node adds user "<namespace>:<user>" with its token
// and context "<user>/<cluster>" with its namespace; the first node's
// context is the current one. Pod (kubectl) nodes become inventory hosts
// with ansible_connection kubectl, ansible_host the pod and
// ansible_python_interpreter the node's python_path ("auto" if unset).
func NewExecutorFiles(nodes []*zk.Node) (*ExecutorFiles, error) {
	f := &ExecutorFiles{
		Kubeconfig: Kubeconfig{APIVersion: "v1", Kind: "Config", Preferences: map[string]any{},
			Clusters: []NamedCluster{}, Users: []NamedUser{}, Contexts: []NamedContext{}},
		Inventory: Inventory{All: InventoryGroup{Hosts: map[string]HostVars{}}},
		Contexts:  map[string]string{},
		Hosts:     map[string]string{},
	}
	kc := &f.Kubeconfig
	for i, n := range nodes {
		conn, err := connection(n)
		if err != nil {
			return nil, err
		}
		u, err := url.Parse(conn.Host)
		if err != nil {
			return nil, fmt.Errorf("node %s: parsing connection_port host: %w", n.ID, err)
		}
		clusterName := strings.ReplaceAll(u.Host, ".", "-")
		if !slices.ContainsFunc(kc.Clusters, func(c NamedCluster) bool { return c.Name == clusterName }) {
			c := Cluster{Server: conn.Host, CertificateAuthorityData: conn.CACert, InsecureSkipTLSVerify: conn.SkipTLS}
			kc.Clusters = append(kc.Clusters, NamedCluster{Name: clusterName, Cluster: c})
		}
		userName := conn.Namespace + ":" + conn.User
		kc.Users = append(kc.Users, NamedUser{Name: userName, User: User{Token: conn.Token}})
		ctxName := userName + "/" + clusterName
		kc.Contexts = append(kc.Contexts, NamedContext{Name: ctxName, Context: Context{User: userName, Cluster: clusterName, Namespace: conn.Namespace}})
		if kc.CurrentContext == "" {
			kc.CurrentContext = ctxName
		}
		f.Contexts[n.ID] = ctxName
		if n.ConnectionType != zk.ConnectionKubectl {
			continue
		}
		python := n.PythonPath
		if python == "" {
			python = "auto"
		}
		host := HostName(i)
		f.Hosts[n.ID] = host
		f.Inventory.All.Hosts[host] = HostVars{
			AnsibleConnection:        "kubectl",
			AnsibleHost:              n.InterfaceIP,
			AnsibleKubectlContext:    ctxName,
			AnsiblePythonInterpreter: python,
			AnsibleShellType:         n.ShellType,
			AnsibleUser:              ansibleUser(n.Username),
		}
	}
	return f, nil
}

// KubeconfigYAML returns the kubeconfig as YAML.
func (f *ExecutorFiles) KubeconfigYAML() ([]byte, error) {
	b, err := yaml.Marshal(f.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("encoding kubeconfig: %w", err)
	}
	return b, nil
}

// InventoryYAML returns the inventory as YAML.
func (f *ExecutorFiles) InventoryYAML() ([]byte, error) {
	b, err := yaml.Marshal(f.Inventory)
	if err != nil {
		return nil, fmt.Errorf("encoding inventory: %w", err)
	}
	return b, nil
}

// File names WriteDir uses, as Zuul's executor names them.
const (
	KubeconfigFile = "kubeconfig"
	InventoryFile  = "inventory.yaml"
)

// WriteDir writes the kubeconfig and the inventory into dir (created if
// missing), readable only by the user since they hold tokens, and returns
// their paths.
func (f *ExecutorFiles) WriteDir(dir string) (kubeconfig, inventory string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("creating %s: %w", dir, err)
	}
	kubeconfig, inventory = filepath.Join(dir, KubeconfigFile), filepath.Join(dir, InventoryFile)
	for _, w := range []struct {
		path string
		data func() ([]byte, error)
	}{{kubeconfig, f.KubeconfigYAML}, {inventory, f.InventoryYAML}} {
		b, err := w.data()
		if err != nil {
			return "", "", err
		}
		if err := os.WriteFile(w.path, b, 0o600); err != nil {
			return "", "", fmt.Errorf("writing %s: %w", w.path, err)
		}
	}
	return kubeconfig, inventory, nil
}
