package config

// The schema: one function per section of nodepool.yaml, each a table of the
// keys the section accepts. To add a key, add a field to the struct and a
// line to its table (and, if it has a default, to defaults.go).

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"sort"
	"strconv"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
)

// ignoredTopLevel are Nodepool keys for its image builder; kubepool has no
// use for them and accepts them so that a whole nodepool.yaml loads.
var ignoredTopLevel = []string{
	"diskimages",
	"elements-dir",
	"images-dir",
	"images-dir-required-free-space",
	"build-log-dir",
	"build-log-retention",
}

// supportedDrivers are the provider drivers kubepool implements.
var supportedDrivers = map[string]bool{DriverKubernetes: true, DriverOpenShift: true, DriverOpenShiftPods: true}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document decodes a whole file.
func (d *decoder) document(data []byte) *Config {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.atLine(0, "", nil, "empty config")
			return c
		}
		d.yamlError(err)
		return c
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.atLine(extra.Line, "", nil, "more than one YAML document; a config is one document")
	} else if !errors.Is(err, io.EOF) {
		d.yamlError(err)
	}
	if len(doc.Content) == 0 {
		d.atLine(0, "", nil, "empty config")
		return c
	}
	root := doc.Content[0]
	known := keys{
		"zookeeper-servers": func(v *yaml.Node, p string) {
			d.list(v, p, func(item *yaml.Node, p string) {
				c.ZooKeeper.Servers = append(c.ZooKeeper.Servers, d.zkServer(item, p))
			})
		},
		"zookeeper-tls": func(v *yaml.Node, p string) {
			tls := &ZooKeeperTLS{}
			present := d.object(v, p, keys{
				"ca":   func(v *yaml.Node, p string) { tls.CA = d.str(v, p) },
				"cert": func(v *yaml.Node, p string) { tls.Cert = d.str(v, p) },
				"key":  func(v *yaml.Node, p string) { tls.Key = d.str(v, p) },
			})
			d.require(v, p, present, "ca", "cert", "key")
			c.ZooKeeper.TLS = tls
		},
		"zookeeper-timeout": func(v *yaml.Node, p string) { c.ZooKeeper.Timeout = d.seconds(v, p) },
		"webapp": func(v *yaml.Node, p string) {
			d.object(v, p, keys{
				"port":           func(v *yaml.Node, p string) { c.WebApp.Port = d.count(v, p) },
				"listen_address": func(v *yaml.Node, p string) { c.WebApp.ListenAddress = d.str(v, p) },
			})
		},
		"labels": func(v *yaml.Node, p string) {
			d.list(v, p, func(item *yaml.Node, p string) { c.Labels = append(c.Labels, d.label(item, p)) })
		},
		"providers": func(v *yaml.Node, p string) {
			d.list(v, p, func(item *yaml.Node, p string) {
				if pr, ok := d.provider(item, p); ok {
					c.Providers = append(c.Providers, pr)
				}
			})
		},
		"max-hold-age": func(v *yaml.Node, p string) { c.MaxHoldAge = d.seconds(v, p) },
		"tenant-resource-limits": func(v *yaml.Node, p string) {
			d.list(v, p, func(item *yaml.Node, p string) {
				c.TenantResourceLimits = append(c.TenantResourceLimits, d.tenantLimit(item, p))
			})
		},
	}
	for _, k := range ignoredTopLevel {
		known[k] = func(v *yaml.Node, p string) {
			c.Ignored = append(c.Ignored, IgnoredKey{Path: p, Line: d.lines[p]})
		}
	}
	if resolve(root).Kind == yaml.ScalarNode && resolve(root).ShortTag() == "!!null" {
		d.atLine(0, "", nil, "empty config")
		return c
	}
	d.object(root, "", known)
	return c
}

func (d *decoder) yamlError(err error) {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		d.atLine(line, "", err, "invalid YAML: %s", m[2])
		return
	}
	d.atLine(0, "", err, "invalid YAML: %v", err)
}

