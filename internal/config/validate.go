package config

import (
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/api/validate/content"
)

// Validate checks what decoding alone cannot: required values, names that
// must be unique or must refer to each other, image references, and values
// Kubernetes would refuse. Parse calls it; call it again after changing a
// Config in code. All problems are reported, each a *FieldError.
func (c *Config) Validate() error {
	v := &errorList{file: c.File, lines: c.lines}

	if len(c.ZooKeeper.Servers) == 0 {
		v.at("zookeeper-servers", "at least one ZooKeeper server is required")
	}
	for i, s := range c.ZooKeeper.Servers {
		p := indexPath("zookeeper-servers", i)
		if s.Host == "" {
			v.at(p+".host", "must not be empty")
		}
		if s.Port < 1 || s.Port > 65535 {
			v.at(p+".port", "%d is not a port number", s.Port)
		}
		if s.Chroot != "" && !strings.HasPrefix(s.Chroot, "/") {
			v.at(p+".chroot", "%q must start with /", s.Chroot)
		}
		if first := c.ZooKeeper.Servers[0].Chroot; s.Chroot != first {
			v.at(p+".chroot", "%q differs from the first server's %q; one ensemble has one chroot", s.Chroot, first)
		}
	}
	if tls := c.ZooKeeper.TLS; tls != nil {
		for _, f := range []struct{ key, val string }{{"ca", tls.CA}, {"cert", tls.Cert}, {"key", tls.Key}} {
			if f.val == "" {
				v.at("zookeeper-tls."+f.key, "must not be empty")
			}
		}
	}
	if c.ZooKeeper.Timeout <= 0 {
		v.at("zookeeper-timeout", "must be positive")
	}
	if c.WebApp.Port < 1 || c.WebApp.Port > 65535 {
		v.at("webapp.port", "%d is not a port number", c.WebApp.Port)
	}

	labels := map[string]int{} // name -> index
	for i, l := range c.Labels {
		p := indexPath("labels", i)
		switch first, dup := labels[l.Name]; {
		case l.Name == "":
			v.at(p+".name", "must not be empty")
		case dup:
			v.at(p+".name", "label %q is already defined (labels[%d])", l.Name, first)
		default:
			labels[l.Name] = i
		}
		if l.MinReady < 0 {
			v.at(p+".min-ready", "must not be negative")
		}
	}
	for i, t := range c.TenantResourceLimits {
		if t.TenantName == "" {
			v.at(indexPath("tenant-resource-limits", i)+".tenant-name", "must not be empty")
		}
	}

	served := map[string]bool{}
	providers := map[string]int{}
	for i := range c.Providers {
		pr := &c.Providers[i]
		p := indexPath("providers", i)
		switch first, dup := providers[pr.Name]; {
		case pr.Name == "":
			v.at(p+".name", "must not be empty")
		case dup:
			v.at(p+".name", "provider %q is already defined (providers[%d])", pr.Name, first)
		default:
			providers[pr.Name] = i
		}
		if !supportedDrivers[pr.Driver] {
			v.at(p+".driver", "provider %q uses driver %q; kubepool implements the kubernetes, openshift and openshiftpods drivers", pr.Name, pr.Driver)
		}
		if pr.LaunchRetries < 0 {
			v.at(p+".launch-retries", "must not be negative")
		}
		if pr.BootTimeout <= 0 {
			v.at(p+".boot-timeout", "must be positive")
		}
		if pr.TokenExpiration < MinTokenExpiration || pr.TokenExpiration > MaxTokenExpiration {
			v.at(p+".token-expiration", "%v is out of range (%v to %v)", pr.TokenExpiration, MinTokenExpiration, MaxTokenExpiration)
		}
		validateLimits(v, p, pr.MaxServers, pr.MaxCores, pr.MaxRAM, pr.MaxResources)
		if pr.BuildsetRegistry != nil {
			pr.BuildsetRegistry.validate(v, p+".buildset-registry")
		}
		if len(pr.Pools) == 0 {
			v.at(p+".pools", "a provider needs at least one pool")
		}
		pools := map[string]int{}
		for j := range pr.Pools {
			pl := &pr.Pools[j]
			plp := indexPath(p+".pools", j)
			switch first, dup := pools[pl.Name]; {
			case pl.Name == "":
				v.at(plp+".name", "must not be empty")
			case dup:
				v.at(plp+".name", "pool %q is already defined in provider %q (pools[%d])", pl.Name, pr.Name, first)
			default:
				pools[pl.Name] = j
			}
			validateLimits(v, plp, pl.MaxServers, pl.MaxCores, pl.MaxRAM, pl.MaxResources)
			if pr.Driver == DriverOpenShiftPods && pl.Name != "" {
				if errs := content.IsDNS1123Label(pl.Name); len(errs) > 0 {
					v.at(plp+".name", "%q is the project the pool's pods run in, and not a valid project name: %s", pl.Name, strings.Join(errs, "; "))
				}
			}
			inPool := map[string]int{}
			for k := range pl.Labels {
				l := &pl.Labels[k]
				lp := indexPath(plp+".labels", k)
				if first, dup := inPool[l.Name]; dup && l.Name != "" {
					v.at(lp+".name", "label %q is already in this pool (labels[%d])", l.Name, first)
				} else {
					inPool[l.Name] = k
				}
				if _, ok := labels[l.Name]; !ok && l.Name != "" {
					v.at(lp+".name", "label %q is not defined in the top-level labels", l.Name)
				}
				served[l.Name] = true
				l.validate(v, lp, pr.Driver)
			}
		}
	}
	for i, l := range c.Labels {
		if l.Name != "" && !served[l.Name] {
			v.at(indexPath("labels", i)+".name", "label %q is not served by any provider pool", l.Name)
		}
	}
	c.Warnings = v.warns
	return v.err()
}

