package e2e

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/testenv"
)

// tokenClient is a client that authenticates with conn's token only.
func tokenClient(t *testing.T, conn *kube.Connection) kubernetes.Interface {
	t.Helper()
	cfg := &rest.Config{Host: conn.Host, BearerToken: conn.Token, TLSClientConfig: rest.TLSClientConfig{CAData: conn.CAData, Insecure: conn.SkipTLS}}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func canI(t *testing.T, c kubernetes.Interface, ra authorizationv1.ResourceAttributes) bool {
	t.Helper()
	r, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(t.Context(), &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &ra},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("can-i %+v: %v", ra, err)
	}
	return r.Status.Allowed
}

func newDriver(t *testing.T, env *testenv.Env) *kube.Driver {
	t.Helper()
	d, err := kube.NewDriver(env.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	d.TokenExpiration = time.Hour
	return d
}

func uniqueNS(prefix string) string {
	return kube.DNSLabel(fmt.Sprintf("%s-%s", prefix, randHex(4)))
}

// newNamespaceNode creates a namespace node in a namespace named after
// prefix, deleted when the test ends, and returns the namespace and the
// node's connection.
func newNamespaceNode(t *testing.T, d *kube.Driver, prefix, nodeID string) (string, *kube.Connection) {
	t.Helper()
	ns := uniqueNS(prefix)
	owner := kube.Owner{Provider: "e2e", Pool: "main", NodeID: nodeID, Label: "namespace", Launcher: "e2e"}
	t.Cleanup(func() { _ = d.Delete(context.Background(), ns, false) })
	conn, err := d.Create(t.Context(), kube.Resource{Kind: kube.KindNamespace, Owner: owner, Namespace: ns})
	if err != nil {
		t.Fatalf("Create(namespace %s) = %v", ns, err)
	}
	return ns, conn
}

// TestKubeNamespaceScoping proves that a namespace node's token can manage
// workloads in its own namespace and nothing anywhere else.
func TestKubeNamespaceScoping(t *testing.T) {
	env := testenv.Cluster(t)
	d := newDriver(t, env)
	ctx := t.Context()
	ns, conn := newNamespaceNode(t, d, "e2e-ns", "0000000001")
	if conn.Token == "" || time.Until(conn.TokenExpiry) > time.Hour+time.Minute {
		t.Fatalf("token expiry %v, want a token bounded to about an hour", conn.TokenExpiry)
	}
	c := tokenClient(t, conn)

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "job-pod"},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "c", Image: env.MachineImage, Command: []string{"sleep", "3600"}}},
			AutomountServiceAccountToken:  ptr(false),
			TerminationGracePeriodSeconds: ptr(int64(1)),
		},
	}
	if _, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating a pod in its own namespace with the node token: %v", err)
	}

	allowed := []authorizationv1.ResourceAttributes{
		{Namespace: ns, Verb: "create", Resource: "pods"},
		{Namespace: ns, Verb: "create", Resource: "pods", Subresource: "exec"},
		{Namespace: ns, Verb: "create", Group: "apps", Resource: "deployments"},
		{Namespace: ns, Verb: "delete", Group: "batch", Resource: "jobs"},
		{Namespace: ns, Verb: "get", Resource: "secrets"},
	}
	for _, ra := range allowed {
		if !canI(t, c, ra) {
			t.Errorf("can-i %s %s/%s in %s = no, want yes", ra.Verb, ra.Resource, ra.Subresource, ns)
		}
	}
	denied := []authorizationv1.ResourceAttributes{
		{Namespace: "default", Verb: "create", Resource: "pods"},
		{Namespace: "kube-system", Verb: "get", Resource: "secrets"},
		{Namespace: "default", Verb: "list", Resource: "pods"},
		{Verb: "list", Resource: "namespaces"},
		{Verb: "create", Resource: "namespaces"},
		{Verb: "list", Resource: "nodes"},
		{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"},
		{Namespace: ns, Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "rolebindings"},
		{Namespace: ns, Verb: "update", Resource: "namespaces", Name: ns},
	}
	for _, ra := range denied {
		if canI(t, c, ra) {
			t.Errorf("can-i %s %s (namespace %q) = yes, want no", ra.Verb, ra.Resource, ra.Namespace)
		}
	}
	if err := d.Delete(ctx, ns, true); err != nil {
		t.Fatalf("Delete(%s, wait) = %v", ns, err)
	}
	if _, err := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
		t.Fatalf("namespace %s still exists after Delete with wait", ns)
	}
}

