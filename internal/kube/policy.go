package kube

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// Pod Security Standards, as the namespace labels of Pod Security Admission
// name them, from the most to the least restrictive.
const (
	PodSecurityRestricted = string(psapi.LevelRestricted)
	PodSecurityBaseline   = string(psapi.LevelBaseline)
	PodSecurityPrivileged = string(psapi.LevelPrivileged)
)

// Policy is what a node's namespace enforces, beyond its Role: Pod Security
// Admission, a ResourceQuota, a LimitRange and a NetworkPolicy.
type Policy struct {
	// PodSecurity is the Pod Security Standard enforced in the namespace.
	// Empty means baseline for namespace nodes and, for pod nodes, the
	// lowest level that admits the node's own pod (see PodSecurityFor).
	// Warnings and audit annotations are always at restricted, so that job
	// authors see what would break under it.
	PodSecurity string
	// Quota is the ResourceQuota's hard limits; empty for none.
	Quota corev1.ResourceList
	// DefaultRequests and DefaultLimits are the LimitRange's defaults for
	// containers that set none; both empty for no LimitRange.
	DefaultRequests, DefaultLimits corev1.ResourceList
	// IsolateEgress denies egress except to the cluster DNS and the API
	// server. Ingress is always from the namespace itself only.
	IsolateEgress bool
}

// PolicyName is the name of the ResourceQuota, LimitRange and
// NetworkPolicy of a node's namespace.
const PolicyName = "kubepool"

// Pod Security Admission's namespace labels.
const (
	psaEnforce = "pod-security.kubernetes.io/enforce"
	psaWarn    = "pod-security.kubernetes.io/warn"
	psaAudit   = "pod-security.kubernetes.io/audit"
)

// podSecurityLabels returns the namespace labels that make Pod Security
// Admission enforce level and warn and audit at restricted, each pinned to
// version ("v1.36"), so that a cluster upgrade does not change what is
// enforced without the operator knowing.
func podSecurityLabels(level, version string) map[string]string {
	return map[string]string{
		psaEnforce: level, psaEnforce + "-version": version,
		psaWarn: PodSecurityRestricted, psaWarn + "-version": version,
		psaAudit: PodSecurityRestricted, psaAudit + "-version": version,
	}
}

var evaluator = sync.OnceValues(func() (policy.Evaluator, error) {
	return policy.NewEvaluator(policy.DefaultChecks(), nil)
})

// PodSecurityFor returns the lowest Pod Security Standard (the most
// restrictive) that admits a pod with spec, as the API server's Pod
// Security Admission at version ("v1.36", or "latest") decides it.
func PodSecurityFor(spec *corev1.PodSpec, version string) (string, error) {
	v, err := psapi.ParseVersion(version)
	if err != nil {
		return "", fmt.Errorf("parsing Pod Security version %q: %w", version, err)
	}
	e, err := evaluator()
	if err != nil {
		return "", fmt.Errorf("loading the Pod Security checks: %w", err)
	}
	for _, level := range []psapi.Level{psapi.LevelRestricted, psapi.LevelBaseline} {
		res := policy.AggregateCheckResults(e.EvaluatePod(psapi.LevelVersion{Level: level, Version: v}, &metav1.ObjectMeta{}, spec))
		if res.Allowed {
			return string(level), nil
		}
	}
	return PodSecurityPrivileged, nil
}

// clusterFacts are what the driver learns about its cluster once: the
// Pod Security version to pin, and where the API server really listens
// (for NetworkPolicies).
type clusterFacts struct {
	mu         sync.Mutex
	psaVersion string
	apiServer  []apiEndpoint // nil until looked up
}

type apiEndpoint struct {
	addr netip.Addr
	port int32
}

// PodSecurityVersion returns the Pod Security version policies are pinned
// to: the cluster's minor version ("v1.36"), from discovery, asked once.
func (d *Driver) PodSecurityVersion(ctx context.Context) (string, error) {
	d.facts.mu.Lock()
	defer d.facts.mu.Unlock()
	if d.facts.psaVersion != "" {
		return d.facts.psaVersion, nil
	}
	info, err := d.Client.Discovery().ServerVersion()
	if err != nil {
		return "", fmt.Errorf("asking the API server's version to pin Pod Security to: %w", err)
	}
	major, errMajor := strconv.Atoi(strings.TrimRight(info.Major, "+"))
	minor, errMinor := strconv.Atoi(strings.TrimRight(info.Minor, "+"))
	if errMajor != nil || errMinor != nil {
		return "", fmt.Errorf("API server version major %q minor %q (%s): not numbers, cannot pin Pod Security to it", info.Major, info.Minor, info.GitVersion)
	}
	d.facts.psaVersion = fmt.Sprintf("v%d.%d", major, minor)
	return d.facts.psaVersion, nil
}