func validateLimits(v *errorList, path string, servers, cores, ram int64, other map[string]int64) {
	for _, l := range []struct {
		key string
		val int64
	}{{"max-servers", servers}, {"max-cores", cores}, {"max-ram", ram}} {
		if l.val < 0 {
			v.at(path+"."+l.key, "must not be negative")
		}
	}
	for _, key := range slices.Sorted(maps.Keys(other)) {
		if other[key] < 0 {
			v.at(path+".max-resources."+key, "must not be negative")
		}
	}
}

// labelTypes are the label types each driver serves, as Nodepool's do.
var labelTypes = map[string][]LabelType{
	DriverKubernetes:    {TypePod, TypeNamespace},
	DriverOpenShift:     {TypePod, TypeProject},
	DriverOpenShiftPods: {TypePod},
}

func (l *PoolLabel) validate(v *errorList, p, driver string) {
	if l.Name == "" {
		v.at(p+".name", "must not be empty")
	}
	if types, ok := labelTypes[driver]; ok && !slices.Contains(types, l.Type) {
		want := make([]string, len(types))
		for i, t := range types {
			want[i] = string(t)
		}
		v.at(p+".type", "%q is not a label type of the %s driver (want %s)", l.Type, driver, strings.Join(want, " or "))
	}
	if l.Type != TypePod && l.Spec != nil {
		v.at(p+".spec", "only pod labels take a spec")
	}
	if l.BuildsetShared && l.Type != TypeNamespace {
		v.at(p+".buildset-shared", "only namespace labels can share a namespace within a buildset")
	}
	switch {
	case l.Role == "":
	case l.Type == TypePod:
		v.at(p+".role", "only project and namespace labels take a role (a pod node's token may use its pod only)")
	case l.Role != RoleAdmin:
		v.at(p+".role", "%q is not a role (want %s, or no role key for kubepool's least-privilege Role)", l.Role, RoleAdmin)
	}
	for i, s := range l.ImagePullSecrets {
		sp := indexPath(p+".image-pull-secrets", i)
		if errs := content.IsDNS1123Subdomain(s.Name); len(errs) > 0 {
			v.at(sp+".name", "%q is not a secret name: %s", s.Name, strings.Join(errs, "; "))
		}
		if s.Namespace != "" {
			if errs := content.IsDNS1123Label(s.Namespace); len(errs) > 0 {
				v.at(sp+".namespace", "%q is not a namespace name: %s", s.Namespace, strings.Join(errs, "; "))
			}
		}
		if l.Type != TypePod {
			// Nodepool accepts it there too, and ignores it.
			v.warn(sp, "ignored: only pod labels pull images")
		}
	}
	if l.PythonPath == "" {
		v.at(p+".python-path", "must not be empty")
	}
	if l.Username != "" && (l.Type != TypePod || !validUsername.MatchString(l.Username)) {
		if l.Type != TypePod {
			v.at(p+".username", "only pod labels have a user to run jobs as")
		} else {
			v.at(p+".username", "%q is not a user name (want lower-case letters, digits, _ and -, starting with a letter or _)", l.Username)
		}
	}
	l.validateSafety(v, p)
	validateMetadata(v, p+".labels", l.Labels, true)
	validateMetadata(v, p+".dynamic-labels", l.DynamicLabels, false)
	validateMetadata(v, p+".annotations", l.Annotations, false)
	for _, k := range slices.Sorted(maps.Keys(l.DynamicLabels)) {
		f := l.DynamicLabels[k]
		if err := checkFormat(f); err != nil {
			v.at(p+".dynamic-labels."+k, "%q: %v", f, err)
		}
	}
	if gs := l.GitSidecar; gs != nil {
		switch {
		case l.Type != TypePod:
			v.at(p+".git-sidecar", "only pod labels have pods to add a sidecar to")
		case !path.IsAbs(gs.Path) || path.Clean(gs.Path) == "/":
			v.at(p+".git-sidecar.path", "%q: want an absolute path other than /", gs.Path)
		}
		if gs.Image != "" {
			validateImage(v, p+".git-sidecar.image", gs.Image)
		}
		// The sidecar is a container named "git" with a volume
		// "kubepool-git" (internal/nodepod): the pod must have neither.
		switch {
		case l.Spec == nil && strings.Trim(strings.ToLower(l.Name), "-") == sidecarContainer:
			v.at(p+".git-sidecar", "label %q names its pod's container %q, which the git sidecar takes: rename the label or give it a spec", l.Name, sidecarContainer)
		case l.Spec != nil && slices.ContainsFunc(l.Spec.Containers, func(c corev1.Container) bool { return c.Name == sidecarContainer }):
			v.at(p+".git-sidecar", "the spec has a container named %q, which the git sidecar takes: rename it", sidecarContainer)
		case l.Spec != nil && slices.ContainsFunc(l.Spec.Volumes, func(vol corev1.Volume) bool { return vol.Name == sidecarVolume }),
			slices.ContainsFunc(l.Volumes, func(vol corev1.Volume) bool { return vol.Name == sidecarVolume }):
			v.at(p+".git-sidecar", "the pod has a volume named %q, which the git sidecar takes: rename it", sidecarVolume)
		}
	}
	if l.Type != TypePod {
		return
	}
	if l.Spec != nil {
		if len(l.Spec.Containers) == 0 {
			v.at(p+".spec.containers", "a pod spec needs at least one container; the first one is where jobs run")
		}
		for i, ctr := range l.Spec.Containers {
			cp := indexPath(p+".spec.containers", i)
			if ctr.Name == "" {
				v.at(cp+".name", "must not be empty")
			}
			if ctr.Image == "" {
				v.at(cp+".image", "must not be empty")
			} else {
				validateImage(v, cp+".image", ctr.Image)
			}
		}
		return
	}
	if l.Image == "" {
		// Nodepool accepts this and fails every launch; kubepool serves
		// the label and declines its requests, saying why.
		l.Unlaunchable = "pod label " + l.Name + " has no image (and no spec): its nodes can never launch"
		v.warn(p+".image", "a pod label needs an image; requests for label %q will be declined", l.Name)
	} else {
		validateImage(v, p+".image", l.Image)
	}
	switch l.ImagePullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		v.at(p+".image-pull", "%q is not a pull policy (want IfNotPresent, Always or Never)", l.ImagePullPolicy)
	}
	for _, r := range []struct {
		key        string
		req, limit resource.Quantity
	}{{"cpu", l.CPU, l.CPULimit}, {"memory", l.Memory, l.MemoryLimit}, {"storage", l.Storage, l.StorageLimit}} {
		if !r.limit.IsZero() && r.limit.Cmp(r.req) < 0 {
			v.at(p+"."+r.key+"-limit", "limit %s is less than the request %s", r.limit.String(), r.req.String())
		}
	}
	if !l.GPU.IsZero() && l.GPUResource == "" {
		v.at(p+".gpu-resource", "gpu needs gpu-resource, the resource name to request (e.g. nvidia.com/gpu)")
	}
	if l.GPUResource != "" {
		if errs := content.IsLabelKey(string(l.GPUResource)); len(errs) > 0 {
			v.at(p+".gpu-resource", "%q is not a resource name: %s", l.GPUResource, strings.Join(errs, "; "))
		}
	}
	for i, e := range l.Env {
		if e.Name == "" {
			v.at(indexPath(p+".env", i)+".name", "must not be empty")
		}
	}
	validateMetadata(v, p+".node-selector", l.NodeSelector, true)
	volumes := map[string]bool{}
	for _, vol := range l.Volumes {
		volumes[vol.Name] = true
	}
	for i, m := range l.VolumeMounts {
		if !volumes[m.Name] {
			v.at(indexPath(p+".volume-mounts", i)+".name", "no volume named %q in volumes", m.Name)
		}
	}
}

