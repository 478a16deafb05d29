package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubepool/kubepool/internal/podexec"
	"github.com/kubepool/kubepool/internal/testenv"
)

// TestOpenShiftPodsLauncher: an openshiftpods provider on a project (a
// namespace the test makes) whose launcher may act in that project only.
// It serves pod requests from the Zuul stand-in; Ansible runs a task in the
// pods, each through its own node's token; node A's token execs into A's
// pod and is refused B's; max-pods holds a third request pending until
// nodes are returned; returning a node deletes its pod, service account
// and Role.
func TestOpenShiftPodsLauncher(t *testing.T) {
	env := testenv.Cluster(t)
	project, launcherCfg := projectWithLauncher(t, env, "e2e-osp-l", openshiftPodsLauncherRules)
	le := startLauncherDrivers(t, func(env *testenv.Env, servers, provider string) string {
		return zkServersYAML(servers) + fmt.Sprintf(`
labels:
  - name: pod
providers:
  - name: %s
    driver: openshiftpods
    context: kubepool-dev
    max-pods: 2
    boot-timeout: 120
    token-expiration: 1h
    pools:
      - name: %s
        labels:
          - name: pod
            image: %s
            python-path: /usr/bin/python3
`, provider, project, env.MachineImage)
	}, nil, func() kubernetes.Interface {
		c, err := kubernetes.NewForConfig(launcherCfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	id := le.zuul.Submit([]string{"pod", "pod"}, 100, nil)
	req := le.zuul.WaitRequest(ctx, id)
	if req["state"] != "fulfilled" {
		t.Fatalf("request %s = %v, want fulfilled", id, req)
	}
	nodes, returnNodes := le.zuul.AcceptNodes(id, req)
	ids := req["nodes"].([]any)
	for i, n := range nodes {
		cp := n["connection_port"].(map[string]any)
		want := "pod-" + ids[i].(string)
		if n["connection_type"] != "kubectl" || n["external_id"] != project || cp["namespace"] != project || cp["pod"] != want || cp["user"] != want {
			t.Errorf("node %v = connection_type %v external_id %v namespace %v pod %v user %v; want kubectl, %s, pod and user %s",
				ids[i], n["connection_type"], n["external_id"], cp["namespace"], cp["pod"], cp["user"], project, want)
		}
	}

	// Zuul's executor runs a task in both pods, each with its node's token.
	dir := t.TempDir()
	kubeconfig, inventory := executorFiles(t, dir, nodes)
	playbook := filepath.Join(dir, "playbook.yaml")
	if err := os.WriteFile(playbook, []byte("- hosts: all\n  gather_facts: false\n  tasks:\n    - command: hostname\n      register: out\n    - debug:\n        msg: \"task said: {{ out.stdout }}\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "ansible-playbook", "-i", inventory, playbook)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "PATH="+filepath.Dir(le.env.Kubectl)+":"+os.Getenv("PATH"), "ANSIBLE_NOCOLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "task said: pod-"+ids[0].(string)) || !strings.Contains(string(out), "task said: pod-"+ids[1].(string)) {
		t.Fatalf("ansible-playbook through the kubectl connection: %v\n%s", err, out)
	}

	// Node A's token: its own pod, and not B's.
	cpA, cpB := nodes[0]["connection_port"].(map[string]any), nodes[1]["connection_port"].(map[string]any)
	ca, _ := base64.StdEncoding.DecodeString(cpA["ca_crt"].(string))
	ex, err := podexec.New(&rest.Config{Host: cpA["host"].(string), BearerToken: cpA["token"].(string), TLSClientConfig: rest.TLSClientConfig{CAData: ca}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Run(ctx, podexec.Target{Namespace: project, Pod: cpA["pod"].(string)}, []string{"true"}, podexec.Options{}); err != nil {
		t.Errorf("exec into A's pod with A's token = %v, want nil", err)
	}
	err = ex.Run(ctx, podexec.Target{Namespace: project, Pod: cpB["pod"].(string)}, []string{"true"}, podexec.Options{})
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "forbidden") && !strings.Contains(err.Error(), "403") {
		t.Errorf("exec into B's pod with A's token = %v, want 403 Forbidden", err)
	}

	// max-pods: 2 are in use, so a third request waits, pending.
	third := le.zuul.Submit([]string{"pod"}, 100, nil)
	for {
		r, _, err := le.zuul.GetJSON(zuulRequestRoot + "/" + third)
		if err != nil {
			t.Fatal(err)
		}
		if r["state"] == "pending" {
			break
		}
		if r["state"] != "requested" {
			t.Fatalf("third request at max-pods = %v, want pending", r["state"])
		}
		select {
		case <-le.requestsCh():
		case <-ctx.Done():
			t.Fatalf("third request never became pending")
		}
	}

	returnNodes()
	for i, v := range ids {
		le.waitGone(t, v.(string), "")
		name := "pod-" + v.(string)
		gone := map[string]error{}
		_, gone["pod"] = env.Client.CoreV1().Pods(project).Get(ctx, name, metav1.GetOptions{})
		_, gone["service account"] = env.Client.CoreV1().ServiceAccounts(project).Get(ctx, name, metav1.GetOptions{})
		_, gone["role"] = env.Client.RbacV1().Roles(project).Get(ctx, name, metav1.GetOptions{})
		_, gone["role binding"] = env.Client.RbacV1().RoleBindings(project).Get(ctx, name, metav1.GetOptions{})
		for what, err := range gone {
			if !apierrors.IsNotFound(err) {
				t.Errorf("returned node %d's %s %s/%s: %v; want NotFound", i, what, project, name, err)
			}
		}
	}
	// With room again, the third request is served.
	req = le.zuul.WaitRequest(ctx, third)
	if req["state"] != "fulfilled" {
		t.Fatalf("third request once nodes were returned = %v, want fulfilled", req["state"])
	}
	_, returnThird := le.zuul.AcceptNodes(third, req)
	returnThird()
	le.waitGone(t, req["nodes"].([]any)[0].(string), "")
}

// TestOpenShiftLauncher: an openshift provider on plain Kubernetes serves
// project and pod labels through namespaces; node records carry Nodepool's
// connection types, project and kubectl.
func TestOpenShiftLauncher(t *testing.T) {
	le := startLauncherWith(t, func(env *testenv.Env, servers, provider string) string {
		return zkServersYAML(servers) + fmt.Sprintf(`
labels:
  - name: openshift-project
  - name: openshift-pod
providers:
  - name: %s
    driver: openshift
    context: kubepool-dev
    max-projects: 4
    boot-timeout: 120
    token-expiration: 1h
    pools:
      - name: main
        labels:
          - name: openshift-project
            type: project
          - name: openshift-pod
            type: pod
            image: %s
`, provider, env.MachineImage)
	}, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	id := le.zuul.Submit([]string{"openshift-project", "openshift-pod"}, 100, nil)
	req := le.zuul.WaitRequest(ctx, id)
	if req["state"] != "fulfilled" {
		t.Fatalf("request %s = %v, want fulfilled", id, req)
	}
	nodes, returnNodes := le.zuul.AcceptNodes(id, req)
	ids := req["nodes"].([]any)
	for i, want := range []string{"project", "kubectl"} {
		n := nodes[i]
		if n["connection_type"] != want {
			t.Errorf("node %v connection_type = %v, want %s", ids[i], n["connection_type"], want)
		}
		ns, _ := n["external_id"].(string)
		if _, err := le.env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			t.Errorf("node %v namespace %q: %v", ids[i], ns, err)
		}
	}
	if cp := nodes[1]["connection_port"].(map[string]any); cp["pod"] == "" || cp["pod"] == nil {
		t.Errorf("pod node connection_port has no pod: %v", cp)
	}
	returnNodes()
	for i, n := range nodes {
		// The record goes once the pods are gone; the namespace is on its way.
		le.waitGone(t, ids[i].(string), "")
		ns, err := le.env.Client.CoreV1().Namespaces().Get(ctx, n["external_id"].(string), metav1.GetOptions{})
		if err == nil && ns.DeletionTimestamp == nil {
			t.Errorf("namespace %s of returned node %v is not being deleted", ns.Name, ids[i])
		}
	}
}
