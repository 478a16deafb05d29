package kube

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Kind is what a node is made of.
type Kind string

const (
	// KindPod is a namespace holding one pod that behaves like a machine.
	KindPod Kind = "pod"
	// KindNamespace is a namespace for container-native jobs.
	KindNamespace Kind = "namespace"
)

// ServiceAccountName is the service account whose token a node's user gets.
const ServiceAccountName = "zuul-worker"

// DefaultTokenExpiration bounds the lifetime of handed-out tokens when the
// configuration does not.
const DefaultTokenExpiration = 8 * time.Hour

// Driver creates and deletes node resources in one cluster.
type Driver struct {
	Client kubernetes.Interface
	// Host, CAData and SkipTLS are what node users are told to connect to.
	Host    string
	CAData  []byte
	SkipTLS bool
	// TokenExpiration is the lifetime requested for node tokens.
	TokenExpiration time.Duration

	// Dynamic reaches APIs client-go has no types for (OpenShift's
	// projects). NewDriver sets it.
	Dynamic dynamic.Interface
	// Projects makes each new node namespace an OpenShift project (a
	// ProjectRequest) where the cluster serves them (the openshift driver);
	// elsewhere a namespace is made, as without it.
	Projects bool
	// Log, if set, is told what the driver decides once per Driver (no
	// projects served). Library code logs nothing else.
	Log *slog.Logger

	projects       projectDiscovery
	noProjectsOnce sync.Once

	// WithoutPolicy leaves out what a node's namespace enforces (Pod
	// Security labels, quota, limits, network policy): only for measuring
	// what they cost. Never set it for nodes that run untrusted jobs.
	WithoutPolicy bool

	facts clusterFacts
}

// NewDriver returns a Driver for the cluster cfg points at.
func NewDriver(cfg *rest.Config) (*Driver, error) {
	if cfg.QPS == 0 && cfg.RateLimiter == nil {
		// No client-side rate limit: client-go's default (5/s, bursts of
		// 10), or any fixed one, would make the launcher, not the API
		// server, the limit on a burst (a node is five to eight calls).
		// The API server protects itself with Priority and Fairness, which
		// queues the launcher's calls in its own flow and answers 429 with
		// Retry-After when it must (client-go waits and retries those), and
		// the launcher bounds how many requests it works on at once.
		cfg = rest.CopyConfig(cfg)
		cfg.QPS = -1
	}
	if cfg.ContentType == "" {
		// Protocol buffers, as Kubernetes' own controllers speak: cheaper
		// than JSON to encode and decode on both ends.
		cfg = rest.CopyConfig(cfg)
		cfg.ContentType = runtime.ContentTypeProtobuf
		cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating Kubernetes client for %s: %w", cfg.Host, err)
	}
	ca := cfg.CAData
	if len(ca) == 0 && cfg.CAFile != "" {
		if ca, err = os.ReadFile(cfg.CAFile); err != nil {
			return nil, fmt.Errorf("reading cluster CA: %w", err)
		}
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating dynamic Kubernetes client for %s: %w", cfg.Host, err)
	}
	return &Driver{Client: client, Dynamic: dyn, Host: cfg.Host, CAData: ca, SkipTLS: cfg.Insecure, TokenExpiration: DefaultTokenExpiration}, nil
}

