package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Unlimited is the value of a quota limit (max-servers, max-cores, max-ram)
// that the config does not set.
const Unlimited int64 = math.MaxInt64

// Defaults and bounds.
const (
	DefaultZooKeeperPort    = 2181
	DefaultZooKeeperTimeout = 10 * time.Second
	DefaultWebAppPort       = 8005
	DefaultWebAppListen     = "0.0.0.0"
	DefaultPriority         = 100
	DefaultLaunchRetries    = 3
	DefaultPythonPath       = "auto"

	// DefaultBootTimeout bounds how long a node may take to become ready:
	// Nodepool's kubernetes driver waited 300 s for a pod to run.
	DefaultBootTimeout = 300 * time.Second

	// DefaultTokenExpiration is how long a node's service-account token
	// lives (kubepool): a long job, or a node held for debugging, keeps
	// working for a working day.
	DefaultTokenExpiration = 8 * time.Hour
	// MinTokenExpiration is the shortest expiry the TokenRequest API grants.
	MinTokenExpiration = 10 * time.Minute
	// MaxTokenExpiration caps token-expiration: a leaked token must die.
	MaxTokenExpiration = 48 * time.Hour
)

// Config is a launcher config: Nodepool's nodepool.yaml with kubernetes
// providers, plus kubepool's additions. Parse fills in every default, so
// consumers read values without checking for zero.
type Config struct {
	// File is the name the config was read under; errors are reported
	// against it.
	File string

	ZooKeeper ZooKeeperConfig
	WebApp    WebApp
	Labels    []Label
	Providers []Provider

	// MaxHoldAge is the longest a held node is kept; 0 means forever.
	MaxHoldAge time.Duration
	// TenantResourceLimits are per-tenant quotas.
	TenantResourceLimits []TenantResourceLimit

	// Warnings are problems that do not stop the launcher: a label that
	// Nodepool accepts but that can never launch (a pod label without an
	// image) is served, and its requests are declined with the reason (see
	// PoolLabel.Unlaunchable). Each is a *FieldError.
	Warnings []*FieldError

	// Ignored lists the Nodepool keys that were read and skipped because
	// they concern Nodepool's image builder (diskimages, elements-dir, ...).
	// Callers may log them at debug level.
	Ignored []IgnoredKey

	// lines maps key paths to lines, for Validate's errors.
	lines map[string]int
}

// ZooKeeperConfig says how to reach the ZooKeeper ensemble shared with Zuul.
type ZooKeeperConfig struct {
	Servers []ZooKeeperServer
	TLS     *ZooKeeperTLS // nil: plain connections
	Timeout time.Duration // session timeout
}

// ZooKeeperServer is one member of the ensemble.
type ZooKeeperServer struct {
	Host   string
	Port   int
	Chroot string // e.g. "/nodepool"; Validate requires all servers to agree
}

// ZooKeeperTLS names the PEM files for a TLS connection.
type ZooKeeperTLS struct {
	CA, Cert, Key string
}

// Addrs returns the servers as host:port strings.
func (z ZooKeeperConfig) Addrs() []string {
	out := make([]string, len(z.Servers))
	for i, s := range z.Servers {
		host := s.Host
		if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
			host = "[" + host + "]"
		}
		out[i] = host + ":" + strconv.Itoa(s.Port)
	}
	return out
}

// Chroot returns the ensemble's chroot ("" for none).
func (z ZooKeeperConfig) Chroot() string {
	if len(z.Servers) == 0 {
		return ""
	}
	return z.Servers[0].Chroot
}

// WebApp is Nodepool's status web app endpoint.
type WebApp struct {
	Port          int
	ListenAddress string
}

// Label is a node type Zuul may request.
type Label struct {
	Name string
	// MinReady is how many ready nodes to keep waiting (warm pool).
	MinReady int
	// MaxReadyAge is how long a ready, unused node is kept; 0 means forever.
	MaxReadyAge time.Duration
}

// TenantResourceLimit caps what one Zuul tenant may use. Unset limits are
// Unlimited.
type TenantResourceLimit struct {
	TenantName   string
	MaxServers   int64
	MaxCores     int64
	MaxRAM       int64            // MiB
	MaxResources map[string]int64 // other resources
}

// IgnoredKey is a Nodepool key kubepool reads and does not use.
type IgnoredKey struct {
	Path string
	Line int
}

