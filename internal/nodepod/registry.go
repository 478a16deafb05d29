package nodepod

import (
	"errors"
	"fmt"
	"path"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubepool/kubepool/internal/buildset"
)

// Buildset registry settings of a node's pod.
const (
	// RegistryVolume is the volume of the registry credentials.
	RegistryVolume = "kubepool-registry"
	// RegistryDir is where the credentials appear in the pod's containers:
	// RegistryDir/config.json, a docker config.
	RegistryDir = "/run/kubepool/registry"

	// EnvDockerConfig is the directory docker, buildah and crane look in
	// for config.json.
	EnvDockerConfig = "DOCKER_CONFIG"
	// EnvRegistryAuthFile is the auth file podman, buildah and skopeo read.
	EnvRegistryAuthFile = "REGISTRY_AUTH_FILE"
	// EnvBuildsetRegistry tells a build tool where its buildset may push:
	// "<registry host>/<prefix><buildset>".
	EnvBuildsetRegistry = buildset.EnvRegistry
)

// BuildsetRegistry is what a node's pod gets of its buildset's registry.
type BuildsetRegistry struct {
	// Secret names the kubernetes.io/dockerconfigjson Secret in the pod's
	// namespace that holds the buildset's credentials. Required.
	Secret string
	// Path is "<registry host>/<prefix><buildset>", the value of
	// EnvBuildsetRegistry. Required.
	Path string
}

// AddBuildsetRegistry gives the containers of spec (init containers too,
// not the git sidecar, which pushes nothing) the credentials of a buildset:
// Secret's .dockerconfigjson mounted read-only as RegistryDir/config.json,
// DOCKER_CONFIG and REGISTRY_AUTH_FILE pointing at it, and
// KUBEPOOL_BUILDSET_REGISTRY set to o.Path. Variables the spec sets itself
// are kept: the spec's author knows better.
func AddBuildsetRegistry(spec *corev1.PodSpec, o BuildsetRegistry) error {
	if o.Secret == "" || o.Path == "" {
		return errors.New("buildset registry: secret and path are required")
	}
	for _, v := range spec.Volumes {
		if v.Name == RegistryVolume {
			return fmt.Errorf("buildset registry: the pod already has a volume named %q", RegistryVolume)
		}
	}
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: RegistryVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName:  o.Secret,
		Items:       []corev1.KeyToPath{{Key: corev1.DockerConfigJsonKey, Path: "config.json"}},
		DefaultMode: ptr(int32(0o444)),
	}}})
	mount := corev1.VolumeMount{Name: RegistryVolume, MountPath: RegistryDir, ReadOnly: true}
	env := []corev1.EnvVar{
		{Name: EnvDockerConfig, Value: RegistryDir},
		{Name: EnvRegistryAuthFile, Value: path.Join(RegistryDir, "config.json")},
		{Name: EnvBuildsetRegistry, Value: o.Path},
	}
	add := func(c *corev1.Container) {
		if c.Name == GitContainer {
			return
		}
		c.VolumeMounts = append(c.VolumeMounts, mount)
		for _, e := range env {
			if !hasEnv(c, e.Name) {
				c.Env = append(c.Env, e)
			}
		}
	}
	for i := range spec.InitContainers {
		add(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		add(&spec.Containers[i])
	}
	return nil
}

func hasEnv(c *corev1.Container, name string) bool {
	for _, e := range c.Env {
		if e.Name == name {
			return true
		}
	}
	return false
}