func (d *decoder) zkServer(n *yaml.Node, path string) ZooKeeperServer {
	var s ZooKeeperServer
	present := d.object(n, path, keys{
		"host":   func(v *yaml.Node, p string) { s.Host = d.str(v, p) },
		"port":   func(v *yaml.Node, p string) { s.Port = d.count(v, p) },
		"chroot": func(v *yaml.Node, p string) { s.Chroot = d.str(v, p) },
	})
	d.require(n, path, present, "host")
	return s
}

func (d *decoder) label(n *yaml.Node, path string) Label {
	var l Label
	present := d.object(n, path, keys{
		"name":          func(v *yaml.Node, p string) { l.Name = d.str(v, p) },
		"min-ready":     func(v *yaml.Node, p string) { l.MinReady = d.count(v, p) },
		"max-ready-age": func(v *yaml.Node, p string) { l.MaxReadyAge = d.seconds(v, p) },
	})
	d.require(n, path, present, "name")
	return l
}

func (d *decoder) tenantLimit(n *yaml.Node, path string) TenantResourceLimit {
	t := TenantResourceLimit{MaxServers: Unlimited, MaxCores: Unlimited, MaxRAM: Unlimited}
	pairs, ok := d.mapping(n, path)
	if !ok {
		return t
	}
	d.lines[path] = resolve(n).Line
	seenName := false
	for _, p := range pairs {
		kp := joinPath(path, p.key)
		d.lines[kp] = p.k.Line
		switch p.key {
		case "tenant-name":
			t.TenantName, seenName = d.str(p.v, kp), true
		case "max-servers":
			t.MaxServers = d.limit(p.v, kp)
		case "max-cores":
			t.MaxCores = d.limit(p.v, kp)
		case "max-ram":
			t.MaxRAM = d.limit(p.v, kp)
		default: // Nodepool accepts any other resource name here
			if t.MaxResources == nil {
				t.MaxResources = map[string]int64{}
			}
			t.MaxResources[p.key] = d.limit(p.v, kp)
		}
	}
	if !seenName {
		d.errorf(resolve(n), joinPath(path, "tenant-name"), "required key is missing")
	}
	return t
}

