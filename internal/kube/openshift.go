package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// ProjectGroupVersion is OpenShift's project API.
const ProjectGroupVersion = "project.openshift.io/v1"

var (
	projectRequestsResource = schema.GroupVersionResource{Group: "project.openshift.io", Version: "v1", Resource: "projectrequests"}
	projectsResource        = schema.GroupVersionResource{Group: "project.openshift.io", Version: "v1", Resource: "projects"}
)

// projectDiscovery caches whether the cluster serves OpenShift projects:
// API discovery is asked once per Driver, and again only after an error.
type projectDiscovery struct {
	mu     sync.Mutex
	known  bool
	served bool
}

// ServesProjects reports whether the cluster serves project.openshift.io/v1
// projectrequests (OpenShift does; plain Kubernetes does not), by API
// discovery, asked once and cached.
func (d *Driver) ServesProjects(ctx context.Context) (bool, error) {
	d.projects.mu.Lock()
	defer d.projects.mu.Unlock()
	if d.projects.known {
		return d.projects.served, nil
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	list, err := d.Client.Discovery().ServerResourcesForGroupVersion(ProjectGroupVersion)
	served := false
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return false, fmt.Errorf("discovering %s: %w", ProjectGroupVersion, err)
	default:
		served = slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool {
			return r.Name == projectRequestsResource.Resource && slices.Contains(r.Verbs, "create")
		})
	}
	d.projects.known, d.projects.served = true, served
	return served, nil
}

// ErrNoDynamicClient is returned when a project must be made and the
// Driver was built without a dynamic client (see NewDriver).
var ErrNoDynamicClient = errors.New("driver has no dynamic client for the project API")

// createProject asks for a project with a ProjectRequest, as a user
// without cluster rights does on OpenShift: the project's namespace is made
// with the requester (the launcher) as its admin. The project is then
// given labels, which mark it as kubepool's (OpenShift does not copy a
// request's labels to the project).
func (d *Driver) createProject(ctx context.Context, name string, labels map[string]string) error {
	if d.Dynamic == nil {
		return ErrNoDynamicClient
	}
	req := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion":  ProjectGroupVersion,
		"kind":        "ProjectRequest",
		"metadata":    map[string]any{"name": name},
		"displayName": name,
		"description": "a kubepool node",
	}}
	if _, err := d.Dynamic.Resource(projectRequestsResource).Create(ctx, req, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("requesting project %q: %w", name, err)
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	if err != nil {
		return fmt.Errorf("labelling project %q: %w", name, err)
	}
	if _, err := d.Dynamic.Resource(projectsResource).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("labelling project %q: %w", name, err)
	}
	return nil
}

// deleteProject deletes a project through the project API (a project's
// requester may delete it; it may not delete namespaces). A project that
// does not exist is not an error.
func (d *Driver) deleteProject(ctx context.Context, name string) error {
	if d.Dynamic == nil {
		return ErrNoDynamicClient
	}
	err := d.Dynamic.Resource(projectsResource).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting project %q: %w", name, err)
	}
	return nil
}

// listProjects lists the projects of provider by label: on OpenShift a
// project requester sees its own projects, not the cluster's namespaces.
func (d *Driver) listProjects(ctx context.Context, provider string) ([]Owned, error) {
	if d.Dynamic == nil {
		return nil, ErrNoDynamicClient
	}
	l, err := d.Dynamic.Resource(projectsResource).List(ctx, metav1.ListOptions{LabelSelector: ProviderSelector(provider).String()})
	if err != nil {
		return nil, fmt.Errorf("listing projects of provider %q: %w", provider, err)
	}
	out := make([]Owned, 0, len(l.Items))
	for _, p := range l.Items {
		out = append(out, Owned{
			Namespace: p.GetName(),
			NodeID:    p.GetLabels()[LabelNodeID],
			Launcher:  p.GetLabels()[LabelLauncher],
			Deleting:  p.GetDeletionTimestamp() != nil,
		})
	}
	return out, nil
}

// useProjects reports whether this Driver makes a node's namespace as an
// OpenShift project: it was asked to (Projects) and the cluster serves
// them. Where it does not, it makes plain namespaces, and says so once.
func (d *Driver) useProjects(ctx context.Context) (bool, error) {
	if !d.Projects {
		return false, nil
	}
	served, err := d.ServesProjects(ctx)
	if err != nil {
		return false, err
	}
	if !served {
		d.noProjectsOnce.Do(func() {
			if d.Log != nil {
				d.Log.Info("the cluster does not serve OpenShift projects; project nodes get namespaces", "api", ProjectGroupVersion, "host", d.Host)
			}
		})
	}
	return served, nil
}