// Resource describes one node to create.
type Resource struct {
	Kind      Kind
	Owner     Owner
	Namespace string // the namespace to create; see DNSLabel
	// PodName and Pod are used for KindPod. Pod.RestartPolicy and the
	// service-account settings are set by Create.
	PodName     string
	Pod         corev1.PodSpec
	PodLabels   map[string]string // extra labels for the pod (the label's "labels")
	Annotations map[string]string
	// Policy is what the namespace enforces.
	Policy Policy
	// Observe, if set, is told when the pod reaches each Milestone.
	Observe func(Milestone)
	// Waiting, if set, is told when the pod starts waiting for something
	// that may pass (see WaitForPodReporting), and nil when it stops.
	Waiting func(*PodError)

	// InNamespace says Namespace exists already and is not the node's
	// (openshiftpods): only the node's own objects are made in it, all
	// named PodName, and its Role grants the node's token its pod alone.
	InNamespace bool
	// CopySecrets are image pull secrets copied into Namespace for the
	// pod (named as they are, or PodName-<name> InNamespace).
	CopySecrets []SecretRef
	// AdminRole binds the node's service account to the cluster's admin
	// ClusterRole, as Nodepool's openshift driver does, instead of
	// kubepool's Role (namespace and project nodes only).
	AdminRole bool
	// Buildset, if set, is the buildset of the node's request: its
	// namespace is labelled with it and admits traffic from the buildset's
	// other namespaces, and it gets the buildset's registry credentials
	// (buildset.go).
	Buildset *BuildsetAccess
}

// SecretRef names a secret in a namespace.
type SecretRef struct {
	Namespace, Name string
}

// ServiceAccount returns the name of the service account, Role and
// RoleBinding of the node r describes.
func (r *Resource) ServiceAccount() string {
	if r.InNamespace {
		return r.PodName
	}
	return ServiceAccountName
}

// copiedName is the name a copied secret gets in the node's namespace.
func (r *Resource) copiedName(s SecretRef) string {
	if r.InNamespace {
		return r.PodName + "-" + s.Name
	}
	return s.Name
}

// Connection is what a node's user needs to reach it.
type Connection struct {
	Host        string
	CAData      []byte
	SkipTLS     bool
	Namespace   string
	User        string // the service account's name
	Token       string
	TokenExpiry time.Time
	Pod         string // empty for namespaces
	Node        string // the Kubernetes node the pod runs on
}

