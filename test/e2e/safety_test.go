package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/nodeaccess"
	"github.com/kubepool/kubepool/internal/podexec"
	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

// safetyConfig is a launcher config with one label per row group of the
// breakout matrix: a pod (the machine image, its level derived), a
// namespace at the default baseline with a small quota and isolated
// egress, and a namespace at pod-security: privileged.
func safetyConfig(env *testenv.Env, servers, provider string) string {
	return zkServersYAML(servers) + fmt.Sprintf(`
labels:
  - name: pod
  - name: namespace
  - name: namespace-privileged
providers:
  - name: %s
    driver: kubernetes
    context: kubepool-dev
    boot-timeout: 120
    token-expiration: 1h
    pools:
      - name: main
        labels:
          - name: pod
            type: pod
            image: %s
            python-path: /usr/bin/python3
            cpu: 100m
            memory: 64Mi
          - name: namespace
            type: namespace
            cpu: 50m
            memory: 32Mi
            memory-limit: 96Mi
            network: isolated
            quota: {pods: 2, cpu: 1, memory: 1Gi, ephemeral-storage: 4Gi}
          - name: namespace-privileged
            type: namespace
            pod-security: privileged
`, provider, env.MachineImage)
}

// safeNode is one node of the matrix as its job sees it: through the
// kubeconfig that `kubepool request -o kubeconfig` writes.
type safeNode struct {
	record    *zk.Node
	namespace string
	pod       string
	cfg       *rest.Config
	client    kubernetes.Interface
}

// requestSafeNodes requests labels from the launcher as Zuul does and
// returns the nodes, with clients built from the executor's kubeconfig,
// one context per node.
func requestSafeNodes(t *testing.T, ctx context.Context, le *launcherEnv, labels ...string) []safeNode {
	t.Helper()
	id := le.zuul.Submit(labels, 100, nil)
	req := le.zuul.WaitRequest(ctx, id)
	if req["state"] != "fulfilled" {
		t.Fatalf("request %s = %v, want fulfilled", id, req["state"])
	}
	_, ret := le.zuul.AcceptNodes(id, req)
	t.Cleanup(ret)
	var records []*zk.Node
	for _, v := range req["nodes"].([]any) {
		n, err := le.zk.GetNode(ctx, v.(string))
		if err != nil {
			t.Fatal(err)
		}
		records = append(records, n)
	}
	files, err := nodeaccess.NewExecutorFiles(records)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := files.KubeconfigYAML()
	if err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.Load(kubeconfig)
	if err != nil {
		t.Fatalf("loading the executor's kubeconfig: %v", err)
	}
	var out []safeNode
	for _, n := range records {
		cfg, err := clientcmd.NewNonInteractiveClientConfig(*kc, files.Contexts[n.ID], &clientcmd.ConfigOverrides{}, nil).ClientConfig()
		if err != nil {
			t.Fatalf("kubeconfig context %s: %v", files.Contexts[n.ID], err)
		}
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, safeNode{record: n, namespace: n.ExternalID, pod: n.InterfaceIP, cfg: cfg, client: c})
	}
	return out
}

// verdict is what the API answered a row.
type verdict string

const (
	allowed        verdict = "allowed"
	forbiddenRBAC  verdict = "forbidden by RBAC"
	forbiddenPSA   verdict = "forbidden by Pod Security"
	forbiddenQuota verdict = "forbidden by quota"
)

// verdictOf classifies an API error. Exec and port-forward without a
// stream upgrade are answered 400 once authorized: past authorization is
// what those rows ask.
func verdictOf(err error) verdict {
	switch {
	case err == nil, apierrors.IsBadRequest(err) && strings.Contains(err.Error(), "Upgrade request required"):
		return allowed
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "violates PodSecurity"):
		return forbiddenPSA
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota"):
		return forbiddenQuota
	case apierrors.IsForbidden(err):
		return forbiddenRBAC
	}
	return verdict("error: " + err.Error())
}

