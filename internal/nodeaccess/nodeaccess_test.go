package nodeaccess_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/kubepool/kubepool/internal/nodeaccess"
	"github.com/kubepool/kubepool/internal/podexec"
	"github.com/kubepool/kubepool/internal/zk"
)

const caPEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

func kubeNode(t testing.TB, id, connType, ns, pod string) *zk.Node {
	t.Helper()
	n := &zk.Node{ID: id, State: zk.NodeInUse, ConnectionType: connType, Provider: "dev", Type: []string{"pod"}, ExternalID: ns, InterfaceIP: pod, PythonPath: "/usr/bin/python3"}
	if err := n.SetKubeConnection(zk.KubeConnection{
		Name: ns, Namespace: ns, Host: "https://10.244.0.1:6443", Token: "token-" + id, User: "zuul-worker",
		CACert: base64.StdEncoding.EncodeToString([]byte(caPEM)), Pod: pod,
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

type records map[string]*zk.Node

func (r records) GetNode(_ context.Context, id string) (*zk.Node, error) {
	if n, ok := r[id]; ok {
		return n, nil
	}
	return nil, fmt.Errorf("reading node %s: %w", id, zk.ErrNoNode)
}

func TestResolve(t *testing.T) {
	pod := kubeNode(t, "0000000001", zk.ConnectionKubectl, "kp-1", "machine")
	ns := kubeNode(t, "0000000002", zk.ConnectionNamespace, "kp-2", "")
	ssh := &zk.Node{ID: "0000000003", ConnectionType: "ssh"}
	nodes := records{pod.ID: pod, ns.ID: ns, ssh.ID: ssh}

	a, err := nodeaccess.Resolve(t.Context(), nodes, pod.ID)
	if err != nil {
		t.Fatalf("Resolve(%s) = %v", pod.ID, err)
	}
	target, err := a.Pod()
	if err != nil {
		t.Fatalf("Pod() = %v", err)
	}
	if want := (podexec.Target{Namespace: "kp-1", Pod: "machine"}); target != want {
		t.Errorf("Pod() = %v, want %v", target, want)
	}
	rc := a.RESTConfig
	if rc.Host != "https://10.244.0.1:6443" || rc.BearerToken != "token-0000000001" || string(rc.TLSClientConfig.CAData) != caPEM || rc.TLSClientConfig.Insecure {
		t.Errorf("RESTConfig = host %q token %q CA %q insecure %v, want the node's", rc.Host, rc.BearerToken, rc.TLSClientConfig.CAData, rc.TLSClientConfig.Insecure)
	}

	a, err = nodeaccess.Resolve(t.Context(), nodes, ns.ID)
	if err != nil {
		t.Fatalf("Resolve(%s) = %v", ns.ID, err)
	}
	if _, err := a.Pod(); !errors.Is(err, nodeaccess.ErrNotPod) {
		t.Errorf("Pod() of a namespace node = %v, want ErrNotPod", err)
	}
	if a.Namespace != "kp-2" {
		t.Errorf("Namespace = %q, want kp-2", a.Namespace)
	}
	if _, err := nodeaccess.Resolve(t.Context(), nodes, ssh.ID); !errors.Is(err, nodeaccess.ErrNotKubernetes) {
		t.Errorf("Resolve(ssh node) = %v, want ErrNotKubernetes", err)
	}
	if _, err := nodeaccess.Resolve(t.Context(), nodes, "0000000099"); !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("Resolve(unknown) = %v, want zk.ErrNoNode", err)
	}
}

func TestExecutorFiles(t *testing.T) {
	pod := kubeNode(t, "0000000001", zk.ConnectionKubectl, "kp-1", "machine")
	ns := kubeNode(t, "0000000002", zk.ConnectionNamespace, "kp-2", "")
	skip := kubeNode(t, "0000000003", zk.ConnectionKubectl, "kp-3", "other")
	if err := skip.SetKubeConnection(zk.KubeConnection{Name: "kp-3", Namespace: "kp-3", Host: "https://k8s.example.org", SkipTLS: true, Token: "t3", User: "zuul-worker", Pod: "other"}); err != nil {
		t.Fatal(err)
	}
	skip.PythonPath = ""
	skip.ShellType = "sh"

	f, err := nodeaccess.NewExecutorFiles([]*zk.Node{pod, ns, skip})
	if err != nil {
		t.Fatalf("NewExecutorFiles = %v", err)
	}
	dir := t.TempDir()
	kcPath, invPath, err := f.WriteDir(filepath.Join(dir, "job"))
	if err != nil {
		t.Fatalf("WriteDir = %v", err)
	}
	ca := base64.StdEncoding.EncodeToString([]byte(caPEM))
	wantKubeconfig := map[string]any{
		"apiVersion": "v1", "kind": "Config", "preferences": map[string]any{},
		"clusters": []any{
			map[string]any{"name": "10-244-0-1:6443", "cluster": map[string]any{"server": "https://10.244.0.1:6443", "certificate-authority-data": ca}},
			map[string]any{"name": "k8s-example-org", "cluster": map[string]any{"server": "https://k8s.example.org", "insecure-skip-tls-verify": true}},
		},
		"users": []any{
			map[string]any{"name": "kp-1:zuul-worker", "user": map[string]any{"token": "token-0000000001"}},
			map[string]any{"name": "kp-2:zuul-worker", "user": map[string]any{"token": "token-0000000002"}},
			map[string]any{"name": "kp-3:zuul-worker", "user": map[string]any{"token": "t3"}},
		},
		"contexts": []any{
			map[string]any{"name": "kp-1:zuul-worker/10-244-0-1:6443", "context": map[string]any{"user": "kp-1:zuul-worker", "cluster": "10-244-0-1:6443", "namespace": "kp-1"}},
			map[string]any{"name": "kp-2:zuul-worker/10-244-0-1:6443", "context": map[string]any{"user": "kp-2:zuul-worker", "cluster": "10-244-0-1:6443", "namespace": "kp-2"}},
			map[string]any{"name": "kp-3:zuul-worker/k8s-example-org", "context": map[string]any{"user": "kp-3:zuul-worker", "cluster": "k8s-example-org", "namespace": "kp-3"}},
		},
		"current-context": "kp-1:zuul-worker/10-244-0-1:6443",
	}
	wantInventory := map[string]any{"all": map[string]any{"hosts": map[string]any{
		"node0": map[string]any{"ansible_connection": "kubectl", "ansible_host": "machine", "ansible_kubectl_context": "kp-1:zuul-worker/10-244-0-1:6443", "ansible_python_interpreter": "/usr/bin/python3"},
		"node2": map[string]any{"ansible_connection": "kubectl", "ansible_host": "other", "ansible_kubectl_context": "kp-3:zuul-worker/k8s-example-org", "ansible_python_interpreter": "auto", "ansible_shell_type": "sh"},
	}}}
	for _, tt := range []struct {
		path string
		want map[string]any
	}{{kcPath, wantKubeconfig}, {invPath, wantInventory}} {
		b, err := os.ReadFile(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := yaml.Unmarshal(b, &got); err != nil {
			t.Fatalf("decoding %s: %v", tt.path, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", filepath.Base(tt.path), diff)
		}
		if st, err := os.Stat(tt.path); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, %v, want 0600", tt.path, st.Mode().Perm(), err)
		}
	}
	if got, want := f.Hosts, map[string]string{pod.ID: "node0", skip.ID: "node2"}; !cmp.Equal(got, want) {
		t.Errorf("Hosts = %v, want %v", got, want)
	}
}

func ExampleNewExecutorFiles() {
	n := &zk.Node{ID: "0000000007", ConnectionType: zk.ConnectionKubectl, InterfaceIP: "machine", PythonPath: "/usr/bin/python3"}
	_ = n.SetKubeConnection(zk.KubeConnection{Name: "kp-7", Namespace: "kp-7", Host: "https://10.244.0.1:6443", SkipTLS: true, Token: "secret", User: "zuul-worker", Pod: "machine"})
	f, _ := nodeaccess.NewExecutorFiles([]*zk.Node{n})
	inv, _ := f.InventoryYAML()
	fmt.Print(string(inv))
	// Output:
	// all:
	//   hosts:
	//     node0:
	//       ansible_connection: kubectl
	//       ansible_host: machine
	//       ansible_kubectl_context: kp-7:zuul-worker/10-244-0-1:6443
	//       ansible_python_interpreter: /usr/bin/python3
}