// validateMetadata checks label (or annotation) keys, and values when they
// must be label values.
func validateMetadata(v *errorList, path string, m map[string]string, values bool) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		val := m[k]
		if errs := content.IsLabelKey(k); len(errs) > 0 {
			v.at(path+"."+k, "%q is not a valid key: %s", k, strings.Join(errs, "; "))
		}
		if values {
			if errs := content.IsLabelValue(val); len(errs) > 0 {
				v.at(path+"."+k, "%q is not a valid label value: %s", val, strings.Join(errs, "; "))
			}
		}
	}
}

func validateImage(v *errorList, path, image string) {
	if _, err := name.ParseReference(image); err != nil {
		v.at(path, "%q is not a valid image reference", image)
	}
}

// checkFormat checks a dynamic-labels value: a Python format string whose
// fields are attributes of the request, such as "{request.id}" or
// "{request.requestor_data[job_name]}". Literal braces are doubled.
func checkFormat(f string) error {
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '{':
			if i+1 < len(f) && f[i+1] == '{' {
				i++
				continue
			}
			end := strings.IndexByte(f[i:], '}')
			if end < 0 {
				return fmt.Errorf("unclosed {")
			}
			field := f[i+1 : i+end]
			if j := strings.IndexAny(field, "!:"); j >= 0 {
				field = field[:j]
			}
			if field != "request" && !strings.HasPrefix(field, "request.") && !strings.HasPrefix(field, "request[") {
				return fmt.Errorf("field {%s}: only {request...} is available", field)
			}
			i += end
		case '}':
			if i+1 < len(f) && f[i+1] == '}' {
				i++
				continue
			}
			return fmt.Errorf("single } (write }} for a literal brace)")
		}
	}
	return nil
}