// Provider drivers kubepool implements.
const (
	// DriverKubernetes makes namespaces and pods in namespaces of their own.
	DriverKubernetes = "kubernetes"
	// DriverOpenShift makes a project per node (a ProjectRequest where the
	// cluster serves project.openshift.io/v1, else a namespace).
	DriverOpenShift = "openshift"
	// DriverOpenShiftPods makes pods in an existing project: the pool's
	// name is the project.
	DriverOpenShiftPods = "openshiftpods"
)

// Provider is one Kubernetes cluster (a kubeconfig context) and its pools.
type Provider struct {
	Name string
	// Driver is DriverKubernetes (the default here), DriverOpenShift or
	// DriverOpenShiftPods.
	Driver string
	// Context is the kubeconfig context; empty means the in-cluster service
	// account. See RESTConfig.
	Context string
	// Priority is the default for the provider's pools (lower is preferred).
	Priority int
	// MaxConcurrency bounds simultaneous launches; 0 means unbounded.
	MaxConcurrency int
	// LaunchRetries is how many times a launch is retried before the node
	// fails.
	LaunchRetries int
	// BootTimeout bounds how long a node may take to become ready.
	BootTimeout time.Duration

	// Quota for the provider's pools together. Unset limits are Unlimited;
	// a resource missing from MaxResources is unlimited. The openshift
	// driver's max-projects and the openshiftpods driver's max-pods are
	// read into MaxServers, and honoured, as Nodepool meant them.
	MaxServers   int64
	MaxCores     int64
	MaxRAM       int64 // MiB
	MaxResources map[string]int64

	// TokenExpiration is the lifetime requested for node tokens (kubepool).
	TokenExpiration time.Duration

	// BuildsetRegistry, if set, gives buildsets private repositories
	// (kubepool; buildset.go).
	BuildsetRegistry *BuildsetRegistry

	Pools []Pool
}

// Pool is a group of labels sharing quota within a provider. Namespaces of
// its nodes are named after it.
type Pool struct {
	Name     string
	Priority int
	// Quota for this pool, inheriting the provider's where unset.
	MaxServers   int64
	MaxCores     int64
	MaxRAM       int64 // MiB
	MaxResources map[string]int64
	// NodeAttributes are copied into every node record as "attributes".
	NodeAttributes map[string]any
	// DefaultLabel holds the pool's default-label-* keys, already applied
	// to its pod labels.
	DefaultLabel LabelDefaults

	Labels []PoolLabel
}

// LabelDefaults are a pool's default-label-* keys. Zero means unset.
type LabelDefaults struct {
	CPU, Memory, Storage                resource.Quantity
	CPULimit, MemoryLimit, StorageLimit resource.Quantity
	ExtraResources                      map[string]int64
}

// LabelType is what a pool label provides.
type LabelType string

// Label types.
const (
	TypePod       LabelType = "pod"       // a namespace with one pod that behaves like a machine
	TypeNamespace LabelType = "namespace" // an empty namespace with credentials scoped to it
	TypeProject   LabelType = "project"   // openshift driver: a project (a namespace elsewhere) with credentials scoped to it
)

// RoleAdmin is the role key's value that binds a project or namespace
// node's service account to the cluster's admin ClusterRole, as Nodepool's
// openshift driver does, instead of kubepool's own least-privilege Role.
const RoleAdmin = "admin"

// ImagePullSecret is one entry of a label's image-pull-secrets: a secret
// the node's pods pull with. Without Namespace it must exist where the pod
// runs (Nodepool's form); with Namespace, kubepool copies it from there
// into each new node's namespace (kubepool).
type ImagePullSecret struct {
	Name      string
	Namespace string
}