// provider decodes one provider; ok is false for a driver kubepool does not
// implement (reported as an error).
func (d *decoder) provider(n *yaml.Node, path string) (pr Provider, ok bool) {
	// Peek at name and driver first, quietly: the full decode below
	// reports any problem with the mapping itself.
	peek := &decoder{errorList: errorList{lines: map[string]int{}}, budget: d.budget}
	pairs, isMap := peek.mapping(n, path)
	if !isMap {
		d.mapping(n, path) // report why
		return pr, false
	}
	name, driver, driverLine := "", "openstack", resolve(n).Line
	for _, p := range pairs {
		if v := resolve(p.v); v != nil && v.Kind == yaml.ScalarNode {
			switch p.key {
			case "name":
				name = v.Value
			case "driver":
				driver, driverLine = v.Value, p.k.Line
			}
		}
	}
	if !supportedDrivers[driver] {
		how := ""
		if driverLine == resolve(n).Line {
			how = " (Nodepool's default when driver is not set)"
		}
		d.atLine(driverLine, joinPath(path, "driver"), nil,
			"provider %q uses driver %q%s; kubepool implements the kubernetes, openshift and openshiftpods drivers", name, driver, how)
		return pr, false
	}

	pr = Provider{MaxServers: Unlimited, MaxCores: Unlimited, MaxRAM: Unlimited}
	// The openshift drivers name max-servers after what they make; as in
	// Nodepool, that key wins over max-servers.
	var maxNodes *int64
	known := keys{
		"name":            func(v *yaml.Node, p string) { pr.Name = d.str(v, p) },
		"driver":          func(v *yaml.Node, p string) { pr.Driver = d.str(v, p) },
		"context":         func(v *yaml.Node, p string) { pr.Context = d.str(v, p) },
		"priority":        func(v *yaml.Node, p string) { pr.Priority = int(d.integer(v, p)) },
		"max-concurrency": func(v *yaml.Node, p string) { pr.MaxConcurrency = int(d.integer(v, p)) },
		"launch-retries":  func(v *yaml.Node, p string) { pr.LaunchRetries = d.count(v, p) },
		"boot-timeout":    func(v *yaml.Node, p string) { pr.BootTimeout = d.seconds(v, p) },
		"max-servers":     func(v *yaml.Node, p string) { pr.MaxServers = d.limit(v, p) },
		"max-cores":       func(v *yaml.Node, p string) { pr.MaxCores = d.limit(v, p) },
		"max-ram":         func(v *yaml.Node, p string) { pr.MaxRAM = d.limit(v, p) },
		"max-resources":   func(v *yaml.Node, p string) { pr.MaxResources = d.intMap(v, p) },
		"pools": func(v *yaml.Node, p string) {
			d.list(v, p, func(item *yaml.Node, p string) { pr.Pools = append(pr.Pools, d.pool(item, p, driver)) })
		},
		// kubepool
		"token-expiration":  func(v *yaml.Node, p string) { pr.TokenExpiration = d.seconds(v, p) },
		"buildset-registry": func(v *yaml.Node, p string) { pr.BuildsetRegistry = d.buildsetRegistry(v, p) },
	}
	switch driver {
	case DriverOpenShift:
		known["max-projects"] = func(v *yaml.Node, p string) { m := d.limit(v, p); maxNodes = &m }
	case DriverOpenShiftPods:
		known["max-pods"] = func(v *yaml.Node, p string) { m := d.limit(v, p); maxNodes = &m }
	}
	present := d.object(n, path, known)
	if maxNodes != nil {
		pr.MaxServers = *maxNodes
	}
	d.require(n, path, present, "name", "pools")
	return pr, true
}

func (d *decoder) pool(n *yaml.Node, path, driver string) Pool {
	var pl Pool
	def := &pl.DefaultLabel
	present := d.object(n, path, keys{
		"name":            func(v *yaml.Node, p string) { pl.Name = d.str(v, p) },
		"priority":        func(v *yaml.Node, p string) { pl.Priority = int(d.integer(v, p)) },
		"max-servers":     func(v *yaml.Node, p string) { pl.MaxServers = d.limit(v, p) },
		"max-cores":       func(v *yaml.Node, p string) { pl.MaxCores = d.limit(v, p) },
		"max-ram":         func(v *yaml.Node, p string) { pl.MaxRAM = d.limit(v, p) },
		"max-resources":   func(v *yaml.Node, p string) { pl.MaxResources = d.intMap(v, p) },
		"node-attributes": func(v *yaml.Node, p string) { pl.NodeAttributes = d.anyMap(v, p) },

		"default-label-cpu":             func(v *yaml.Node, p string) { def.CPU = d.quantity(v, p, cores) },
		"default-label-memory":          func(v *yaml.Node, p string) { def.Memory = d.quantity(v, p, mebibytes) },
		"default-label-storage":         func(v *yaml.Node, p string) { def.Storage = d.quantity(v, p, megabytes) },
		"default-label-cpu-limit":       func(v *yaml.Node, p string) { def.CPULimit = d.quantity(v, p, cores) },
		"default-label-memory-limit":    func(v *yaml.Node, p string) { def.MemoryLimit = d.quantity(v, p, mebibytes) },
		"default-label-storage-limit":   func(v *yaml.Node, p string) { def.StorageLimit = d.quantity(v, p, megabytes) },
		"default-label-extra-resources": func(v *yaml.Node, p string) { def.ExtraResources = d.intMap(v, p) },

		"labels": func(v *yaml.Node, p string) {
			d.list(v, p, func(item *yaml.Node, p string) { pl.Labels = append(pl.Labels, d.poolLabel(item, p, driver)) })
		},
	})
	d.require(n, path, present, "name", "labels")
	return pl
}

