package config

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Resources is what one node of a label counts against quota, in Nodepool's
// units. It is also the node record's "resources" field.
type Resources struct {
	Cores     float64 // CPU cores requested
	RAM       int64   // MiB requested, rounded up
	Instances int64   // always 1
	// Extra holds "ephemeral-storage" (MB, rounded up), the GPU resource
	// and the label's extra-resources.
	Extra map[string]float64
}

// Resources returns what a node of this label counts against quota. A pod
// label's is computed as Nodepool's kubernetes driver does: cpu as cores,
// memory as ram (MiB), storage as ephemeral-storage (MB), the gpu under its
// resource name, plus extra-resources; one instance. A namespace label's is
// what its namespace may use, its Quota (see Quota.Resources), plus
// extra-resources: Nodepool counted one instance only, though a job may
// fill the namespace with pods. Labels with a spec count one instance and
// their extra-resources only, as in Nodepool.
func (l *PoolLabel) Resources() Resources {
	r := Resources{Instances: 1}
	if l.Type == TypeNamespace {
		r = l.Quota.Resources()
	}
	add := func(k string, v float64) {
		if r.Extra == nil {
			r.Extra = map[string]float64{}
		}
		r.Extra[k] = v
	}
	if l.Type == TypePod && l.Spec == nil {
		r.Cores = l.CPU.AsApproximateFloat64()
		r.RAM = ceilDiv(l.Memory, mib)
		if !l.Storage.IsZero() {
			add("ephemeral-storage", float64(ceilDiv(l.Storage, mb)))
		}
		if !l.GPU.IsZero() && l.GPUResource != "" {
			add(string(l.GPUResource), l.GPU.AsApproximateFloat64())
		}
	}
	for k, v := range l.ExtraResources {
		add(k, float64(v))
	}
	return r
}

// Map returns r as the node record's "resources" dict: cores, ram and
// instances always, then the extras.
func (r Resources) Map() map[string]float64 {
	m := map[string]float64{"cores": r.Cores, "ram": float64(r.RAM), "instances": float64(r.Instances)}
	maps.Copy(m, r.Extra)
	return m
}

// ceilDiv returns q / unit rounded up, for quantities of bytes.
func ceilDiv(q resource.Quantity, unit int64) int64 {
	v := q.Value() // rounds up to a whole byte
	if v <= 0 {
		return 0
	}
	return (v-1)/unit + 1
}

// ResourceRequirements returns the container's requests and limits for a pod
// label without a spec, as Nodepool's driver sets them: cpu, memory and
// ephemeral-storage from the label (after defaults), and the gpu resource as
// both request and limit.
func (l *PoolLabel) ResourceRequirements() corev1.ResourceRequirements {
	var rr corev1.ResourceRequirements
	set := func(list *corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
		if q.IsZero() {
			return
		}
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		(*list)[name] = q.DeepCopy()
	}
	set(&rr.Requests, corev1.ResourceCPU, l.CPU)
	set(&rr.Requests, corev1.ResourceMemory, l.Memory)
	set(&rr.Requests, corev1.ResourceEphemeralStorage, l.Storage)
	set(&rr.Limits, corev1.ResourceCPU, l.CPULimit)
	set(&rr.Limits, corev1.ResourceMemory, l.MemoryLimit)
	set(&rr.Limits, corev1.ResourceEphemeralStorage, l.StorageLimit)
	if l.GPUResource != "" {
		set(&rr.Requests, l.GPUResource, l.GPU)
		set(&rr.Limits, l.GPUResource, l.GPU)
	}
	return rr
}