// AccessError says which permissions the launcher lacks in a namespace.
type AccessError struct {
	Namespace string
	Missing   []string // e.g. "create pods/exec", "delete roles.rbac.authorization.k8s.io"
}

func (e *AccessError) Error() string {
	return fmt.Sprintf("the launcher lacks RBAC permission in namespace %q to %s", e.Namespace, strings.Join(e.Missing, ", "))
}

// access is one permission: a verb on a resource (with its API group and
// subresource).
type access struct {
	verb, group, resource, sub string
}

func (a access) String() string {
	r := a.resource
	if a.group != "" {
		r += "." + a.group
	}
	if a.sub != "" {
		r += "/" + a.sub
	}
	return a.verb + " " + r
}

// podNodeAccess is what the launcher needs in an existing namespace to make
// pod nodes there (openshiftpods): the pod, its own service account, a Role
// that grants the node's token its pod (RBAC lets only a holder of a
// permission grant it) and a token bound to the pod.
var podNodeAccess = []access{
	{"create", "", "pods", ""}, {"get", "", "pods", ""}, {"list", "", "pods", ""}, {"watch", "", "pods", ""}, {"delete", "", "pods", ""},
	{"create", "", "pods", "exec"}, {"get", "", "pods", "exec"},
	{"get", "", "pods", "log"}, {"list", "", "pods", "log"}, {"watch", "", "pods", "log"},
	{"create", "", "pods", "portforward"}, {"get", "", "pods", "portforward"},
	{"create", "", "serviceaccounts", ""}, {"list", "", "serviceaccounts", ""}, {"delete", "", "serviceaccounts", ""},
	{"create", "", "serviceaccounts", "token"},
	{"create", "rbac.authorization.k8s.io", "roles", ""}, {"delete", "rbac.authorization.k8s.io", "roles", ""},
	{"create", "rbac.authorization.k8s.io", "rolebindings", ""}, {"delete", "rbac.authorization.k8s.io", "rolebindings", ""},
}

// secretCopyAccess is what copying image pull secrets into a namespace
// needs there.
var secretCopyAccess = []access{
	{"create", "", "secrets", ""}, {"list", "", "secrets", ""}, {"delete", "", "secrets", ""},
}

// CheckPodNodeAccess asks the API server (SelfSubjectAccessReview) whether
// the launcher may make pod nodes in namespace, an existing namespace, and
// copy image pull secrets there when copySecrets; each of from (namespace
// to secret names) must be readable. Missing permissions are an
// *AccessError naming each.
func (d *Driver) CheckPodNodeAccess(ctx context.Context, namespace string, copySecrets bool, from map[string][]string) error {
	type check struct {
		ns string
		a  access
		// name narrows the check to one object (a secret to copy).
		name string
	}
	var checks []check
	for _, a := range podNodeAccess {
		checks = append(checks, check{ns: namespace, a: a})
	}
	if copySecrets {
		for _, a := range secretCopyAccess {
			checks = append(checks, check{ns: namespace, a: a})
		}
	}
	for ns, names := range from {
		for _, n := range names {
			checks = append(checks, check{ns: ns, a: access{"get", "", "secrets", ""}, name: n})
		}
	}
	missing := map[string][]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for _, c := range checks {
		wg.Go(func() {
			allowed, err := d.allowed(ctx, c.ns, c.a, c.name)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case !allowed:
				what := c.a.String()
				if c.name != "" {
					what += " " + c.name
				}
				missing[c.ns] = append(missing[c.ns], what)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, ns := range slices.Sorted(maps.Keys(missing)) {
		m := missing[ns]
		slices.Sort(m)
		errs = append(errs, &AccessError{Namespace: ns, Missing: m})
	}
	return errors.Join(errs...)
}

// allowed asks whether the launcher may do a in namespace (to the object
// name, if given).
func (d *Driver) allowed(ctx context.Context, namespace string, a access, name string) (bool, error) {
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: namespace, Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.sub, Name: name,
		},
	}}
	got, err := d.Client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("asking whether the launcher may %s in namespace %q: %w", a, namespace, err)
	}
	return got.Status.Allowed, nil
}