// Create makes r and waits until it is usable: for pods, until the pod is
// Ready (see WaitForPod). The namespace carries r.Policy's Pod Security
// labels from its creation. Independent steps run side by side: the
// service account, role, role binding, LimitRange and NetworkPolicy once
// the namespace exists, with, for namespace nodes, the ResourceQuota (until
// the quota controller has counted it: before that, the API server refuses
// every pod); for pods, the token (bound to the pod's UID from its
// creation) and the ResourceQuota while the pod starts. On error, what was
// created is left for the caller to Delete (it carries r.Owner's labels, so
// the leak sweep finds it too).
func (d *Driver) Create(ctx context.Context, r Resource) (*Connection, error) {
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: r.Namespace, Labels: r.Owner.Labels()}
	}
	sa := r.ServiceAccount()
	spec := r.Pod
	// In a namespace that is not the node's (openshiftpods), what the
	// namespace enforces is its owner's to set, not kubepool's.
	withPolicy := !d.WithoutPolicy && !r.InNamespace
	policy := r.Policy
	if !withPolicy {
		policy = Policy{}
	}
	if !r.InNamespace {
		nsLabels := r.Owner.Labels()
		if r.Buildset != nil {
			nsLabels[LabelBuildset] = LabelValue(r.Buildset.ID)
		}
		if withPolicy {
			version, err := d.PodSecurityVersion(ctx)
			if err != nil {
				return nil, err
			}
			level := r.Policy.PodSecurity
			if r.Kind == KindPod {
				if level == "" {
					if level, err = PodSecurityFor(&spec, version); err != nil {
						return nil, err
					}
				}
			} else if level == "" {
				level = PodSecurityBaseline
			}
			for k, v := range podSecurityLabels(level, version) {
				nsLabels[k] = v
			}
		}
		if err := d.createNamespace(ctx, r.Namespace, nsLabels); err != nil {
			return nil, err
		}
	}
	createQuota := func(ctx context.Context) error {
		if len(policy.Quota) == 0 {
			return nil
		}
		if _, err := d.Client.CoreV1().ResourceQuotas(r.Namespace).Create(ctx, quota(meta(PolicyName), policy.Quota), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating resource quota %s/%s: %w", r.Namespace, PolicyName, err)
		}
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	if withPolicy {
		g.Go(func() error {
			np := d.networkPolicy(gctx, meta(PolicyName), policy.IsolateEgress)
			if r.Buildset != nil {
				np.Spec.Ingress[0].From = append(np.Spec.Ingress[0].From, BuildsetPeer(r.Buildset.ID))
			}
			if _, err := d.Client.NetworkingV1().NetworkPolicies(r.Namespace).Create(gctx, np, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("creating network policy %s/%s: %w", r.Namespace, PolicyName, err)
			}
			return nil
		})
	}
	if len(policy.DefaultRequests)+len(policy.DefaultLimits) > 0 {
		g.Go(func() error {
			lr := limitRange(meta(PolicyName), policy.DefaultRequests, policy.DefaultLimits)
			if _, err := d.Client.CoreV1().LimitRanges(r.Namespace).Create(gctx, lr, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("creating limit range %s/%s: %w", r.Namespace, PolicyName, err)
			}
			return nil
		})
	}
	if r.Kind != KindPod && len(policy.Quota) > 0 {
		g.Go(func() error {
			if err := createQuota(gctx); err != nil {
				return err
			}
			return d.waitQuotaReady(gctx, r.Namespace)
		})
	}
	g.Go(func() error {
		obj := &corev1.ServiceAccount{ObjectMeta: meta(sa), AutomountServiceAccountToken: ptr(false)}
		if r.Buildset != nil && len(r.Buildset.DockerConfig) > 0 && !r.InNamespace && r.Kind != KindPod {
			obj.ImagePullSecrets = []corev1.LocalObjectReference{{Name: RegistrySecretName}}
		}
		if _, err := d.Client.CoreV1().ServiceAccounts(r.Namespace).Create(gctx, obj, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating service account %s/%s: %w", r.Namespace, sa, err)
		}
		return nil
	})
	roleRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: sa}
	makeRole := func(ctx context.Context) error { return nil }
	if r.AdminRole && !r.InNamespace && r.Kind != KindPod {
		roleRef = rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "admin"}
	} else {
		makeRole = func(ctx context.Context) error {
			role := &rbacv1.Role{ObjectMeta: meta(sa), Rules: RoleRules(r.Kind, r.PodName)}
			if _, err := d.Client.RbacV1().Roles(r.Namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("creating role %s/%s: %w", r.Namespace, role.Name, err)
			}
			return nil
		}
	}
	makeBinding := func(ctx context.Context) error {
		rb := &rbacv1.RoleBinding{
			ObjectMeta: meta(sa),
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: r.Namespace}},
			RoleRef:    roleRef,
		}
		if _, err := d.Client.RbacV1().RoleBindings(r.Namespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating role binding %s/%s: %w", r.Namespace, rb.Name, err)
		}
		return nil
	}
	if r.InNamespace || d.Projects {
		// A launcher without the right to bind any role (openshiftpods, a
		// project's requester) may bind only a Role that exists and whose
		// permissions it holds: the Role first.
		g.Go(func() error {
			if err := makeRole(gctx); err != nil {
				return err
			}
			return makeBinding(gctx)
		})
	} else {
		// A binding may name a role that does not exist yet.
		g.Go(func() error { return makeRole(gctx) })
		g.Go(func() error { return makeBinding(gctx) })
	}
	for _, s := range r.CopySecrets {
		g.Go(func() error { return d.copySecret(gctx, s, meta(r.copiedName(s))) })
	}
	g.Go(func() error { return d.addBuildset(gctx, &r, meta(r.RegistrySecret())) })
	if err := g.Wait(); err != nil {
		return nil, err
	}
	conn := &Connection{Host: d.Host, CAData: d.CAData, SkipTLS: d.SkipTLS, Namespace: r.Namespace, User: sa}
	if r.Kind != KindPod {
		if err := d.RefreshToken(ctx, conn); err != nil {
			return nil, err
		}
		return conn, nil
	}
	pm := meta(r.PodName)
	for k, v := range r.PodLabels {
		if _, ours := pm.Labels[k]; !ours {
			pm.Labels[k] = v
		}
	}
	pm.Annotations = r.Annotations
	spec.RestartPolicy = corev1.RestartPolicyNever
	// The pod runs as the node's service account, so that the node's token
	// can be bound to the pod (deleting the pod revokes it), but does not
	// mount a token itself (unless its spec asks): the token is for the
	// job.
	spec.ServiceAccountName = sa
	if spec.AutomountServiceAccountToken == nil {
		spec.AutomountServiceAccountToken = ptr(false)
	}
	for _, s := range r.CopySecrets {
		spec.ImagePullSecrets = append(spec.ImagePullSecrets, corev1.LocalObjectReference{Name: r.copiedName(s)})
	}
	created, err := d.Client.CoreV1().Pods(r.Namespace).Create(ctx, &corev1.Pod{ObjectMeta: pm, Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating pod %s/%s: %w", r.Namespace, r.PodName, err)
	}
	conn.Pod = created.Name
	g, gctx = errgroup.WithContext(ctx)
	g.Go(func() error { return d.requestToken(gctx, conn, created.UID) })
	// After the pod: the quota counts it, and need not be counted before
	// the pod may be created.
	g.Go(func() error { return createQuota(gctx) })
	g.Go(func() error {
		p, err := WaitForPodReporting(gctx, d.Client, r.Namespace, r.PodName, r.Observe, r.Waiting)
		if err != nil {
			return err
		}
		conn.Node = p.Spec.NodeName
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return conn, nil
}

// RefreshToken replaces conn's token with a fresh one from the TokenRequest
// API, valid for d.TokenExpiration. Pod nodes' tokens are bound to the pod:
// deleting the pod revokes them.
func (d *Driver) RefreshToken(ctx context.Context, conn *Connection) error {
	var uid types.UID
	if conn.Pod != "" {
		p, err := d.Client.CoreV1().Pods(conn.Namespace).Get(ctx, conn.Pod, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("getting pod %s/%s to bind its token: %w", conn.Namespace, conn.Pod, err)
		}
		uid = p.UID
	}
	return d.requestToken(ctx, conn, uid)
}

// requestToken sets conn's token from the TokenRequest API, bound to the pod
// conn.Pod with the given UID when there is one.
func (d *Driver) requestToken(ctx context.Context, conn *Connection, podUID types.UID) error {
	exp := d.TokenExpiration
	if exp <= 0 {
		exp = DefaultTokenExpiration
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(exp / time.Second))}}
	if conn.Pod != "" {
		tr.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: conn.Pod, UID: podUID}
	}
	got, err := d.Client.CoreV1().ServiceAccounts(conn.Namespace).CreateToken(ctx, conn.User, tr, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("requesting token for %s/%s: %w", conn.Namespace, conn.User, err)
	}
	conn.Token, conn.TokenExpiry = got.Status.Token, got.Status.ExpirationTimestamp.Time
	return nil
}