// PoolLabel says how a pool builds nodes of one label. Resource fields are
// zero when unset; after Parse, pod labels carry the pool defaults and limits
// default to requests, as in Nodepool.
type PoolLabel struct {
	Name string
	Type LabelType

	Image           string
	ImagePullPolicy corev1.PullPolicy
	PythonPath      string
	ShellType       string
	// Username is the user jobs run as on a pod node, written to the node
	// record (Zuul's ansible_user); empty leaves Zuul's default, "zuul"
	// (kubepool).
	Username string

	CPU, Memory, Storage                resource.Quantity
	CPULimit, MemoryLimit, StorageLimit resource.Quantity
	GPU                                 resource.Quantity
	GPUResource                         corev1.ResourceName
	// ExtraResources count against max-resources; they are not requested
	// from Kubernetes.
	ExtraResources map[string]int64

	Env           []corev1.EnvVar
	NodeSelector  map[string]string
	Privileged    *bool
	SchedulerName string
	Volumes       []corev1.Volume
	VolumeMounts  []corev1.VolumeMount

	// Labels and Annotations go on the namespace and pod metadata.
	Labels      map[string]string
	Annotations map[string]string
	// DynamicLabels are Python-style format strings over the request,
	// e.g. "{request.id}", rendered per node.
	DynamicLabels map[string]string

	// Spec, if set, is the user's whole pod spec; the other pod keys are
	// then unused.
	Spec *corev1.PodSpec

	// ImagePullSecrets are the secrets the label's pods pull images with.
	ImagePullSecrets []ImagePullSecret

	// Role is "" for kubepool's least-privilege Role on project and
	// namespace nodes, or RoleAdmin for Nodepool's admin ClusterRole.
	Role string

	// BuildsetShared (namespace labels; kubepool key buildset-shared)
	// gives every request of one buildset for the label the same
	// namespace, each with a node record and token of its own; the
	// namespace goes with the last of those nodes.
	BuildsetShared bool

	// Unlaunchable, when not empty, says why nodes of this label can never
	// be launched (Nodepool accepts such labels); requests for it are
	// declined with this reason, and Config.Warnings has it.
	Unlaunchable string

	// PodSecurity is the Pod Security Standard the node's namespace
	// enforces (kubepool). After Parse it is set for namespace labels
	// (baseline by default); for pod labels it stays empty unless the file
	// sets it, meaning the lowest level that admits the label's own pod.
	PodSecurity PodSecurityLevel
	// Quota bounds what the node's namespace may use in total (kubepool);
	// see Quota. After Parse it holds the defaults for the label's type.
	Quota Quota
	// Network is what the node's NetworkPolicy allows (kubepool);
	// NetworkOpen after Parse unless set.
	Network NetworkMode

	// GitSidecar, if set, adds a git sidecar container to pods of this
	// label and an emptyDir at its path in every container, so that repos
	// pushed once into the sidecar (kubepool sync) are seen by all of them,
	// even by containers whose image has no git (kubepool).
	GitSidecar *GitSidecar
}

// GitSidecar is a pod label's git-sidecar key (kubepool).
type GitSidecar struct {
	Image     string            // an image with sh, tar and git
	Path      string            // where the shared volume is mounted, absolute
	SizeLimit resource.Quantity // of the emptyDir; zero for none
}

// Load reads and parses the config file at path. A missing file is an error
// matching ErrNoConfig; a bad one, errors matching ErrInvalid.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading config %s: %w (%w)", path, ErrNoConfig, err)
	}
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse decodes a config, strictly, applies defaults and validates it. name
// is used in error messages. All problems found are reported, each as a
// *FieldError, joined.
func Parse(name string, data []byte) (*Config, error) {
	d := newDecoder(name)
	c := d.document(data)
	if err := d.err(); err != nil {
		return nil, err
	}
	c.File = name
	c.lines = d.lines
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Provider returns the provider with the given name, or nil.
func (c *Config) Provider(name string) *Provider {
	for i := range c.Providers {
		if c.Providers[i].Name == name {
			return &c.Providers[i]
		}
	}
	return nil
}

// Label returns the label with the given name, or nil.
func (c *Config) Label(name string) *Label {
	for i := range c.Labels {
		if c.Labels[i].Name == name {
			return &c.Labels[i]
		}
	}
	return nil
}

// Label returns the pool's label with the given name, or nil.
func (p *Pool) Label(name string) *PoolLabel {
	for i := range p.Labels {
		if p.Labels[i].Name == name {
			return &p.Labels[i]
		}
	}
	return nil
}

// SupportedLabels returns the names of the labels the pool serves, in
// config order: what its component registration advertises to Zuul.
func (p *Pool) SupportedLabels() []string {
	out := make([]string, len(p.Labels))
	for i, l := range p.Labels {
		out[i] = l.Name
	}
	return out
}
