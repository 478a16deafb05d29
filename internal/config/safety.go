package config

import (
	"k8s.io/apimachinery/pkg/api/resource"
)

// PodSecurityLevel is a Pod Security Standard, enforced by the API server's
// Pod Security Admission on a node's namespace (the label's pod-security
// key, kubepool's addition).
type PodSecurityLevel string

// Pod Security Standards, from the most to the least restrictive.
const (
	PodSecurityRestricted PodSecurityLevel = "restricted"
	PodSecurityBaseline   PodSecurityLevel = "baseline"
	PodSecurityPrivileged PodSecurityLevel = "privileged"
)

// podSecurityLevels are the values pod-security accepts, for messages.
var podSecurityLevels = []PodSecurityLevel{PodSecurityRestricted, PodSecurityBaseline, PodSecurityPrivileged}

// NetworkMode is the label's network key (kubepool): what a node's
// NetworkPolicy lets its pods reach. Ingress is always limited to the
// node's own namespace.
type NetworkMode string

// Network modes.
const (
	// NetworkOpen leaves egress open.
	NetworkOpen NetworkMode = "open"
	// NetworkIsolated denies egress except to the cluster's DNS and the
	// Kubernetes API server.
	NetworkIsolated NetworkMode = "isolated"
)

var networkModes = []NetworkMode{NetworkOpen, NetworkIsolated}

// Quota is the label's quota key (kubepool): what one node's namespace may
// use in total, made a ResourceQuota. CPU, Memory and EphemeralStorage bound
// both the requests and the limits of all the namespace's pods; zero
// quantities are not bounded. Counts are always bounded.
type Quota struct {
	Pods                   int64
	Services               int64
	PersistentVolumeClaims int64
	CPU                    resource.Quantity
	Memory                 resource.Quantity
	EphemeralStorage       resource.Quantity
}

// Defaults of the quota of a namespace label: room for a container-native
// job (a few services and their pods) and no more.
var (
	DefaultNamespaceQuota = Quota{
		Pods:                   20,
		Services:               10,
		PersistentVolumeClaims: 5,
		CPU:                    resource.MustParse("4"),
		Memory:                 resource.MustParse("8Gi"),
		EphemeralStorage:       resource.MustParse("20Gi"),
	}
	// A pod label's namespace holds its one pod; its token cannot make
	// more, and the pod's own resources bound what it uses.
	DefaultPodQuota = Quota{Pods: 1}
)

// Container defaults of a namespace label's LimitRange where neither the
// label (cpu, memory, storage, *-limit) nor its pool (default-label-*) sets
// them: a pod a job makes without resources gets these.
var (
	DefaultContainerCPU          = resource.MustParse("100m")
	DefaultContainerMemory       = resource.MustParse("128Mi")
	DefaultContainerStorage      = resource.MustParse("100Mi")
	DefaultContainerCPULimit     = resource.MustParse("1")
	DefaultContainerMemoryLimit  = resource.MustParse("1Gi")
	DefaultContainerStorageLimit = resource.MustParse("1Gi")
)

// Resources returns what a namespace under q may use, as a node's resources
// record counts it: cores from cpu, ram (MiB) from memory,
// ephemeral-storage (MB) from ephemeral-storage; one instance.
func (q Quota) Resources() Resources {
	r := Resources{Instances: 1, Cores: q.CPU.AsApproximateFloat64(), RAM: ceilDiv(q.Memory, mib)}
	if !q.EphemeralStorage.IsZero() {
		r.Extra = map[string]float64{"ephemeral-storage": float64(ceilDiv(q.EphemeralStorage, mb))}
	}
	return r
}
