package gitsync

import (
	"errors"
	"fmt"
	"path"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Sidecar defaults.
const (
	SidecarContainer = "git"
	SidecarVolume    = "kubepool-git"
)

// SidecarOptions describe a git sidecar.
type SidecarOptions struct {
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

// AddSidecar adds a git sidecar to spec: a container named "git" running
// o.Image with o.Command, and an emptyDir volume "kubepool-git" mounted at
// o.MountPath in it and in every other container (init containers too).
// Repos synced into the sidecar at o.MountPath (Target.Container "git",
// Syncer.Dest o.MountPath) are then visible to all of the pod's containers,
// including ones whose image has no git. The sidecar is an ordinary
// container, last, so that it also runs in clusters without native sidecars
// and the pod's first container stays the default for exec; it sets no
// resources (the caller may).
func AddSidecar(spec *corev1.PodSpec, o SidecarOptions) error {
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
		if c.Name == SidecarContainer {
			return fmt.Errorf("git sidecar: the pod already has a container named %q", SidecarContainer)
		}
	}
	for _, v := range spec.Volumes {
		if v.Name == SidecarVolume {
			return fmt.Errorf("git sidecar: the pod already has a volume named %q", SidecarVolume)
		}
	}
	ed := &corev1.EmptyDirVolumeSource{}
	if !o.SizeLimit.IsZero() {
		ed.SizeLimit = &o.SizeLimit
	}
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: SidecarVolume, VolumeSource: corev1.VolumeSource{EmptyDir: ed}})
	mount := corev1.VolumeMount{Name: SidecarVolume, MountPath: path.Clean(o.MountPath)}
	for i := range spec.InitContainers {
		spec.InitContainers[i].VolumeMounts = append(spec.InitContainers[i].VolumeMounts, mount)
	}
	for i := range spec.Containers {
		spec.Containers[i].VolumeMounts = append(spec.Containers[i].VolumeMounts, mount)
	}
	spec.Containers = append(spec.Containers, corev1.Container{
		Name:         SidecarContainer,
		Image:        o.Image,
		Command:      o.Command,
		WorkingDir:   path.Clean(o.MountPath),
		VolumeMounts: []corev1.VolumeMount{mount},
	})
	return nil
}