// createNamespace makes a node's namespace: a project where the Driver
// makes projects and the cluster serves them, else a namespace.
func (d *Driver) createNamespace(ctx context.Context, name string, labels map[string]string) error {
	project, err := d.useProjects(ctx)
	if err != nil {
		return err
	}
	if project {
		return d.createProject(ctx, name, labels)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := d.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating namespace %q: %w", name, err)
	}
	return nil
}

// copySecret copies the secret s names into a new secret with the given
// metadata.
func (d *Driver) copySecret(ctx context.Context, s SecretRef, meta metav1.ObjectMeta) error {
	src, err := d.Client.CoreV1().Secrets(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading image pull secret %s/%s to copy: %w", s.Namespace, s.Name, err)
	}
	dst := &corev1.Secret{ObjectMeta: meta, Type: src.Type, Data: src.Data, Immutable: ptr(true)}
	if _, err := d.Client.CoreV1().Secrets(meta.Namespace).Create(ctx, dst, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("copying image pull secret %s/%s to %s/%s: %w", s.Namespace, s.Name, meta.Namespace, meta.Name, err)
	}
	return nil
}

// RoleRules are the permissions a node's token carries, in its namespace
// only; pod names the pod of a pod node. README.md ("Safe nodes") says why
// each rule is there.
//
// A pod node's token reaches its own pod and nothing else: get it (and
// watch it by name), exec into it, read its log, port-forward to it (Zuul's
// log streaming).
//
// A namespace node's token manages the workloads of a container-native
// job, and nothing that reaches beyond its namespace or loosens what the
// namespace enforces: no Roles or RoleBindings (so no binding of cluster
// roles), no writes to the ResourceQuota, LimitRange or NetworkPolicy
// (read, so a job can see its bounds), no Endpoints or EndpointSlices
// written by hand (they could point a Service at any address, even outside
// the cluster: CVE-2021-25740), no service-account tokens minted, nothing
// cluster-scoped.
func RoleRules(k Kind, pod string) []rbacv1.PolicyRule {
	if k == KindPod {
		own := []string{pod}
		return []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, ResourceNames: own, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"pods/exec"}, ResourceNames: own, Verbs: []string{"create", "get"}},
			{APIGroups: []string{""}, Resources: []string{"pods/log"}, ResourceNames: own, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, ResourceNames: own, Verbs: []string{"create", "get"}},
		}
	}
	manage := []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
	read := []string{"get", "list", "watch"}
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "services", "configmaps", "secrets", "persistentvolumeclaims", "serviceaccounts"}, Verbs: manage},
		{APIGroups: []string{""}, Resources: []string{"pods/exec", "pods/portforward", "pods/attach"}, Verbs: []string{"create", "get"}},
		{APIGroups: []string{""}, Resources: []string{"pods/ephemeralcontainers"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods/log", "events", "endpoints", "resourcequotas", "limitranges"}, Verbs: read},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: read},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: read},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "replicasets", "statefulsets", "daemonsets"}, Verbs: manage},
		{APIGroups: []string{"batch"}, Resources: []string{"jobs", "cronjobs"}, Verbs: manage},
		{APIGroups: []string{"policy"}, Resources: []string{"poddisruptionbudgets"}, Verbs: manage},
		{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}, Verbs: manage},
	}
}

