package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/test/projectapi"
)

// TestOpenShiftProjectRequest: where the cluster serves OpenShift's project
// API (here a test-only server behind the real kube-apiserver's
// aggregation layer), discovery finds it, and an openshift driver makes
// each node's namespace with a ProjectRequest (the launcher as the
// project's admin), finds its projects by label through the project API,
// and deletes them through it.
func TestOpenShiftProjectRequest(t *testing.T) {
	env := testenv.Cluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dyn, err := dynamic.NewForConfig(env.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := projectapi.Start(ctx, env.Client, dyn, env.NodeIP)
	if errors.Is(err, projectapi.ErrNoAggregation) {
		t.Skipf("%v: the dev cluster predates hack/devcluster's aggregation flags; restart it", err)
	}
	if err != nil {
		t.Fatalf("projectapi.Start = %v", err)
	}
	t.Cleanup(func() { srv.Stop(context.Background()) })

	d := newDriver(t, env)
	d.Projects = true
	// The aggregator answers for a new APIService only once it has found
	// its backend available: wait for that (bounded), then discovery must
	// say the project API is served.
	var served bool
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		served, err = d.ServesProjects(ctx)
		return err == nil && served, nil
	})
	if !served {
		t.Fatalf("ServesProjects = %v, %v (after waiting: %v); want true with the project API registered", served, err, ctx.Err())
	}
	ns := uniqueNS("e2e-proj")
	t.Cleanup(func() { _ = env.Client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	owner := kube.Owner{Provider: "e2e-proj", Pool: "main", NodeID: "0000000009", Label: "project", Launcher: "e2e"}
	conn, err := d.Create(ctx, kube.Resource{Kind: kube.KindNamespace, Owner: owner, Namespace: ns})
	if err != nil {
		t.Fatalf("Create(project %s) = %v", ns, err)
	}
	got, err := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("project %s has no namespace: %v", ns, err)
	}
	if got.Annotations[projectapi.RequesterAnnotation] == "" || got.Labels[kube.LabelNodeID] != owner.NodeID {
		t.Errorf("project namespace annotations %v labels %v; want a requester and kubepool's labels", got.Annotations, got.Labels)
	}
	if _, err := env.Client.RbacV1().RoleBindings(ns).Get(ctx, "admin", metav1.GetOptions{}); err != nil {
		t.Errorf("project %s: the requester's admin binding: %v", ns, err)
	}
	if !canI(t, tokenClient(t, conn), authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "pods"}) {
		t.Errorf("the project node's token may not create pods in %s", ns)
	}

	owned, err := d.List(ctx, "e2e-proj")
	if err != nil || len(owned) != 1 || owned[0].Namespace != ns || owned[0].NodeID != owner.NodeID {
		t.Fatalf("List through the project API = %+v, %v; want %s alone", owned, err, ns)
	}
	if err := d.Delete(ctx, ns, true); err != nil {
		t.Fatalf("Delete(project %s) = %v", ns, err)
	}
	if _, err := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("project %s after Delete: %v; want NotFound", ns, err)
	}
}
