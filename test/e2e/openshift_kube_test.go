package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/podexec"
	"github.com/kubepool/kubepool/internal/testenv"
)

// openshiftPodsLauncherRules are what an operator grants the launcher of an
// openshiftpods provider in its project, and nothing more.
var openshiftPodsLauncherRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create", "get", "list", "watch", "delete"}},
	{APIGroups: []string{""}, Resources: []string{"pods/exec", "pods/portforward"}, Verbs: []string{"create", "get"}},
	{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"create", "list", "delete"}},
	{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}},
	{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create", "list", "delete"}},
	{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles", "rolebindings"}, Verbs: []string{"create", "delete"}},
}

// projectWithLauncher creates a namespace (the "project") and a launcher
// service account with rules there only, and returns the namespace and a
// REST config that authenticates as that service account.
func projectWithLauncher(t *testing.T, env *testenv.Env, prefix string, rules []rbacv1.PolicyRule) (string, *rest.Config) {
	t.Helper()
	ctx := t.Context()
	ns := uniqueNS(prefix)
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	return ns, launcherIn(t, env, ns, "launcher", rules)
}

// launcherIn makes a service account in ns with rules in ns and returns a
// REST config with its token.
func launcherIn(t *testing.T, env *testenv.Env, ns, name string, rules []rbacv1.PolicyRule) *rest.Config {
	t.Helper()
	ctx := t.Context()
	c := env.Client
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
	}
	if _, err := c.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := c.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &rest.Config{Host: env.RESTConfig.Host, BearerToken: tr.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: env.RESTConfig.CAData, CAFile: env.RESTConfig.CAFile}}
}