// PodStopGrace is the grace period the pods of a deleted node get: the
// job is over, nothing in them needs a graceful stop.
const PodStopGrace = 1 * time.Second

// Delete deletes namespace and everything in it. With wait it returns only
// once the namespace is gone (its finalizers have run), watching rather than
// polling. A namespace that does not exist is not an error.
//
// The namespace's pods are first deleted with a grace period of
// PodStopGrace: a pod whose spec asks for more (30 s by default, for the
// pods a namespace node's job made) would otherwise keep the namespace, and
// the node's quota, that long.
func (d *Driver) Delete(ctx context.Context, namespace string, wait bool) error {
	// The namespace controller, finding pods, waits as long as the longest
	// grace period in their specs before it looks again, however soon they
	// stop (and 5 s when anything at all remains). So pods are stopped
	// first, and, when one's spec would make the controller wait longer
	// than that, waited for before the namespace is deleted. Best effort:
	// without it the namespace still goes, only slower.
	if longest := d.stopPods(ctx, namespace); longest > namespaceRecheck && wait {
		pctx, cancel := context.WithTimeout(ctx, PodStopGrace+30*time.Second)
		_ = d.waitPodsGone(pctx, namespace)
		cancel()
	}
	project, err := d.useProjects(ctx)
	if err != nil {
		return err
	}
	if project {
		if err := d.deleteProject(ctx, namespace); err != nil {
			return err
		}
		if !wait {
			return nil
		}
		// A project's requester may not be allowed to watch namespaces.
		if err := d.waitGone(ctx, namespace); err != nil && !apierrors.IsForbidden(err) {
			return err
		}
		return nil
	}
	err = d.Client.CoreV1().Namespaces().Delete(ctx, namespace, metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationBackground)})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting namespace %q: %w", namespace, err)
	}
	if !wait {
		return nil
	}
	return d.waitGone(ctx, namespace)
}

