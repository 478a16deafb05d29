package launcher

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kubepool/kubepool/internal/config"
	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/zk"
)

// nodePolicy is what the namespace of a node of label enforces: its
// pod-security level, its quota, for namespace labels the containers'
// defaults (a LimitRange), and its network mode.
func nodePolicy(label *config.PoolLabel) kube.Policy {
	p := kube.Policy{
		PodSecurity:   string(label.PodSecurity),
		Quota:         corev1.ResourceList{},
		IsolateEgress: label.Network == config.NetworkIsolated,
	}
	q := label.Quota
	for name, n := range map[corev1.ResourceName]int64{
		corev1.ResourcePods: q.Pods, corev1.ResourceServices: q.Services, corev1.ResourcePersistentVolumeClaims: q.PersistentVolumeClaims,
	} {
		p.Quota[name] = *resource.NewQuantity(n, resource.DecimalSI)
	}
	both := func(requests, limits corev1.ResourceName, v resource.Quantity) {
		if !v.IsZero() {
			p.Quota[requests], p.Quota[limits] = v.DeepCopy(), v.DeepCopy()
		}
	}
	both(corev1.ResourceRequestsCPU, corev1.ResourceLimitsCPU, q.CPU)
	both(corev1.ResourceRequestsMemory, corev1.ResourceLimitsMemory, q.Memory)
	both(corev1.ResourceRequestsEphemeralStorage, corev1.ResourceLimitsEphemeralStorage, q.EphemeralStorage)
	if label.Type != config.TypeNamespace {
		return p
	}
	p.DefaultRequests, p.DefaultLimits = corev1.ResourceList{}, corev1.ResourceList{}
	set := func(list corev1.ResourceList, name corev1.ResourceName, v resource.Quantity) {
		if !v.IsZero() {
			list[name] = v.DeepCopy()
		}
	}
	set(p.DefaultRequests, corev1.ResourceCPU, label.CPU)
	set(p.DefaultRequests, corev1.ResourceMemory, label.Memory)
	set(p.DefaultRequests, corev1.ResourceEphemeralStorage, label.Storage)
	set(p.DefaultLimits, corev1.ResourceCPU, label.CPULimit)
	set(p.DefaultLimits, corev1.ResourceMemory, label.MemoryLimit)
	set(p.DefaultLimits, corev1.ResourceEphemeralStorage, label.StorageLimit)
	return p
}

// logPodSecurity logs, once, the Pod Security level each pod label's
// namespaces enforce: the label's pod-security, or the lowest level that
// admits its pod, and says so when a pod needs privileged.
func (l *Launcher) logPodSecurity() {
	for _, pw := range l.pools {
		for i := range pw.pool.Labels {
			label := &pw.pool.Labels[i]
			if label.Type != config.TypePod {
				continue
			}
			if label.PodSecurity != "" {
				l.log.Info("pod security", "provider", pw.provider.Name, "pool", pw.pool.Name, "label", label.Name, "level", label.PodSecurity, "from", "pod-security")
				continue
			}
			res, err := l.resource(context.Background(), pw, label, &zk.Node{}, nil, "start-up", time.Now()) // only shapes the pod
			if err != nil {
				continue // the launch says why
			}
			level, err := kube.PodSecurityFor(&res.Pod, "latest")
			if err != nil {
				l.log.Warn("pod security", "label", label.Name, "err", err)
				continue
			}
			log := l.log.Info
			if level == kube.PodSecurityPrivileged {
				log = l.log.Warn
			}
			log("pod security", "provider", pw.provider.Name, "pool", pw.pool.Name, "label", label.Name, "level", level, "from", "the lowest level that admits the label's pod")
		}
	}
}