// TestSafeNodes is the breakout matrix: each node type's own token, from
// the executor's kubeconfig, tries what an untrusted job would to leave
// its node, and every row asserts the API server's answer. Then what the
// namespace enforces: the LimitRange's defaults in a pod that sets none,
// the node's resources record against its quota, the Pod Security labels
// pinned to the cluster's version and the NetworkPolicies (the dev
// cluster's bridge CNI does not enforce them: the objects are what is
// asserted).
func TestSafeNodes(t *testing.T) {
	le := startLauncherWith(t, safetyConfig, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	nodes := requestSafeNodes(t, ctx, le, "pod", "pod", "namespace", "namespace-privileged")
	podA, podB, ns, priv := nodes[0], nodes[1], nodes[2], nodes[3]
	img := le.env.MachineImage

	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	newPod := func(name string, edit func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{
				Containers:                    []corev1.Container{{Name: "c", Image: img, Command: kube.MachineCommand}},
				TerminationGracePeriodSeconds: ptr(int64(1)),
			},
		}
		if edit != nil {
			edit(p)
		}
		return p
	}
	privileged := func(p *corev1.Pod) {
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr(true)}
	}
	hostRoot := func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "host", MountPath: "/host"}}
	}
	createPod := func(n safeNode, edit func(*corev1.Pod)) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := n.client.CoreV1().Pods(n.namespace).Create(ctx, newPod("p"+randHex(3), edit), dry)
			return err
		}
	}
	post := func(n safeNode, namespace, pod, sub string) func(context.Context) error {
		return func(ctx context.Context) error {
			return n.client.CoreV1().RESTClient().Post().Namespace(namespace).Resource("pods").Name(pod).SubResource(sub).
				Param("command", "true").Param("stdout", "true").Param("ports", "19885").Do(ctx).Error()
		}
	}
	bind := func(n safeNode, kind, role string) func(context.Context) error {
		return func(ctx context.Context) error {
			rb := &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "escalate-" + randHex(3)},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: kube.ServiceAccountName, Namespace: n.namespace}},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role},
			}
			_, err := n.client.RbacV1().RoleBindings(n.namespace).Create(ctx, rb, dry)
			return err
		}
	}
	listNamespaces := func(n safeNode) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := n.client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
			return err
		}
	}
	listNodes := func(n safeNode) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := n.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			return err
		}
	}
	listSecrets := func(n safeNode, namespace string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := n.client.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{})
			return err
		}
	}

	// The namespace node's job pod: made with the node's token, no
	// resources set (the LimitRange fills them in), and a target for the
	// ephemeral container row.
	job, err := ns.client.CoreV1().Pods(ns.namespace).Create(ctx, newPod("job", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a plain pod with the namespace node's token: %v", err)
	}

	type row struct {
		name string
		do   func(context.Context) error
		want verdict
	}
	matrix := []struct {
		node string
		rows []row
	}{{
		node: "namespace (baseline)",
		rows: []row{
			{"a plain pod", createPod(ns, nil), allowed},
			{"privileged pod", createPod(ns, privileged), forbiddenPSA},
			{"hostPath /", createPod(ns, hostRoot), forbiddenPSA},
			{"hostNetwork", createPod(ns, func(p *corev1.Pod) { p.Spec.HostNetwork = true }), forbiddenPSA},
			{"hostPID", createPod(ns, func(p *corev1.Pod) { p.Spec.HostPID = true }), forbiddenPSA},
			{"added SYS_ADMIN", createPod(ns, func(p *corev1.Pod) {
				p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}}
			}), forbiddenPSA},
			{"privileged ephemeral container", func(ctx context.Context) error {
				// The pod's status changes while it starts: update the
				// latest version, and again on a conflict.
				return retry.RetryOnConflict(retry.DefaultRetry, func() error {
					p, err := ns.client.CoreV1().Pods(ns.namespace).Get(ctx, job.Name, metav1.GetOptions{})
					if err != nil {
						return err
					}
					p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
						Name: "debug", Image: img, Command: kube.MachineCommand, SecurityContext: &corev1.SecurityContext{Privileged: ptr(true)},
					}}}
					_, err = ns.client.CoreV1().Pods(ns.namespace).UpdateEphemeralContainers(ctx, p.Name, p, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
					return err
				})
			}, forbiddenPSA},
			{"second pod (quota: 2 pods)", func(ctx context.Context) error {
				_, err := ns.client.CoreV1().Pods(ns.namespace).Create(ctx, newPod("second", nil), metav1.CreateOptions{})
				return err
			}, allowed},
			{"third pod, past the quota", func(ctx context.Context) error {
				_, err := ns.client.CoreV1().Pods(ns.namespace).Create(ctx, newPod("third", nil), metav1.CreateOptions{})
				return err
			}, forbiddenQuota},
			{"NodePort service", func(ctx context.Context) error {
				svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "out"}, Spec: corev1.ServiceSpec{
					Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80}},
				}}
				_, err := ns.client.CoreV1().Services(ns.namespace).Create(ctx, svc, dry)
				return err
			}, forbiddenQuota},
			{"RoleBinding to cluster-admin", bind(ns, "ClusterRole", "cluster-admin"), forbiddenRBAC},
			{"RoleBinding to admin", bind(ns, "ClusterRole", "admin"), forbiddenRBAC},
			{"RoleBinding to its own Role", bind(ns, "Role", kube.ServiceAccountName), forbiddenRBAC},
			{"relabel its namespace privileged", func(ctx context.Context) error {
				patch := []byte(`{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"privileged"}}}`)
				_, err := ns.client.CoreV1().Namespaces().Patch(ctx, ns.namespace, types.MergePatchType, patch, metav1.PatchOptions{})
				return err
			}, forbiddenRBAC},
			{"delete its NetworkPolicy", func(ctx context.Context) error {
				return ns.client.NetworkingV1().NetworkPolicies(ns.namespace).Delete(ctx, kube.PolicyName, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
			}, forbiddenRBAC},
			{"raise its quota", func(ctx context.Context) error {
				patch := []byte(`{"spec":{"hard":{"pods":"1000"}}}`)
				_, err := ns.client.CoreV1().ResourceQuotas(ns.namespace).Patch(ctx, kube.PolicyName, types.MergePatchType, patch, metav1.PatchOptions{})
				return err
			}, forbiddenRBAC},
			{"EndpointSlice to an address of its choice", func(ctx context.Context) error {
				es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "out"}, AddressType: discoveryv1.AddressTypeIPv4,
					Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.244.0.1"}}}}
				_, err := ns.client.DiscoveryV1().EndpointSlices(ns.namespace).Create(ctx, es, dry)
				return err
			}, forbiddenRBAC},
			{"list namespaces", listNamespaces(ns), forbiddenRBAC},
			{"list nodes", listNodes(ns), forbiddenRBAC},
			{"secrets of another node's namespace", listSecrets(ns, priv.namespace), forbiddenRBAC},
			{"secrets of kube-system", listSecrets(ns, "kube-system"), forbiddenRBAC},
			{"exec into another node's pod", post(ns, podA.namespace, podA.pod, "exec"), forbiddenRBAC},
		},
	}, {
		node: "namespace (pod-security: privileged)",
		rows: []row{
			{"privileged pod", createPod(priv, privileged), allowed},
			{"hostPath /", createPod(priv, hostRoot), allowed},
			{"RoleBinding to cluster-admin", bind(priv, "ClusterRole", "cluster-admin"), forbiddenRBAC},
			{"exec into another node's pod", post(priv, podA.namespace, podA.pod, "exec"), forbiddenRBAC},
		},
	}, {
		node: "pod",
		rows: []row{
			{"get its pod", func(ctx context.Context) error {
				_, err := podA.client.CoreV1().Pods(podA.namespace).Get(ctx, podA.pod, metav1.GetOptions{})
				return err
			}, allowed},
			{"exec into its pod", func(ctx context.Context) error {
				ex, err := podexec.New(podA.cfg)
				if err != nil {
					return err
				}
				var out bytes.Buffer
				return ex.Run(ctx, podexec.Target{Namespace: podA.namespace, Pod: podA.pod}, []string{"true"}, podexec.Options{Stdout: &out})
			}, allowed},
			{"its pod's log", func(ctx context.Context) error {
				return podA.client.CoreV1().Pods(podA.namespace).GetLogs(podA.pod, &corev1.PodLogOptions{}).Do(ctx).Error()
			}, allowed},
			{"port-forward to its pod", post(podA, podA.namespace, podA.pod, "portforward"), allowed},
			{"list the pods of its namespace", func(ctx context.Context) error {
				_, err := podA.client.CoreV1().Pods(podA.namespace).List(ctx, metav1.ListOptions{})
				return err
			}, forbiddenRBAC},
			{"create a pod", createPod(podA, nil), forbiddenRBAC},
			{"create a privileged pod", createPod(podA, privileged), forbiddenRBAC},
			{"delete its pod", func(ctx context.Context) error {
				return podA.client.CoreV1().Pods(podA.namespace).Delete(ctx, podA.pod, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
			}, forbiddenRBAC},
			{"ephemeral container in its pod", func(ctx context.Context) error {
				p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: podA.pod, Namespace: podA.namespace}}
				_, err := podA.client.CoreV1().Pods(podA.namespace).UpdateEphemeralContainers(ctx, podA.pod, p, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
				return err
			}, forbiddenRBAC},
			{"secrets of its namespace", listSecrets(podA, podA.namespace), forbiddenRBAC},
			{"RoleBinding to cluster-admin", bind(podA, "ClusterRole", "cluster-admin"), forbiddenRBAC},
			{"list namespaces", listNamespaces(podA), forbiddenRBAC},
			{"list nodes", listNodes(podA), forbiddenRBAC},
			{"exec into another node's pod", post(podA, podB.namespace, podB.pod, "exec"), forbiddenRBAC},
			{"log of another node's pod", func(ctx context.Context) error {
				return podA.client.CoreV1().Pods(podB.namespace).GetLogs(podB.pod, &corev1.PodLogOptions{}).Do(ctx).Error()
			}, forbiddenRBAC},
		},
	}}
	for _, group := range matrix {
		for _, r := range group.rows {
			t.Run(group.node+"/"+r.name, func(t *testing.T) {
				if got := verdictOf(r.do(ctx)); got != r.want {
					t.Errorf("%s node: %s = %s, want %s", group.node, r.name, got, r.want)
				}
			})
		}
	}

	t.Run("limit range defaults", func(t *testing.T) {
		got, err := ns.client.CoreV1().Pods(ns.namespace).Get(ctx, "job", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("32Mi"),
				corev1.ResourceEphemeralStorage: resource.MustParse("100Mi"),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("96Mi"),
				corev1.ResourceEphemeralStorage: resource.MustParse("1Gi"),
			},
		}
		if diff := cmp.Diff(want, got.Spec.Containers[0].Resources, cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })); diff != "" {
			t.Errorf("job pod without resources: resources mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("resources match the quota", func(t *testing.T) {
		want := map[string]any{"cores": 1.0, "ram": 1024.0, "instances": 1.0, "ephemeral-storage": 4295.0}
		if diff := cmp.Diff(want, ns.record.Resources); diff != "" {
			t.Errorf("namespace node's resources in ZooKeeper mismatch (-want +got):\n%s", diff)
		}
		q, err := le.env.Client.CoreV1().ResourceQuotas(ns.namespace).Get(ctx, kube.PolicyName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range map[corev1.ResourceName]string{
			corev1.ResourceRequestsCPU: "1", corev1.ResourceLimitsCPU: "1", corev1.ResourceRequestsMemory: "1Gi", corev1.ResourceLimitsMemory: "1Gi",
			corev1.ResourceRequestsEphemeralStorage: "4Gi", corev1.ResourceLimitsEphemeralStorage: "4Gi", corev1.ResourcePods: "2",
			corev1.ResourceServicesNodePorts: "0", corev1.ResourceServicesLoadBalancers: "0",
		} {
			if got := q.Spec.Hard[name]; got.Cmp(resource.MustParse(v)) != 0 {
				t.Errorf("quota %s/%s: %s = %s, want %s", ns.namespace, kube.PolicyName, name, got.String(), v)
			}
		}
	})

	t.Run("pod security labels", func(t *testing.T) {
		info, err := le.env.Client.Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		version := "v" + info.Major + "." + strings.TrimRight(info.Minor, "+")
		for _, c := range []struct {
			n       safeNode
			enforce string
		}{{podA, "baseline"}, {ns, "baseline"}, {priv, "privileged"}} {
			got, err := le.env.Client.CoreV1().Namespaces().Get(ctx, c.n.namespace, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			const p = "pod-security.kubernetes.io/"
			want := map[string]string{
				p + "enforce": c.enforce, p + "enforce-version": version,
				p + "warn": "restricted", p + "warn-version": version,
				p + "audit": "restricted", p + "audit-version": version,
			}
			for k, v := range want {
				if got.Labels[k] != v {
					t.Errorf("namespace %s: label %s = %q, want %q", c.n.namespace, k, got.Labels[k], v)
				}
			}
		}
		pod, err := le.env.Client.CoreV1().Pods(podA.namespace).Get(ctx, podA.pod, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sc := pod.Spec.Containers[0].SecurityContext
		if pod.Spec.SecurityContext.SeccompProfile == nil || pod.Spec.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
			sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || *pod.Spec.AutomountServiceAccountToken {
			t.Errorf("pod node's pod: seccomp %+v, container security context %+v, automount %v; want RuntimeDefault, no privilege escalation, no token",
				pod.Spec.SecurityContext.SeccompProfile, sc, *pod.Spec.AutomountServiceAccountToken)
		}
	})

	t.Run("network policies", func(t *testing.T) {
		for _, c := range []struct {
			n        safeNode
			isolated bool
		}{{podA, false}, {ns, true}, {priv, false}} {
			np, err := le.env.Client.NetworkingV1().NetworkPolicies(c.n.namespace).Get(ctx, kube.PolicyName, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("network policy of %s: %v", c.n.namespace, err)
			}
			// Ingress from the namespace itself, and from the other
			// namespaces of its buildset (the stand-in's requests carry one,
			// as Zuul's do): nothing else.
			nsObj, err := le.env.Client.CoreV1().Namespaces().Get(ctx, c.n.namespace, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			bs := nsObj.Labels[kube.LabelBuildset]
			if bs == "" {
				t.Errorf("namespace %s has no %s label; the request had a build_set_uuid", c.n.namespace, kube.LabelBuildset)
			}
			want := []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{PodSelector: &metav1.LabelSelector{}},
				{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{kube.LabelBuildset: bs}}},
			}}}
			if diff := cmp.Diff(want, np.Spec.Ingress); diff != "" {
				t.Errorf("%s: ingress mismatch (-want +got):\n%s", c.n.namespace, diff)
			}
			hasEgress := len(np.Spec.PolicyTypes) == 2 && np.Spec.PolicyTypes[1] == networkingv1.PolicyTypeEgress
			if hasEgress != c.isolated {
				t.Errorf("%s: policy types %v, want egress isolated %v", c.n.namespace, np.Spec.PolicyTypes, c.isolated)
			}
			if !c.isolated {
				continue
			}
			// DNS to kube-dns, then the API server where it listens.
			if len(np.Spec.Egress) < 2 || np.Spec.Egress[0].To[0].PodSelector.MatchLabels["k8s-app"] != "kube-dns" {
				t.Fatalf("%s: egress %+v, want DNS and the API server", c.n.namespace, np.Spec.Egress)
			}
			apiserver := false
			host := strings.TrimPrefix(le.env.RESTConfig.Host, "https://")
			for _, e := range np.Spec.Egress[1:] {
				ip := e.To[0].IPBlock.CIDR
				if strings.HasPrefix(host, strings.TrimSuffix(ip, "/32")+":") && e.Ports[0].Port.IntValue() > 0 {
					apiserver = true
				}
			}
			if !apiserver {
				t.Errorf("%s: egress %+v does not allow the API server %s", c.n.namespace, np.Spec.Egress[1:], host)
			}
		}
	})
}