// validUsername is a portable POSIX user name, as useradd accepts by default.
var validUsername = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// validateSafety checks the keys of what a node's namespace enforces.
func (l *PoolLabel) validateSafety(v *errorList, p string) {
	if l.PodSecurity != "" && !slices.Contains(podSecurityLevels, l.PodSecurity) {
		v.at(p+".pod-security", "%q is not a Pod Security level (want restricted, baseline or privileged)", l.PodSecurity)
	}
	if !slices.Contains(networkModes, l.Network) {
		v.at(p+".network", "%q is not a network mode (want open or isolated)", l.Network)
	}
	if l.Type != TypeNamespace {
		return
	}
	for _, r := range []struct {
		key, quotaKey     string
		req, limit, quota resource.Quantity
	}{
		{"cpu", "cpu", l.CPU, l.CPULimit, l.Quota.CPU},
		{"memory", "memory", l.Memory, l.MemoryLimit, l.Quota.Memory},
		{"storage", "ephemeral-storage", l.Storage, l.StorageLimit, l.Quota.EphemeralStorage},
	} {
		switch {
		case r.limit.Cmp(r.req) < 0:
			v.at(p+"."+r.key+"-limit", "limit %s is less than the request %s", r.limit.String(), r.req.String())
		case !r.quota.IsZero() && r.quota.Cmp(r.limit) < 0:
			v.at(p+".quota."+r.quotaKey, "%s is less than one container's default limit %s (%s-limit): no pod without resources would fit", r.quota.String(), r.limit.String(), r.key)
		}
	}
}

// The git sidecar's container and volume names (internal/nodepod's
// GitContainer and GitVolume, which imports this package).
const (
	sidecarContainer = "git"
	sidecarVolume    = "kubepool-git"
)