// apiServerEndpoints returns the addresses and ports the API server serves
// on, for egress rules: the endpoints of the default/kubernetes service
// (what a NetworkPolicy sees after the service's address is translated)
// and the address the driver itself uses when it is an IP. Looked up once.
func (d *Driver) apiServerEndpoints(ctx context.Context) []apiEndpoint {
	d.facts.mu.Lock()
	defer d.facts.mu.Unlock()
	if d.facts.apiServer != nil {
		return d.facts.apiServer
	}
	seen := map[apiEndpoint]bool{}
	var out []apiEndpoint
	add := func(e apiEndpoint) {
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	if u, err := url.Parse(d.Host); err == nil {
		if a, err := netip.ParseAddr(u.Hostname()); err == nil {
			port := 443
			if p, err := strconv.Atoi(u.Port()); err == nil {
				port = p
			}
			add(apiEndpoint{a.Unmap(), int32(port)})
		}
	}
	// The kubernetes EndpointSlice is named after its service; reading it
	// takes "get" on that one name in default (deploy/base/rbac.yaml).
	// Without it, the driver's own address is all there is.
	if s, err := d.Client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{}); err == nil {
		for _, ep := range s.Endpoints {
			for _, a := range ep.Addresses {
				addr, err := netip.ParseAddr(a)
				if err != nil {
					continue
				}
				for _, p := range s.Ports {
					if p.Port != nil {
						add(apiEndpoint{addr.Unmap(), *p.Port})
					}
				}
			}
		}
	} else if !apierrors.IsForbidden(err) && !apierrors.IsNotFound(err) {
		return out // a passing failure: look again next time
	}
	d.facts.apiServer = out
	return out
}

// networkPolicy returns the NetworkPolicy of a node's namespace: ingress
// from the namespace's own pods only; with isolate, egress only to the
// cluster DNS (kube-system's kube-dns pods, port 53) and the API server.
func (d *Driver) networkPolicy(ctx context.Context, meta metav1.ObjectMeta, isolate bool) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: meta,
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}}},
		},
	}
	if !isolate {
		return np
	}
	np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
	port := func(proto corev1.Protocol, p int32) networkingv1.NetworkPolicyPort {
		return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: ptr(intstr.FromInt32(p))}
	}
	np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{
		To: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: metav1.NamespaceSystem}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}},
		}},
		Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolUDP, 53), port(corev1.ProtocolTCP, 53)},
	}}
	for _, e := range d.apiServerEndpoints(ctx) {
		bits := 32
		if e.addr.Is6() {
			bits = 128
		}
		np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{
			To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: netip.PrefixFrom(e.addr, bits).String()}}},
			Ports: []networkingv1.NetworkPolicyPort{port(corev1.ProtocolTCP, e.port)},
		})
	}
	return np
}

// quota returns the ResourceQuota of a node's namespace. Services of type
// NodePort and LoadBalancer are always refused: they would expose a job's
// pods outside the cluster's network.
func quota(meta metav1.ObjectMeta, hard corev1.ResourceList) *corev1.ResourceQuota {
	h := hard.DeepCopy()
	h[corev1.ResourceServicesNodePorts] = resource.MustParse("0")
	h[corev1.ResourceServicesLoadBalancers] = resource.MustParse("0")
	return &corev1.ResourceQuota{ObjectMeta: meta, Spec: corev1.ResourceQuotaSpec{Hard: h}}
}

// limitRange returns the LimitRange of a node's namespace: the defaults a
// container that sets no resources gets.
func limitRange(meta metav1.ObjectMeta, requests, limits corev1.ResourceList) *corev1.LimitRange {
	return &corev1.LimitRange{ObjectMeta: meta, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
		Type:           corev1.LimitTypeContainer,
		Default:        limits.DeepCopy(),
		DefaultRequest: requests.DeepCopy(),
	}}}}
}

// waitQuotaReady waits, by watch, until the quota controller has filled in
// the status of namespace's ResourceQuota: until then the API server
// refuses every pod in the namespace ("status unknown for quota").
func (d *Driver) waitQuotaReady(ctx context.Context, namespace string) error {
	ready := func(q *corev1.ResourceQuota) bool { return len(q.Status.Hard) > 0 }
	for {
		q, err := d.Client.CoreV1().ResourceQuotas(namespace).Get(ctx, PolicyName, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("getting resource quota %s/%s: %w", namespace, PolicyName, err)
		}
		if ready(q) {
			return nil
		}
		w, err := d.Client.CoreV1().ResourceQuotas(namespace).Watch(ctx, metav1.ListOptions{
			FieldSelector: "metadata.name=" + PolicyName, ResourceVersion: q.ResourceVersion,
		})
		if err != nil {
			return fmt.Errorf("watching resource quota %s/%s: %w", namespace, PolicyName, err)
		}
		done := false
		for ev := range w.ResultChan() {
			if q, ok := ev.Object.(*corev1.ResourceQuota); ok && ready(q) {
				done = true
				break
			}
		}
		w.Stop()
		if done {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("waiting for the quota controller to count resource quota %s/%s: %w", namespace, PolicyName, context.Cause(ctx))
		}
	}
}