// specCompatible are the label keys that may accompany spec: Nodepool builds
// nothing of its own around a user's pod spec except metadata.
// image-pull-secrets adds to the spec's imagePullSecrets, so that secrets
// copied from another namespace (kubepool) can serve a spec too.
var specCompatible = map[string]bool{"name": true, "type": true, "spec": true, "labels": true, "dynamic-labels": true, "annotations": true, "git-sidecar": true,
	"pod-security": true, "quota": true, "network": true, "username": true, "image-pull-secrets": true}

func (d *decoder) poolLabel(n *yaml.Node, path, driver string) PoolLabel {
	var l PoolLabel
	present := d.object(n, path, keys{
		"name":            func(v *yaml.Node, p string) { l.Name = d.str(v, p) },
		"type":            func(v *yaml.Node, p string) { l.Type = LabelType(d.str(v, p)) },
		"image":           func(v *yaml.Node, p string) { l.Image = d.str(v, p) },
		"image-pull":      func(v *yaml.Node, p string) { l.ImagePullPolicy = corev1.PullPolicy(d.str(v, p)) },
		"python-path":     func(v *yaml.Node, p string) { l.PythonPath = d.str(v, p) },
		"shell-type":      func(v *yaml.Node, p string) { l.ShellType = d.str(v, p) },
		"username":        func(v *yaml.Node, p string) { l.Username = d.str(v, p) },
		"cpu":             func(v *yaml.Node, p string) { l.CPU = d.quantity(v, p, cores) },
		"memory":          func(v *yaml.Node, p string) { l.Memory = d.quantity(v, p, mebibytes) },
		"storage":         func(v *yaml.Node, p string) { l.Storage = d.quantity(v, p, megabytes) },
		"cpu-limit":       func(v *yaml.Node, p string) { l.CPULimit = d.quantity(v, p, cores) },
		"memory-limit":    func(v *yaml.Node, p string) { l.MemoryLimit = d.quantity(v, p, mebibytes) },
		"storage-limit":   func(v *yaml.Node, p string) { l.StorageLimit = d.quantity(v, p, megabytes) },
		"gpu":             func(v *yaml.Node, p string) { l.GPU = d.quantity(v, p, plainCount) },
		"gpu-resource":    func(v *yaml.Node, p string) { l.GPUResource = corev1.ResourceName(d.str(v, p)) },
		"extra-resources": func(v *yaml.Node, p string) { l.ExtraResources = d.intMap(v, p) },
		"env": func(v *yaml.Node, p string) {
			d.list(v, p, func(item *yaml.Node, p string) {
				var e corev1.EnvVar
				if d.kube(item, p, &e) {
					l.Env = append(l.Env, e)
				}
			})
		},
		"node-selector":  func(v *yaml.Node, p string) { l.NodeSelector = d.strMap(v, p) },
		"privileged":     func(v *yaml.Node, p string) { b := d.boolean(v, p); l.Privileged = &b },
		"scheduler-name": func(v *yaml.Node, p string) { l.SchedulerName = d.str(v, p) },
		"volumes": func(v *yaml.Node, p string) {
			d.list(v, p, func(item *yaml.Node, p string) {
				var vol corev1.Volume
				if d.kube(item, p, &vol) {
					l.Volumes = append(l.Volumes, vol)
				}
			})
		},
		"volume-mounts": func(v *yaml.Node, p string) {
			d.list(v, p, func(item *yaml.Node, p string) {
				var m corev1.VolumeMount
				if d.kube(item, p, &m) {
					l.VolumeMounts = append(l.VolumeMounts, m)
				}
			})
		},
		"labels":         func(v *yaml.Node, p string) { l.Labels = d.strMap(v, p) },
		"dynamic-labels": func(v *yaml.Node, p string) { l.DynamicLabels = d.strMap(v, p) },
		"git-sidecar": func(v *yaml.Node, p string) {
			gs := &GitSidecar{}
			present := d.object(v, p, keys{
				"image":      func(v *yaml.Node, p string) { gs.Image = d.str(v, p) },
				"path":       func(v *yaml.Node, p string) { gs.Path = d.str(v, p) },
				"size-limit": func(v *yaml.Node, p string) { gs.SizeLimit = d.quantity(v, p, mebibytes) },
			})
			d.require(v, p, present, "image", "path")
			l.GitSidecar = gs
		},
		"annotations": func(v *yaml.Node, p string) { l.Annotations = d.strMap(v, p) },
		"image-pull-secrets": func(v *yaml.Node, p string) {
			d.list(v, p, func(item *yaml.Node, p string) {
				var s ImagePullSecret
				present := d.object(item, p, keys{
					"name":      func(v *yaml.Node, p string) { s.Name = d.str(v, p) },
					"namespace": func(v *yaml.Node, p string) { s.Namespace = d.str(v, p) },
				})
				d.require(item, p, present, "name")
				l.ImagePullSecrets = append(l.ImagePullSecrets, s)
			})
		},
		// kubepool
		"role":            func(v *yaml.Node, p string) { l.Role = d.str(v, p) },
		"buildset-shared": func(v *yaml.Node, p string) { l.BuildsetShared = d.boolean(v, p) },
		// kubepool: what a node's namespace enforces
		"pod-security": func(v *yaml.Node, p string) { l.PodSecurity = PodSecurityLevel(d.str(v, p)) },
		"network":      func(v *yaml.Node, p string) { l.Network = NetworkMode(d.str(v, p)) },
		"quota": func(v *yaml.Node, p string) {
			q := &l.Quota
			d.object(v, p, keys{
				"pods":                   func(v *yaml.Node, p string) { q.Pods = d.limit(v, p) },
				"services":               func(v *yaml.Node, p string) { q.Services = d.limit(v, p) },
				"persistentvolumeclaims": func(v *yaml.Node, p string) { q.PersistentVolumeClaims = d.limit(v, p) },
				"cpu":                    func(v *yaml.Node, p string) { q.CPU = d.quantity(v, p, cores) },
				"memory":                 func(v *yaml.Node, p string) { q.Memory = d.quantity(v, p, mebibytes) },
				"ephemeral-storage":      func(v *yaml.Node, p string) { q.EphemeralStorage = d.quantity(v, p, megabytes) },
			})
		},
		"spec": func(v *yaml.Node, p string) {
			if r := resolve(v); r == nil || r.Kind != yaml.MappingNode {
				d.mapping(v, p) // report the type
				return
			}
			spec := &corev1.PodSpec{}
			if d.kube(v, p, spec) {
				l.Spec = spec
			}
		},
	})
	if driver == DriverOpenShiftPods {
		// Every openshiftpods label is a pod; Nodepool's has no type key.
		if _, ok := present["type"]; !ok {
			l.Type = TypePod
		}
		d.require(n, path, present, "name")
	} else {
		d.require(n, path, present, "name", "type")
	}
	if _, ok := present["spec"]; ok {
		extra := make([]string, 0, len(present))
		for k := range present {
			if !specCompatible[k] {
				extra = append(extra, k)
			}
		}
		sort.Slice(extra, func(i, j int) bool {
			return d.lines[joinPath(path, extra[i])] < d.lines[joinPath(path, extra[j])]
		})
		for _, k := range extra {
			d.atLine(d.lines[joinPath(path, k)], joinPath(path, k), nil,
				"not allowed with spec: a spec is the whole pod; set this inside it")
		}
	}
	return l
}
