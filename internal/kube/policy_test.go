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
	yes := true
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
		{"non-root, no capabilities", machine(func(s *corev1.PodSpec) {
			s.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: &yes}
			s.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
		}), PodSecurityRestricted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			HardenPod(&spec)
			got, err := PodSecurityFor(&spec, "v1.36")
			if err != nil || got != tt.want {
				t.Errorf("PodSecurityFor(hardened %s) = %q, %v; want %q", tt.name, got, err, tt.want)
			}
		})
	}
}

func TestHardenPodKeepsWhatTheSpecSays(t *testing.T) {
	yes, no := true, false
	spec := corev1.PodSpec{
		AutomountServiceAccountToken: &yes,
		SecurityContext:              &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}},
		InitContainers:               []corev1.Container{{Name: "init"}},
		Containers: []corev1.Container{
			{Name: "plain"},
			{Name: "privileged", SecurityContext: &corev1.SecurityContext{Privileged: &yes}},
			{Name: "sys-admin", SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"CAP_SYS_ADMIN"}}}},
			{Name: "setuid", SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: &yes}},
		},
	}
	HardenPod(&spec)
	if !*spec.AutomountServiceAccountToken || spec.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeUnconfined {
		t.Errorf("HardenPod changed what the spec set: automount %v, seccomp %v", *spec.AutomountServiceAccountToken, spec.SecurityContext.SeccompProfile.Type)
	}
	want := map[string]*bool{"init": &no, "plain": &no, "privileged": nil, "sys-admin": nil, "setuid": &yes}
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		got := c.SecurityContext.AllowPrivilegeEscalation
		if (got == nil) != (want[c.Name] == nil) || (got != nil && *got != *want[c.Name]) {
			t.Errorf("container %s: allowPrivilegeEscalation = %v, want %v", c.Name, deref(got), deref(want[c.Name]))
		}
	}
	empty := corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}
	HardenPod(&empty)
	if *empty.AutomountServiceAccountToken || empty.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("HardenPod(empty spec): automount %v, seccomp %v; want false, RuntimeDefault", *empty.AutomountServiceAccountToken, empty.SecurityContext.SeccompProfile.Type)
	}
}

func deref(b *bool) any {
	if b == nil {
		return "unset"
	}
	return *b
}
