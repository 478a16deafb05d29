// Package nodepod shapes a node's pod: it turns a pod label of the
// launcher's configuration into the pod's name, metadata and spec, the one
// place where kubepool decides what a node's pod looks like (container,
// resources, git sidecar, restart policy, service account, annotations, and
// its safe defaults: see Harden).
//
// It creates nothing: internal/kube creates what For returns.
package nodepod

import (
	"errors"
	"fmt"
	"maps"
	"path"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kubepool/kubepool/internal/config"
	"github.com/kubepool/kubepool/internal/kube"
)

// Git sidecar names.
const (
	// GitContainer is the git sidecar's container name.
	GitContainer = "git"
	// GitVolume is the emptyDir the sidecar shares with the other containers.
	GitVolume = "kubepool-git"
)

// DefaultContainerAnnotation tells kubectl exec (Zuul's Ansible connection)
// which container to enter when a pod has several.
const DefaultContainerAnnotation = "kubectl.kubernetes.io/default-container"

// TerminationGrace is the grace period of a pod kubepool builds itself (a
// label without spec): its container stops at once on SIGTERM.
const TerminationGrace = 5

// Pod is a node's pod as the launcher asks internal/kube to create it.
type Pod struct {
	Name        string
	Labels      map[string]string // the label's labels and dynamic labels
	Annotations map[string]string
	Spec        corev1.PodSpec
	// GitContainer and GitPath are the git sidecar's container and mount
	// path, empty without one; they go into the node's connection.
	GitContainer, GitPath string
}

// For shapes the pod of a node of label, a label of type pod. dynamic holds
// the label's dynamic labels, rendered for the node. The result shares
// nothing with label.
func For(label *config.PoolLabel, dynamic map[string]string) (*Pod, error) {
	if label.Type != config.TypePod {
		return nil, fmt.Errorf("label %s: a %s label has no pod", label.Name, label.Type)
	}
	p := &Pod{Name: kube.DNSLabel(label.Name), Labels: map[string]string{}, Annotations: maps.Clone(label.Annotations)}
	maps.Copy(p.Labels, label.Labels)
	for k, v := range dynamic {
		p.Labels[k] = kube.LabelValue(v)
	}
	if label.Spec != nil {
		p.Spec = *label.Spec.DeepCopy()
	} else {
		c := corev1.Container{
			Name:            p.Name,
			Image:           label.Image,
			ImagePullPolicy: label.ImagePullPolicy,
			Command:         kube.MachineCommand,
			Env:             cloneSlice(label.Env),
			Resources:       label.ResourceRequirements(),
			VolumeMounts:    cloneSlice(label.VolumeMounts),
		}
		if label.Privileged != nil {
			c.SecurityContext = &corev1.SecurityContext{Privileged: ptr(*label.Privileged)}
		}
		p.Spec = corev1.PodSpec{
			Containers:                    []corev1.Container{c},
			NodeSelector:                  maps.Clone(label.NodeSelector),
			SchedulerName:                 label.SchedulerName,
			Volumes:                       cloneVolumes(label.Volumes),
			TerminationGracePeriodSeconds: ptr(int64(TerminationGrace)),
		}
	}
	// A node is a machine: a container that stops is not restarted (the
	// launcher sees it and fails the launch). The pod runs as the node's
	// service account, so that the node's token can be bound to the pod
	// (deleting the pod revokes it), but mounts no token unless its spec
	// asks (see Harden): it is the job's.
	p.Spec.RestartPolicy = corev1.RestartPolicyNever
	p.Spec.ServiceAccountName = kube.ServiceAccountName
	// Secrets named without a namespace are the node namespace's own
	// (Nodepool's image-pull-secrets); internal/kube adds the ones it
	// copies in, which it names.
	for _, s := range label.ImagePullSecrets {
		if s.Namespace == "" {
			p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s.Name})
		}
	}
	if gs := label.GitSidecar; gs != nil {
		if err := AddGitSidecar(&p.Spec, GitSidecar{Image: gs.Image, MountPath: gs.Path, Command: kube.MachineCommand, SizeLimit: gs.SizeLimit}); err != nil {
			return nil, fmt.Errorf("label %s: %w", label.Name, err)
		}
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		// The job's container, not the sidecar, is where kubectl exec goes
		// unless told otherwise; the label's own annotation wins.
		if _, set := p.Annotations[DefaultContainerAnnotation]; !set {
			p.Annotations[DefaultContainerAnnotation] = p.Spec.Containers[0].Name
		}
		p.GitContainer, p.GitPath = GitContainer, path.Clean(gs.Path)
	}
	Harden(&p.Spec)
	return p, nil
}

