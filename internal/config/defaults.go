package config

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// applyDefaults fills in what the file left unset, as Nodepool does. Where 0
// is a meaningful setting (launch-retries: 0, priority: 0, max-servers: 0),
// "unset" means the key was absent from the file.
func (c *Config) applyDefaults() {
	set := func(path string) bool { _, ok := c.lines[path]; return ok }

	for i := range c.ZooKeeper.Servers {
		if s := &c.ZooKeeper.Servers[i]; !set(indexPath("zookeeper-servers", i) + ".port") {
			s.Port = DefaultZooKeeperPort
		}
	}
	if !set("zookeeper-timeout") {
		c.ZooKeeper.Timeout = DefaultZooKeeperTimeout
	}
	if !set("webapp.port") {
		c.WebApp.Port = DefaultWebAppPort
	}
	if c.WebApp.ListenAddress == "" {
		c.WebApp.ListenAddress = DefaultWebAppListen
	}

	for i := range c.Providers {
		pr := &c.Providers[i]
		pp := indexPath("providers", i)
		if pr.Driver == "" {
			pr.Driver = DriverKubernetes
		}
		if pr.MaxConcurrency < 0 {
			pr.MaxConcurrency = 0 // Nodepool writes -1 for unbounded
		}
		if !set(pp + ".priority") {
			pr.Priority = DefaultPriority
		}
		if !set(pp + ".launch-retries") {
			pr.LaunchRetries = DefaultLaunchRetries
		}
		if !set(pp + ".boot-timeout") {
			pr.BootTimeout = DefaultBootTimeout
		}
		if !set(pp + ".token-expiration") {
			pr.TokenExpiration = DefaultTokenExpiration
		}
		for j := range pr.Pools {
			pl := &pr.Pools[j]
			plp := indexPath(pp+".pools", j)
			if !set(plp + ".priority") {
				pl.Priority = pr.Priority
			}
			if !set(plp + ".max-servers") {
				pl.MaxServers = pr.MaxServers
			}
			if !set(plp + ".max-cores") {
				pl.MaxCores = pr.MaxCores
			}
			if !set(plp + ".max-ram") {
				pl.MaxRAM = pr.MaxRAM
			}
			if pr.MaxResources != nil || pl.MaxResources != nil {
				merged := maps.Clone(pr.MaxResources)
				if merged == nil {
					merged = map[string]int64{}
				}
				maps.Copy(merged, pl.MaxResources)
				pl.MaxResources = merged
			}
			for k := range pl.Labels {
				pl.Labels[k].applyDefaults(&pl.DefaultLabel,
					func(key string) bool { return set(indexPath(plp+".labels", k) + "." + key) },
					func(key string) bool { return set(plp + ".default-label-" + key) })
			}
		}
	}
}

// applyDefaults fills in a pool label from its pool's default-label-* keys.
// Limits are, in order: the label's limit, the pool's default limit, the
// label's request (after its default), or none.
func (l *PoolLabel) applyDefaults(def *LabelDefaults, set, poolSet func(key string) bool) {
	if !set("python-path") {
		l.PythonPath = DefaultPythonPath
	}
	l.applySafetyDefaults(def, set, poolSet)
	if l.Type != TypePod || l.Spec != nil {
		return
	}
	if l.ImagePullPolicy == "" {
		l.ImagePullPolicy = corev1.PullIfNotPresent
	}
	request := func(q *resource.Quantity, key string, poolDefault resource.Quantity) {
		if !set(key) {
			*q = poolDefault
		}
	}
	request(&l.CPU, "cpu", def.CPU)
	request(&l.Memory, "memory", def.Memory)
	request(&l.Storage, "storage", def.Storage)
	limit := func(q *resource.Quantity, key string, poolDefault, req resource.Quantity) {
		switch {
		case set(key):
		case poolSet(key):
			*q = poolDefault
		default:
			*q = req
		}
	}
	limit(&l.CPULimit, "cpu-limit", def.CPULimit, l.CPU)
	limit(&l.MemoryLimit, "memory-limit", def.MemoryLimit, l.Memory)
	limit(&l.StorageLimit, "storage-limit", def.StorageLimit, l.Storage)
	if def.ExtraResources != nil {
		extra := maps.Clone(def.ExtraResources)
		maps.Copy(extra, l.ExtraResources)
		l.ExtraResources = extra
	}
}

// applySafetyDefaults fills in what a node's namespace enforces: the Pod
// Security level (baseline for namespace labels), the network mode, the
// quota, and, for namespace labels, the containers' defaults of the
// LimitRange from cpu, memory, storage and their limits, read as for a pod
// label's container (the label's key, the pool's default-label-* key), then
// kubepool's defaults.
func (l *PoolLabel) applySafetyDefaults(def *LabelDefaults, set, poolSet func(key string) bool) {
	if l.Network == "" {
		l.Network = NetworkOpen
	}
	dq := DefaultPodQuota
	if l.Type == TypeNamespace {
		dq = DefaultNamespaceQuota
		if l.PodSecurity == "" {
			l.PodSecurity = PodSecurityBaseline
		}
	}
	q := &l.Quota
	count := func(v *int64, key string, d int64) {
		if !set("quota." + key) {
			*v = d
		}
	}
	count(&q.Pods, "pods", dq.Pods)
	count(&q.Services, "services", dq.Services)
	count(&q.PersistentVolumeClaims, "persistentvolumeclaims", dq.PersistentVolumeClaims)
	amount := func(v *resource.Quantity, key string, d resource.Quantity) {
		if !set("quota." + key) {
			*v = d.DeepCopy()
		}
	}
	amount(&q.CPU, "cpu", dq.CPU)
	amount(&q.Memory, "memory", dq.Memory)
	amount(&q.EphemeralStorage, "ephemeral-storage", dq.EphemeralStorage)
	if l.Type != TypeNamespace {
		return
	}
	request := func(q *resource.Quantity, key string, poolDefault, kubepoolDefault resource.Quantity) {
		switch {
		case set(key):
		case poolSet(key):
			*q = poolDefault
		default:
			*q = kubepoolDefault
		}
	}
	limit := func(q *resource.Quantity, key string, poolDefault, req resource.Quantity, reqKey string, kubepoolDefault resource.Quantity) {
		switch {
		case set(key):
		case poolSet(key):
			*q = poolDefault
		case set(reqKey) || poolSet(reqKey):
			*q = req // as Nodepool: limits default to requests
		default:
			*q = kubepoolDefault
		}
	}
	request(&l.CPU, "cpu", def.CPU, DefaultContainerCPU)
	request(&l.Memory, "memory", def.Memory, DefaultContainerMemory)
	request(&l.Storage, "storage", def.Storage, DefaultContainerStorage)
	limit(&l.CPULimit, "cpu-limit", def.CPULimit, l.CPU, "cpu", DefaultContainerCPULimit)
	limit(&l.MemoryLimit, "memory-limit", def.MemoryLimit, l.Memory, "memory", DefaultContainerMemoryLimit)
	limit(&l.StorageLimit, "storage-limit", def.StorageLimit, l.Storage, "storage", DefaultContainerStorageLimit)
}
