package gitsync_test

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubepool/kubepool/internal/gitsync"
)

func ExampleAddSidecar() {
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "alpine"}}}
	err := gitsync.AddSidecar(&spec, gitsync.SidecarOptions{
		Image:     "registry.example.org/git:latest",
		MountPath: "/home/zuul/src",
		Command:   []string{"sleep", "infinity"},
	})
	if err != nil {
		panic(err)
	}
	for _, c := range spec.Containers {
		fmt.Println(c.Name, c.Image, c.VolumeMounts[0].Name, c.VolumeMounts[0].MountPath)
	}
	fmt.Println(spec.Volumes[0].Name, spec.Volumes[0].EmptyDir != nil)
	// Output:
	// main alpine kubepool-git /home/zuul/src
	// git registry.example.org/git:latest kubepool-git /home/zuul/src
	// kubepool-git true
}

func TestAddSidecarErrors(t *testing.T) {
	ok := gitsync.SidecarOptions{Image: "git", MountPath: "/src", Command: []string{"sleep", "infinity"}}
	for _, tt := range []struct {
		name string
		spec corev1.PodSpec
		opts gitsync.SidecarOptions
		want string
	}{
		{"no image", corev1.PodSpec{}, gitsync.SidecarOptions{MountPath: "/src", Command: ok.Command}, "image"},
		{"relative path", corev1.PodSpec{}, gitsync.SidecarOptions{Image: "git", MountPath: "src", Command: ok.Command}, "absolute"},
		{"root path", corev1.PodSpec{}, gitsync.SidecarOptions{Image: "git", MountPath: "/", Command: ok.Command}, "absolute"},
		{"no command", corev1.PodSpec{}, gitsync.SidecarOptions{Image: "git", MountPath: "/src"}, "command"},
		{"name taken", corev1.PodSpec{Containers: []corev1.Container{{Name: "git"}}}, ok, "already has a container"},
		{"volume taken", corev1.PodSpec{Volumes: []corev1.Volume{{Name: "kubepool-git"}}}, ok, "already has a volume"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := gitsync.AddSidecar(&tt.spec, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("AddSidecar = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
