package e2e

// Zuul's side: the ZooKeeper protocol is played by internal/zuultest (its
// own client code, independent of kubepool's internal/zk, so that the
// launcher is tested against the protocol and not against itself). This
// file turns node records into a kubeconfig and an Ansible inventory the way
// zuul/executor/server.py does.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zuultest"
)

// zuul is the Zuul stand-in, shared with internal/zk's tests.
type zuul = zuultest.Zuul

const (
	zuulRequestRoot = zuultest.RequestRoot
	zuulNodesRoot   = zuultest.NodesRoot
)

// newZuul connects to servers, "host:port[,host:port...][/chroot]".
func newZuul(t testing.TB, servers string) *zuul { return zuultest.New(t, servers) }

// executorFiles writes the kubeconfig and the inventory the way Zuul's
// executor does for kubectl and namespace nodes, and returns their paths.
func executorFiles(t testing.TB, dir string, nodes []map[string]any) (kubeconfig, inventory string) {
	t.Helper()
	type named struct {
		Name    string         `json:"name"`
		Cluster map[string]any `json:"cluster,omitempty"`
		User    map[string]any `json:"user,omitempty"`
		Context map[string]any `json:"context,omitempty"`
	}
	kc := struct {
		APIVersion     string         `json:"apiVersion"`
		Kind           string         `json:"kind"`
		Preferences    map[string]any `json:"preferences"`
		Clusters       []named        `json:"clusters"`
		Users          []named        `json:"users"`
		Contexts       []named        `json:"contexts"`
		CurrentContext string         `json:"current-context"`
	}{APIVersion: "v1", Kind: "Config", Preferences: map[string]any{}}
	hosts := map[string]any{}
	for i, n := range nodes {
		data, ok := n["connection_port"].(map[string]any)
		if !ok {
			t.Fatalf("node %d: connection_port is %T, want a dict", i, n["connection_port"])
		}
		u, err := url.Parse(data["host"].(string))
		if err != nil {
			t.Fatalf("node %d: host: %v", i, err)
		}
		clusterName := strings.ReplaceAll(u.Host, ".", "-")
		found := false
		for _, c := range kc.Clusters {
			found = found || c.Name == clusterName
		}
		if !found {
			cluster := map[string]any{"server": data["host"]}
			if ca, _ := data["ca_crt"].(string); ca != "" {
				cluster["certificate-authority-data"] = ca
			}
			if skip, _ := data["skiptls"].(bool); skip {
				cluster["insecure-skip-tls-verify"] = true
			}
			kc.Clusters = append(kc.Clusters, named{Name: clusterName, Cluster: cluster})
		}
		userName := fmt.Sprintf("%s:%s", data["namespace"], data["user"])
		kc.Users = append(kc.Users, named{Name: userName, User: map[string]any{"token": data["token"]}})
		ctxName := userName + "/" + clusterName
		kc.Contexts = append(kc.Contexts, named{Name: ctxName, Context: map[string]any{"user": userName, "cluster": clusterName, "namespace": data["namespace"]}})
		if kc.CurrentContext == "" {
			kc.CurrentContext = ctxName
		}
		if n["connection_type"] != "kubectl" {
			continue // namespaces and projects are not inventory hosts
		}
		hv := map[string]any{
			"ansible_host":               n["interface_ip"],
			"ansible_connection":         "kubectl",
			"ansible_kubectl_context":    ctxName,
			"ansible_python_interpreter": n["python_path"],
		}
		if st, _ := n["shell_type"].(string); st != "" {
			hv["ansible_shell_type"] = st
		}
		// Zuul sets ansible_user only for a node that names its user;
		// otherwise Ansible's remote user is the executor's own, zuul
		// (see ansiblePlaybook).
		if u, _ := n["username"].(string); u != "" {
			hv["ansible_user"] = u
		}
		hosts[fmt.Sprintf("node%d", i)] = hv
	}
	kubeconfig = filepath.Join(dir, "kubeconfig")
	inventory = filepath.Join(dir, "inventory.yaml")
	for path, v := range map[string]any{kubeconfig: kc, inventory: map[string]any{"all": map[string]any{"hosts": hosts}}} {
		b, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return kubeconfig, inventory
}

func randHex(n int) string { return zuultest.RandHex(n) }

// ansiblePlaybook runs ansible-playbook as Zuul's executor does: with the
// kubeconfig and inventory it wrote, kubectl on PATH, and Zuul's default
// remote user, zuul (the executor runs Ansible as user zuul, so a node
// without a username gets ansible_user zuul in effect).
func ansiblePlaybook(ctx context.Context, env *testenv.Env, kubeconfig, inventory, playbook string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ansible-playbook", "-i", inventory, playbook)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "PATH="+filepath.Dir(env.Kubectl)+":"+os.Getenv("PATH"),
		"ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_NOCOLOR=1", "ANSIBLE_REMOTE_USER=zuul")
	return cmd.CombinedOutput()
}