// WaitPodsGone waits, by watch, until namespace has no pods (a namespace
// that does not exist has none). A deleted node's cores and memory are
// free then, seconds before the namespace controller has finished with
// the namespace itself.
func (d *Driver) WaitPodsGone(ctx context.Context, namespace string) error {
	if err := d.waitPodsGone(ctx, namespace); err != nil {
		return fmt.Errorf("waiting for the pods of namespace %q to go: %w", namespace, err)
	}
	return nil
}

// namespaceRecheck is how long the namespace controller waits before it
// looks again at a namespace whose content is not all gone yet.
const namespaceRecheck = 5 * time.Second

// stopPods deletes the pods of namespace with a grace period of
// PodStopGrace, side by side, and returns the longest grace period their
// specs ask for.
func (d *Driver) stopPods(ctx context.Context, namespace string) time.Duration {
	pods, err := d.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0
	}
	grace := int64(PodStopGrace / time.Second)
	var longest time.Duration
	var wg sync.WaitGroup
	for _, p := range pods.Items {
		specGrace := time.Duration(corev1.DefaultTerminationGracePeriodSeconds) * time.Second
		if g := p.Spec.TerminationGracePeriodSeconds; g != nil {
			specGrace = time.Duration(*g) * time.Second
		}
		longest = max(longest, specGrace)
		if p.DeletionTimestamp != nil && p.DeletionGracePeriodSeconds != nil && *p.DeletionGracePeriodSeconds <= grace {
			continue
		}
		wg.Go(func() {
			_ = d.Client.CoreV1().Pods(namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
		})
	}
	wg.Wait()
	return longest
}

// waitPodsGone waits, by watch, until namespace has no pods.
func (d *Driver) waitPodsGone(ctx context.Context, namespace string) error {
	for {
		pods, err := d.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(pods.Items) == 0 {
			return nil
		}
		left := map[string]bool{}
		for _, p := range pods.Items {
			left[p.Name] = true
		}
		w, err := d.Client.CoreV1().Pods(namespace).Watch(ctx, metav1.ListOptions{ResourceVersion: pods.ResourceVersion})
		if err != nil {
			return err
		}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				break // an error event: list again
			}
			switch ev.Type {
			case watch.Deleted:
				delete(left, p.Name)
			case watch.Added:
				left[p.Name] = true
			}
			if len(left) == 0 {
				w.Stop()
				return nil
			}
		}
		w.Stop()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

func (d *Driver) waitGone(ctx context.Context, namespace string) error {
	for {
		ns, err := d.Client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("waiting for namespace %q to be deleted: %w", namespace, err)
		}
		w, err := d.Client.CoreV1().Namespaces().Watch(ctx, metav1.ListOptions{
			FieldSelector:   "metadata.name=" + namespace,
			ResourceVersion: ns.ResourceVersion,
		})
		if err != nil {
			return fmt.Errorf("watching namespace %q: %w", namespace, err)
		}
		gone, err := drainUntilDeleted(ctx, w)
		w.Stop()
		if err != nil {
			return fmt.Errorf("waiting for namespace %q to be deleted: %w", namespace, err)
		}
		if gone {
			return nil
		}
		// The watch ended early (server timeout): look again.
	}
}

func drainUntilDeleted(ctx context.Context, w watch.Interface) (bool, error) {
	for {
		select {
		case <-ctx.Done():
			return false, context.Cause(ctx)
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, nil
			}
			switch ev.Type {
			case watch.Deleted:
				return true, nil
			case watch.Error:
				// The watch could not go on (a resource version too old,
				// or too new for the API server's watch cache, which can
				// lag for seconds): the caller looks again.
				return false, nil
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

// MachineCommand keeps a pod's container running like a machine: a shell that
// never exits by itself and stops at once on SIGTERM, so deleting the pod is
// quick.
var MachineCommand = []string{"/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"}
