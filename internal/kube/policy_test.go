package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestPodSecurityFor(t *testing.T) {
	machine := func(edit func(*corev1.PodSpec)) corev1.PodSpec {
		s := corev1.PodSpec{Containers: []corev1.Container{{Name: "m", Image: "machine"}}}
		if edit != nil {
			edit(&s)
		}
		return s
	}
	yes, no := true, false
	tests := []struct {
		name string
		spec corev1.PodSpec
		want string
	}{
		{"a machine running as root", machine(nil), PodSecurityBaseline},
		{"privileged", machine(func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &yes}
		}), PodSecurityPrivileged},
		{"host path", machine(func(s *corev1.PodSpec) {
			s.Volumes = []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
		}), PodSecurityPrivileged},
		{"SYS_ADMIN", machine(func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}}
		}), PodSecurityPrivileged},
		{"non-root, no capabilities, no setuid, seccomp", machine(func(s *corev1.PodSpec) {
			s.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: &yes, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
			s.Containers[0].SecurityContext = &corev1.SecurityContext{
				AllowPrivilegeEscalation: &no, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			}
		}), PodSecurityRestricted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			got, err := PodSecurityFor(&spec, "v1.36")
			if err != nil || got != tt.want {
				t.Errorf("PodSecurityFor(%s) = %q, %v; want %q", tt.name, got, err, tt.want)
			}
		})
	}
}