// TestKubeDeleteStopsPods: deleting a node stops its pods with a short
// grace period, not the one their spec asks for (a job's pod that ignores
// SIGTERM and asks for 30 s would otherwise hold the namespace, and the
// node's quota, that long), and still waits until the namespace is gone.
func TestKubeDeleteStopsPods(t *testing.T) {
	env := testenv.Cluster(t)
	d := newDriver(t, env)
	ctx := t.Context()
	ns, _ := newNamespaceNode(t, d, "e2e-del", "0000000002")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "stubborn"},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "c", Image: env.MachineImage, Command: []string{"/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"}}},
			AutomountServiceAccountToken:  ptr(false),
			TerminationGracePeriodSeconds: ptr(int64(30)),
		},
	}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.WaitForPod(ctx, env.Client, ns, pod.Name); err != nil {
		t.Fatal(err)
	}
	// A watch is in place once it has sent the pod's initial ADDED event;
	// until the API server's watch cache has caught up it may instead end
	// with an error ("Too large resource version"): then watch again.
	var w watch.Interface
	for w == nil {
		cand, err := env.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + pod.Name})
		if err != nil {
			t.Fatal(err)
		}
		if ev, ok := <-cand.ResultChan(); ok && ev.Type == watch.Added {
			w = cand
			break
		}
		cand.Stop()
		if err := ctx.Err(); err != nil {
			t.Fatal(err)
		}
	}
	defer w.Stop()
	// The deletion grace periods the pod was given, in order, read while
	// Delete runs.
	gracesCh := make(chan []int64, 1)
	go func() {
		var graces []int64
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok && p.DeletionGracePeriodSeconds != nil {
				if n := len(graces); n == 0 || graces[n-1] != *p.DeletionGracePeriodSeconds {
					graces = append(graces, *p.DeletionGracePeriodSeconds)
				}
			}
			if ev.Type == watch.Deleted || ev.Type == watch.Error {
				break
			}
		}
		gracesCh <- graces
	}()
	if err := d.Delete(ctx, ns, true); err != nil {
		t.Fatalf("Delete(%s, wait) = %v", ns, err)
	}
	if _, err := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
		t.Fatalf("namespace %s still exists after Delete with wait", ns)
	}
	var graces []int64
	select {
	case graces = <-gracesCh:
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	want := int64(kube.PodStopGrace / time.Second)
	if len(graces) == 0 || graces[0] != want {
		t.Errorf("the pod's deletion grace periods, in order = %v; want %d first", graces, want)
	}
}

// TestKubePodNode creates a pod node and checks its token can exec in the pod
// and nothing more, and that a missing image fails within the wait, naming
// the reason.
func TestKubePodNode(t *testing.T) {
	env := testenv.Cluster(t)
	d := newDriver(t, env)
	ctx := t.Context()
	ns := uniqueNS("e2e-pod")
	t.Cleanup(func() { _ = d.Delete(context.Background(), ns, false) })
	owner := kube.Owner{Provider: "e2e", Pool: "main", NodeID: "0000000002", Label: "pod", Launcher: "e2e"}
	conn, err := d.Create(ctx, kube.Resource{
		Kind: kube.KindPod, Owner: owner, Namespace: ns, PodName: "pod",
		Pod: corev1.PodSpec{Containers: []corev1.Container{{Name: "pod", Image: env.MachineImage, Command: kube.MachineCommand}}},
	})
	if err != nil {
		t.Fatalf("Create(pod) = %v", err)
	}
	if conn.Pod != "pod" || conn.Node == "" {
		t.Fatalf("Create(pod) = pod %q on node %q, want pod %q on some node", conn.Pod, conn.Node, "pod")
	}
	if _, err := base64.StdEncoding.DecodeString(base64.StdEncoding.EncodeToString(conn.CAData)); err != nil || len(conn.CAData) == 0 {
		t.Fatalf("connection has no CA")
	}
	c := tokenClient(t, conn)
	for _, ra := range []authorizationv1.ResourceAttributes{
		{Namespace: ns, Verb: "create", Resource: "pods", Subresource: "exec", Name: "pod"},
		{Namespace: ns, Verb: "get", Resource: "pods", Subresource: "log", Name: "pod"},
		{Namespace: ns, Verb: "create", Resource: "pods", Subresource: "portforward", Name: "pod"},
	} {
		if !canI(t, c, ra) {
			t.Errorf("can-i %s pods/%s = no, want yes", ra.Verb, ra.Subresource)
		}
	}
	for _, ra := range []authorizationv1.ResourceAttributes{
		{Namespace: ns, Verb: "create", Resource: "pods"},
		{Namespace: ns, Verb: "delete", Resource: "pods", Name: "pod"},
		{Namespace: ns, Verb: "get", Resource: "secrets"},
		{Namespace: "default", Verb: "create", Resource: "pods", Subresource: "exec"},
	} {
		if canI(t, c, ra) {
			t.Errorf("can-i %s %s/%s in %q = yes, want no", ra.Verb, ra.Resource, ra.Subresource, ra.Namespace)
		}
	}

	t.Run("missing image fails fast", func(t *testing.T) {
		ns := uniqueNS("e2e-noimage")
		t.Cleanup(func() { _ = d.Delete(context.Background(), ns, false) })
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		_, err := d.Create(ctx, kube.Resource{
			Kind: kube.KindPod, Owner: owner, Namespace: ns, PodName: "pod",
			Pod: corev1.PodSpec{Containers: []corev1.Container{{Name: "pod", Image: env.Registry + "/kubepool/does-not-exist:latest", Command: kube.MachineCommand}}},
		})
		var perr *kube.PodError
		if !errors.As(err, &perr) {
			t.Fatalf("Create(missing image) = %v, want a *kube.PodError", err)
		}
		if perr.Reason != "ErrImagePull" && perr.Reason != "ImagePullBackOff" {
			t.Fatalf("Create(missing image) reason = %q, want ErrImagePull or ImagePullBackOff", perr.Reason)
		}
	})
}

func ptr[T any](v T) *T { return &v }