// GitSidecar describes a git sidecar.
type GitSidecar struct {
	// Image has sh and git; it runs Command. Required.
	Image string
	// MountPath is where the shared emptyDir appears in every container of
	// the pod, and so the destination to sync repos to. Required, absolute.
	MountPath string
	// Command keeps the sidecar running; kube.MachineCommand fits.
	Command []string
	// SizeLimit bounds the emptyDir; zero is no limit.
	SizeLimit resource.Quantity
}

// AddGitSidecar adds a git sidecar to spec: a container named "git" running
// o.Image with o.Command, and an emptyDir volume "kubepool-git" mounted at
// o.MountPath in it and in every other container (init containers too).
// Repos synced into the sidecar at o.MountPath (internal/gitsync, Target
// container "git", destination o.MountPath) are then visible to all of the
// pod's containers, including ones whose image has no git. The sidecar is
// an ordinary container, last, so that it also runs in clusters without
// native sidecars and the pod's first container stays the default for
// exec; it sets no resources.
func AddGitSidecar(spec *corev1.PodSpec, o GitSidecar) error {
	if o.Image == "" {
		return errors.New("git sidecar: an image with sh and git is required")
	}
	if !path.IsAbs(o.MountPath) || path.Clean(o.MountPath) == "/" {
		return fmt.Errorf("git sidecar: mount path %q: want an absolute path other than /", o.MountPath)
	}
	if len(o.Command) == 0 {
		return errors.New("git sidecar: a command that keeps the container running is required")
	}
	for _, c := range spec.Containers {
		if c.Name == GitContainer {
			return fmt.Errorf("git sidecar: the pod already has a container named %q", GitContainer)
		}
	}
	for _, v := range spec.Volumes {
		if v.Name == GitVolume {
			return fmt.Errorf("git sidecar: the pod already has a volume named %q", GitVolume)
		}
	}
	ed := &corev1.EmptyDirVolumeSource{}
	if !o.SizeLimit.IsZero() {
		q := o.SizeLimit.DeepCopy()
		ed.SizeLimit = &q
	}
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: GitVolume, VolumeSource: corev1.VolumeSource{EmptyDir: ed}})
	mount := corev1.VolumeMount{Name: GitVolume, MountPath: path.Clean(o.MountPath)}
	for i := range spec.InitContainers {
		spec.InitContainers[i].VolumeMounts = append(spec.InitContainers[i].VolumeMounts, mount)
	}
	for i := range spec.Containers {
		spec.Containers[i].VolumeMounts = append(spec.Containers[i].VolumeMounts, mount)
	}
	spec.Containers = append(spec.Containers, corev1.Container{
		Name:         GitContainer,
		Image:        o.Image,
		Command:      o.Command,
		WorkingDir:   path.Clean(o.MountPath),
		VolumeMounts: []corev1.VolumeMount{mount},
	})
	return nil
}

func ptr[T any](v T) *T { return &v }

func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append([]T(nil), s...)
}

func cloneVolumes(vs []corev1.Volume) []corev1.Volume {
	if vs == nil {
		return nil
	}
	out := make([]corev1.Volume, len(vs))
	for i := range vs {
		vs[i].DeepCopyInto(&out[i])
	}
	return out
}