// TestOpenShiftPodsKube: pod nodes in a project the launcher may only use
// (openshiftpods). The launcher's rights are checked at start-up, each node
// gets its own service account, a Role naming only its pod and a token
// bound to it: node A's token execs into A's pod and is refused B's; an
// image pull secret is copied in from another namespace; deleting a node
// deletes its pod, service account, Role and copied secret, and nothing of
// the other node's.
func TestOpenShiftPodsKube(t *testing.T) {
	env := testenv.Cluster(t)
	ctx := t.Context()
	ns, cfg := projectWithLauncher(t, env, "e2e-osp", openshiftPodsLauncherRules)

	// The pull secret to copy lives in another namespace, where the
	// launcher may read that secret alone.
	src := uniqueNS("e2e-osp-src")
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: src}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.CoreV1().Namespaces().Delete(context.Background(), src, metav1.DeleteOptions{}) })
	pull := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "pull"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"` + env.Registry + `":{"auth":"dTpw"}}}`)},
	}
	if _, err := env.Client.CoreV1().Secrets(src).Create(ctx, pull, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	readPull := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"pull"}, Verbs: []string{"get"}}}
	if _, err := env.Client.RbacV1().Roles(src).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "read-pull"}, Rules: readPull}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.RbacV1().RoleBindings(src).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "read-pull"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "launcher", Namespace: ns}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "read-pull"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	d, err := kube.NewDriver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.TokenExpiration = time.Hour
	from := map[string][]string{src: {"pull"}}
	if err := d.CheckPodNodeAccess(ctx, ns, true, from); err != nil {
		t.Fatalf("CheckPodNodeAccess(%s) = %v, want nil", ns, err)
	}
	// Elsewhere it has no rights, and the error says which.
	var aerr *kube.AccessError
	err = d.CheckPodNodeAccess(ctx, "default", false, nil)
	if !errors.As(err, &aerr) || aerr.Namespace != "default" || !strings.Contains(err.Error(), "create pods/exec") {
		t.Fatalf("CheckPodNodeAccess(default) = %v; want an *AccessError naming create pods/exec in default", err)
	}

	create := func(id, name string) *kube.Connection {
		t.Helper()
		conn, err := d.Create(ctx, kube.Resource{
			Kind:        kube.KindPod,
			Owner:       kube.Owner{Provider: "e2e-osp", Pool: ns, NodeID: id, Label: "pod", Launcher: "e2e"},
			Namespace:   ns,
			InNamespace: true,
			PodName:     name,
			Pod:         corev1.PodSpec{Containers: []corev1.Container{{Name: "pod", Image: env.MachineImage, Command: kube.MachineCommand}}},
			CopySecrets: []kube.SecretRef{{Namespace: src, Name: "pull"}},
		})
		if err != nil {
			t.Fatalf("Create(%s) = %v", name, err)
		}
		return conn
	}
	a := create("0000000001", "pod-0000000001")
	b := create("0000000002", "pod-0000000002")
	if a.User != "pod-0000000001" || a.Namespace != ns || a.Pod != "pod-0000000001" {
		t.Errorf("node A connection = user %q namespace %q pod %q; want its own service account in %s", a.User, a.Namespace, a.Pod, ns)
	}
	pod, err := env.Client.CoreV1().Pods(ns).Get(ctx, a.Pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := pod.Spec.ImagePullSecrets; len(got) != 1 || got[0].Name != "pod-0000000001-pull" {
		t.Errorf("pod A imagePullSecrets = %v; want the copied pod-0000000001-pull", got)
	}
	copied, err := env.Client.CoreV1().Secrets(ns).Get(ctx, "pod-0000000001-pull", metav1.GetOptions{})
	if err != nil || string(copied.Data[corev1.DockerConfigJsonKey]) != string(pull.Data[corev1.DockerConfigJsonKey]) {
		t.Errorf("copied secret = %v, %v; want the source's data", copied, err)
	}

	tokA := &rest.Config{Host: a.Host, BearerToken: a.Token, TLSClientConfig: rest.TLSClientConfig{CAData: a.CAData, Insecure: a.SkipTLS}}
	ex, err := podexec.New(tokA)
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Run(ctx, podexec.Target{Namespace: ns, Pod: a.Pod}, []string{"true"}, podexec.Options{}); err != nil {
		t.Errorf("exec into A with A's token = %v, want nil", err)
	}
	err = ex.Run(ctx, podexec.Target{Namespace: ns, Pod: b.Pod}, []string{"true"}, podexec.Options{})
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "forbidden") && !strings.Contains(err.Error(), "403") {
		t.Errorf("exec into B with A's token = %v, want 403 Forbidden", err)
	}
	clientA := tokenClient(t, a)
	for _, ra := range []authorizationv1.ResourceAttributes{
		{Namespace: ns, Verb: "create", Resource: "pods", Subresource: "exec", Name: b.Pod},
		{Namespace: ns, Verb: "get", Resource: "pods", Name: b.Pod},
		{Namespace: ns, Verb: "list", Resource: "pods"},
		{Namespace: ns, Verb: "delete", Resource: "pods", Name: b.Pod},
		{Namespace: ns, Verb: "get", Resource: "secrets", Name: "pod-0000000001-pull"},
	} {
		if canI(t, clientA, ra) {
			t.Errorf("node A's token may %s %s/%s %s; want not", ra.Verb, ra.Resource, ra.Subresource, ra.Name)
		}
	}
	if !canI(t, clientA, authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "pods", Subresource: "exec", Name: a.Pod}) {
		t.Errorf("node A's token may not exec into its own pod")
	}

	if err := d.DeleteInNamespace(ctx, ns, a.Pod, true); err != nil {
		t.Fatalf("DeleteInNamespace(A) = %v", err)
	}
	gone := map[string]error{}
	_, gone["pod"] = env.Client.CoreV1().Pods(ns).Get(ctx, a.Pod, metav1.GetOptions{})
	_, gone["service account"] = env.Client.CoreV1().ServiceAccounts(ns).Get(ctx, a.User, metav1.GetOptions{})
	_, gone["role"] = env.Client.RbacV1().Roles(ns).Get(ctx, a.User, metav1.GetOptions{})
	_, gone["role binding"] = env.Client.RbacV1().RoleBindings(ns).Get(ctx, a.User, metav1.GetOptions{})
	_, gone["copied secret"] = env.Client.CoreV1().Secrets(ns).Get(ctx, "pod-0000000001-pull", metav1.GetOptions{})
	for what, err := range gone {
		if !apierrors.IsNotFound(err) {
			t.Errorf("after DeleteInNamespace, node A's %s: %v; want NotFound", what, err)
		}
	}
	if _, err := env.Client.CoreV1().Pods(ns).Get(ctx, b.Pod, metav1.GetOptions{}); err != nil {
		t.Errorf("node B's pod after deleting A: %v; want it kept", err)
	}

	// The sweep finds B by label, inside the project only.
	owned, err := d.ListInNamespace(ctx, "e2e-osp", ns)
	if err != nil || len(owned) != 1 || owned[0].NodeID != "0000000002" || owned[0].Name != b.Pod {
		t.Fatalf("ListInNamespace = %+v, %v; want node B alone", owned, err)
	}
	deleted, err := d.SweepInNamespace(ctx, "e2e-osp", ns, func(kube.Owned) bool { return false })
	if err != nil || len(deleted) != 1 {
		t.Fatalf("SweepInNamespace = %v, %v; want B deleted", deleted, err)
	}
	if _, err := env.Client.CoreV1().ServiceAccounts(ns).Get(ctx, b.User, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("node B's service account after the sweep: %v; want NotFound", err)
	}
}

// TestOpenShiftPodsAccessNamesMissing: a launcher that lacks one right in
// its project is told which.
func TestOpenShiftPodsAccessNamesMissing(t *testing.T) {
	env := testenv.Cluster(t)
	var rules []rbacv1.PolicyRule
	for _, r := range openshiftPodsLauncherRules {
		if r.Resources[0] == "serviceaccounts/token" {
			continue
		}
		rules = append(rules, r)
	}
	ns, cfg := projectWithLauncher(t, env, "e2e-osp-rbac", rules)
	d, err := kube.NewDriver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = d.CheckPodNodeAccess(t.Context(), ns, false, nil)
	var aerr *kube.AccessError
	if !errors.As(err, &aerr) || len(aerr.Missing) != 1 || aerr.Missing[0] != "create serviceaccounts/token" {
		t.Fatalf("CheckPodNodeAccess = %v; want an *AccessError naming only create serviceaccounts/token", err)
	}
}

// TestOpenShiftProjectsFallback: a driver asked for projects on a cluster
// that does not serve them makes namespaces, found by discovery.
func TestOpenShiftProjectsFallback(t *testing.T) {
	env := testenv.Cluster(t)
	d := newDriver(t, env)
	d.Projects = true
	served, err := d.ServesProjects(t.Context())
	if err != nil || served {
		t.Fatalf("ServesProjects = %v, %v; want false on plain Kubernetes", served, err)
	}
	ns, conn := newNamespaceNode(t, d, "e2e-osproj", "0000000003")
	if _, err := env.Client.CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{}); err != nil || conn.Namespace != ns {
		t.Fatalf("namespace %s: %v; want it made in place of a project", ns, err)
	}
	owned, err := d.List(t.Context(), "e2e")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, o := range owned {
		found = found || o.Namespace == ns
	}
	if !found {
		t.Errorf("List(e2e) = %+v; want %s in it", owned, ns)
	}
	if err := d.Delete(t.Context(), ns, true); err != nil {
		t.Fatalf("Delete(%s) = %v", ns, err)
	}
}
