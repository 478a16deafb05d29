package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/yaml"

	"github.com/kubepool/kubepool/internal/config"
	"github.com/kubepool/kubepool/internal/goimage"
	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/podexec"
	"github.com/kubepool/kubepool/internal/testenv"
)

// deployment is the launcher running in the dev cluster from deploy/devcluster,
// renamed for one test.
type deployment struct {
	env            *testenv.Env
	namespace      string // where the launcher runs
	name           string // of the Deployment
	serviceAccount string
	provider       string
	servers        string // ZooKeeper connection string with the chroot
	image          string // by digest
	rendered       []byte // what was applied
}

// TestDeployInCluster builds kubepool's image in Go, pushes it to the dev
// cluster's registry, deploys the launcher from deploy/devcluster by digest,
// and plays Zuul against it: a pod request is fulfilled by the launcher
// running in the cluster, the node's token execs in the pod, and returning
// the node cleans it up. The launcher's service account is checked to hold
// no more than it needs.
func TestDeployInCluster(t *testing.T) {
	env := testenv.Cluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	dep := deploy(t, ctx, env)
	pod := dep.waitReady(t, ctx)
	t.Logf("launcher pod %s/%s ready on %s", pod.Namespace, pod.Name, pod.Status.PodIP)

	// The launcher serves its status endpoints on the pod network.
	base := "http://" + pod.Status.PodIP + ":8005"
	if body := httpGet(t, ctx, base+"/readyz"); !strings.Contains(body, "ok") {
		t.Errorf("GET /readyz = %q, want ok", body)
	}

	z := newZuul(t, dep.servers)
	id := z.Submit([]string{"pod"}, 100, nil)
	req := z.WaitRequest(ctx, id)
	if req["state"] != "fulfilled" {
		t.Fatalf("request %s = %v, want fulfilled by the in-cluster launcher", id, req)
	}
	nodes, returnNodes := z.AcceptNodes(id, req)
	node := nodes[0]
	nodeID := req["nodes"].([]any)[0].(string)
	cp := node["connection_port"].(map[string]any)
	if node["provider"] != dep.provider || node["launcher"] == nil {
		t.Errorf("node provider %v, want %s", node["provider"], dep.provider)
	}
	// In the cluster the launcher tells users the API server it reaches itself.
	if cp["host"] != env.APIServer {
		t.Errorf("node connection host = %v, want %s", cp["host"], env.APIServer)
	}
	if body := httpGet(t, ctx, base+"/node-list"); !strings.Contains(body, `"`+nodeID+`"`) {
		t.Errorf("GET /node-list has no node %s: %s", nodeID, body)
	}
	if body := httpGet(t, ctx, base+"/"); !strings.Contains(body, "<td>"+nodeID+"</td>") {
		t.Errorf("status page has no row for node %s:\n%s", nodeID, body)
	}

	// Zuul's job: exec in the pod with the node's token, nothing else.
	ca, _ := base64.StdEncoding.DecodeString(cp["ca_crt"].(string))
	ex, err := podexec.New(&rest.Config{Host: cp["host"].(string), BearerToken: cp["token"].(string), TLSClientConfig: rest.TLSClientConfig{CAData: ca}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	target := podexec.Target{Namespace: cp["namespace"].(string), Pod: cp["pod"].(string)}
	if err := ex.Run(ctx, target, []string{"sh", "-c", "echo job ran in $(hostname)"}, podexec.Options{Stdout: &out}); err != nil {
		t.Fatalf("exec in the node's pod with its token: %v", err)
	}
	if want := "job ran in " + target.Pod; !strings.Contains(out.String(), want) {
		t.Errorf("exec output %q, want %q", out.String(), want)
	}

	dep.checkRBAC(t, ctx, target.Namespace)

	returnNodes()
	waitZNodeGone(t, ctx, z, zuulNodesRoot+"/"+nodeID)
	// The record goes once the node's pods are gone; the launcher goes on
	// deleting the namespace.
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := env.Client.CoreV1().Namespaces().Get(ctx, target.Namespace, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("namespace %s of the returned node is not gone: %v", target.Namespace, err)
	}
}

// deploy builds and pushes the image, renders deploy/devcluster with a
// per-test namespace, names, ZooKeeper chroot and provider, applies it, and
// deletes all of it (and any node the launcher left) when the test ends.
func deploy(t *testing.T, ctx context.Context, env *testenv.Env) *deployment {
	t.Helper()
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	img, err := goimage.Build(ctx, goimage.Options{Dir: repo, Package: "./cmd/kubepool", CACerts: goimage.DefaultCACerts,
		Labels: map[string]string{"org.opencontainers.image.title": "kubepool (e2e)"}})
	if err != nil {
		t.Fatalf("building the kubepool image: %v", err)
	}
	repository := env.Registry + "/kubepool/kubepool"
	ref, err := goimage.Push(ctx, repository+":e2e", img)
	if err != nil {
		t.Fatalf("pushing the kubepool image: %v", err)
	}

	suffix := randHex(3)
	dep := &deployment{
		env:            env,
		namespace:      "kubepool-e2e-" + suffix,
		name:           "kubepool-launcher-e2e-" + suffix,
		serviceAccount: "kubepool-launcher-e2e-" + suffix,
		provider:       "e2e-deploy-" + suffix,
		image:          ref.String(),
	}

	// The overlay's launcher config, with this test's chroot and provider
	// name (the provider name marks what the launcher creates and sweeps).
	overlay := filepath.Join(repo, "deploy", "devcluster")
	raw, err := os.ReadFile(filepath.Join(overlay, "nodepool.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("decoding deploy/devcluster/nodepool.yaml: %v", err)
	}
	zkServer := cfg["zookeeper-servers"].([]any)[0].(map[string]any)
	if addr := fmt.Sprintf("%v:%v", zkServer["host"], zkServer["port"]); addr != env.ZooKeeper {
		t.Errorf("deploy/devcluster/nodepool.yaml: ZooKeeper %s, want the dev cluster's %s", addr, env.ZooKeeper)
	}
	chroot := "/kubepool-e2e-deploy-" + suffix
	zkServer["chroot"] = chroot
	dep.servers = env.ZooKeeper + chroot
	cfg["providers"].([]any)[0].(map[string]any)["name"] = dep.provider
	cfgYAML, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse("nodepool.yaml", cfgYAML); err != nil {
		t.Fatalf("the test's launcher config: %v", err)
	}

	dir := t.TempDir()
	rel, err := filepath.Rel(dir, overlay)
	if err != nil {
		t.Fatal(err)
	}
	kustomization := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
namespace: %s
nameSuffix: -e2e-%s
images:
  - name: %s
    digest: %s
configMapGenerator:
  - name: kubepool-launcher-config
    behavior: replace
    files:
      - nodepool.yaml
patches:
  # kustomize renames the service account but not the binding's subject.
  - target:
      kind: ClusterRoleBinding
    patch: |
      - op: replace
        path: /subjects/0
        value: {kind: ServiceAccount, name: %s, namespace: %s}
`, rel, dep.namespace, suffix, repository, ref.DigestStr(), dep.serviceAccount, dep.namespace)
	for name, data := range map[string][]byte{"kustomization.yaml": []byte(kustomization), "nodepool.yaml": cfgYAML} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dep.rendered = kubectl(t, ctx, env, nil, "kustomize", dir)
	if !bytes.Contains(dep.rendered, []byte("image: "+dep.image+"\n")) {
		t.Fatalf("rendered manifests do not run %s:\n%s", dep.image, dep.rendered)
	}

	t.Cleanup(func() { dep.teardown(t) })
	kubectl(t, ctx, env, dep.rendered, "apply", "-f", "-")
	return dep
}

// teardown stops the launcher, deletes the nodes it may have left, then
// everything that was applied, waiting for all of it to go.
func (dep *deployment) teardown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if t.Failed() {
		dep.dumpLogs(t, ctx)
	}
	c := dep.env.Client
	if err := c.AppsV1().Deployments(dep.namespace).Delete(ctx, dep.name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("deleting the launcher deployment: %v", err)
	}
	d, err := kube.NewDriver(dep.env.RESTConfig)
	if err != nil {
		t.Error(err)
		return
	}
	owned, err := d.List(ctx, dep.provider)
	if err != nil {
		t.Errorf("listing the launcher's leftover namespaces: %v", err)
	}
	for _, o := range owned {
		if err := d.Delete(ctx, o.Namespace, true); err != nil {
			t.Errorf("deleting leftover node namespace: %v", err)
		}
	}
	cmd := exec.CommandContext(ctx, dep.env.Kubectl, "--kubeconfig", dep.env.Kubeconfig, "delete", "--ignore-not-found", "--wait=true", "-f", "-")
	cmd.Stdin = bytes.NewReader(dep.rendered)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("kubectl delete: %v\n%s", err, out)
	}
	// The launcher is gone (its ephemeral znodes with it): drop the chroot.
	if err := deleteZKTree(dep.env.ZooKeeper, dep.servers[len(dep.env.ZooKeeper):]); err != nil {
		t.Errorf("deleting the test's ZooKeeper chroot: %v", err)
	}
}

// deleteZKTree deletes path and everything under it.
func deleteZKTree(server, path string) error {
	conn, _, err := gozk.Connect([]string{server}, 10*time.Second, gozk.WithLogInfo(false))
	if err != nil {
		return err
	}
	defer conn.Close()
	var del func(p string) error
	del = func(p string) error {
		children, _, err := conn.Children(p)
		if errors.Is(err, gozk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("listing %s: %w", p, err)
		}
		for _, c := range children {
			if err := del(p + "/" + c); err != nil {
				return err
			}
		}
		if err := conn.Delete(p, -1); err != nil && !errors.Is(err, gozk.ErrNoNode) {
			return fmt.Errorf("deleting %s: %w", p, err)
		}
		return nil
	}
	return del(path)
}

// waitReady watches the launcher's pods until one is Ready, failing fast
// when its image cannot be pulled or its container keeps crashing.
func (dep *deployment) waitReady(t *testing.T, ctx context.Context) *corev1.Pod {
	t.Helper()
	c := dep.env.Client
	sel := "app.kubernetes.io/name=kubepool,app.kubernetes.io/component=launcher"
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = sel
			return c.CoreV1().Pods(dep.namespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = sel
			return c.CoreV1().Pods(dep.namespace).Watch(ctx, o)
		},
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var ready *corev1.Pod
	_, err := watchtools.UntilWithSync(wctx, lw, &corev1.Pod{}, nil, func(ev watch.Event) (bool, error) {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok || ev.Type == watch.Deleted {
			return false, nil
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil {
				switch w.Reason {
				case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError", "RunContainerError":
					return false, fmt.Errorf("launcher pod %s: %s: %s", p.Name, w.Reason, w.Message)
				}
			}
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				ready = p
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("waiting for the launcher pod to be Ready: %v", err)
	}
	if ready.Spec.Containers[0].Image != dep.image {
		t.Errorf("launcher pod runs %s, want %s", ready.Spec.Containers[0].Image, dep.image)
	}
	return ready
}

// checkRBAC asks the API server, as the launcher's service account, what it
// may do: what the launcher needs, and nothing that would let it read
// secrets, run commands in pods or grant itself roles it does not have.
func (dep *deployment) checkRBAC(t *testing.T, ctx context.Context, nodeNamespace string) {
	t.Helper()
	cfg := rest.CopyConfig(dep.env.RESTConfig)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + dep.namespace + ":" + dep.serviceAccount,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + dep.namespace, "system:authenticated"},
	}
	sa, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rbac := "rbac.authorization.k8s.io"
	for _, ra := range []authorizationv1.ResourceAttributes{
		{Verb: "create", Resource: "namespaces"},
		{Verb: "watch", Resource: "namespaces"},
		{Namespace: nodeNamespace, Verb: "create", Resource: "serviceaccounts", Subresource: "token", Name: kube.ServiceAccountName},
		{Namespace: nodeNamespace, Verb: "create", Resource: "pods"},
		{Namespace: nodeNamespace, Verb: "create", Group: rbac, Resource: "rolebindings"},
		{Namespace: nodeNamespace, Verb: "bind", Group: rbac, Resource: "roles", Name: kube.ServiceAccountName},
		{Namespace: nodeNamespace, Verb: "create", Resource: "resourcequotas"},
		{Namespace: nodeNamespace, Verb: "watch", Resource: "resourcequotas", Name: kube.PolicyName},
		{Namespace: nodeNamespace, Verb: "create", Resource: "limitranges"},
		{Namespace: nodeNamespace, Verb: "create", Group: "networking.k8s.io", Resource: "networkpolicies"},
		{Namespace: "default", Verb: "get", Group: "discovery.k8s.io", Resource: "endpointslices", Name: "kubernetes"},
	} {
		if !canI(t, sa, ra) {
			t.Errorf("launcher can-i %s %s/%s %s in %q = no, want yes", ra.Verb, ra.Resource, ra.Subresource, ra.Name, ra.Namespace)
		}
	}
	for _, ra := range []authorizationv1.ResourceAttributes{
		{Namespace: "kube-system", Verb: "get", Resource: "secrets"},
		{Namespace: nodeNamespace, Verb: "list", Resource: "secrets"},
		{Namespace: "kube-system", Verb: "create", Resource: "pods", Subresource: "exec"},
		{Namespace: nodeNamespace, Verb: "create", Resource: "pods", Subresource: "exec"},
		{Namespace: dep.namespace, Verb: "get", Resource: "configmaps"},
		{Verb: "delete", Resource: "nodes"},
		{Verb: "update", Resource: "namespaces", Name: nodeNamespace},
		{Verb: "create", Group: rbac, Resource: "clusterrolebindings"},
		{Verb: "create", Group: rbac, Resource: "clusterroles"},
		{Verb: "bind", Group: rbac, Resource: "clusterroles", Name: "cluster-admin"},
		{Namespace: nodeNamespace, Verb: "bind", Group: rbac, Resource: "roles", Name: "admin"},
		{Namespace: nodeNamespace, Verb: "bind", Group: rbac, Resource: "clusterroles", Name: "admin"},
		{Namespace: nodeNamespace, Verb: "create", Group: "apps", Resource: "deployments"},
		{Namespace: nodeNamespace, Verb: "delete", Group: rbac, Resource: "roles"},
		{Verb: "patch", Resource: "namespaces", Name: nodeNamespace},
		{Namespace: nodeNamespace, Verb: "update", Resource: "resourcequotas", Name: kube.PolicyName},
		{Namespace: nodeNamespace, Verb: "update", Resource: "resourcequotas", Subresource: "status", Name: kube.PolicyName},
		{Namespace: nodeNamespace, Verb: "delete", Group: "networking.k8s.io", Resource: "networkpolicies", Name: kube.PolicyName},
		{Namespace: "default", Verb: "list", Group: "discovery.k8s.io", Resource: "endpointslices"},
	} {
		if canI(t, sa, ra) {
			t.Errorf("launcher can-i %s %s/%s %s (group %q) in %q = yes, want no", ra.Verb, ra.Resource, ra.Subresource, ra.Name, ra.Group, ra.Namespace)
		}
	}
	// And for real: the API server refuses, naming the launcher.
	if _, err := sa.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("launcher listing secrets in kube-system: %v, want Forbidden", err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-escalation"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: dep.serviceAccount, Namespace: dep.namespace}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbac, Kind: "ClusterRole", Name: "admin"},
	}
	if _, err := sa.RbacV1().RoleBindings(nodeNamespace).Create(ctx, rb, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); !apierrors.IsForbidden(err) {
		t.Errorf("launcher binding itself to ClusterRole admin in %s (dry run): %v, want Forbidden", nodeNamespace, err)
	}
	if err := sa.CoreV1().Nodes().Delete(ctx, dep.env.Node, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}); !apierrors.IsForbidden(err) {
		t.Errorf("launcher deleting node %s (dry run): %v, want Forbidden", dep.env.Node, err)
	}
}

func (dep *deployment) dumpLogs(t *testing.T, ctx context.Context) {
	for _, args := range [][]string{
		{"get", "pods,events", "-n", dep.namespace, "-o", "wide"},
		{"logs", "-n", dep.namespace, "-l", "app.kubernetes.io/name=kubepool", "--tail=100", "--all-containers"},
	} {
		cmd := exec.CommandContext(ctx, dep.env.Kubectl, append([]string{"--kubeconfig", dep.env.Kubeconfig}, args...)...)
		out, _ := cmd.CombinedOutput()
		t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out)
	}
}

// kubectl runs the dev cluster's kubectl as the admin and returns its stdout.
func kubectl(t *testing.T, ctx context.Context, env *testenv.Env, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx, env.Kubectl, append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

func httpGet(t *testing.T, ctx context.Context, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %q, %v; want 200", url, resp.StatusCode, body, err)
	}
	return string(body)
}

// waitZNodeGone watches path (under the zuul's chroot) until it is deleted.
func waitZNodeGone(t *testing.T, ctx context.Context, z *zuul, path string) {
	t.Helper()
	for {
		exists, _, ch, err := z.Conn.ExistsW(z.Root + path)
		if err != nil {
			t.Fatalf("watching %s: %v", path, err)
		}
		if !exists {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("%s still exists: %v", path, ctx.Err())
		}
	}
}
