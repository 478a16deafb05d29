package nodepod_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubepool/kubepool/internal/nodepod"
)

func TestHardenKeepsWhatTheSpecSays(t *testing.T) {
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
	nodepod.Harden(&spec)
	if !*spec.AutomountServiceAccountToken || spec.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeUnconfined {
		t.Errorf("Harden changed what the spec set: automount %v, seccomp %v", *spec.AutomountServiceAccountToken, spec.SecurityContext.SeccompProfile.Type)
	}
	want := map[string]*bool{"init": &no, "plain": &no, "privileged": nil, "sys-admin": nil, "setuid": &yes}
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		got := c.SecurityContext.AllowPrivilegeEscalation
		if (got == nil) != (want[c.Name] == nil) || (got != nil && *got != *want[c.Name]) {
			t.Errorf("container %s: allowPrivilegeEscalation = %v, want %v", c.Name, deref(got), deref(want[c.Name]))
		}
	}
	empty := corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}
	nodepod.Harden(&empty)
	if *empty.AutomountServiceAccountToken || empty.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("nodepod.Harden(empty spec): automount %v, seccomp %v; want false, RuntimeDefault", *empty.AutomountServiceAccountToken, empty.SecurityContext.SeccompProfile.Type)
	}
}

func deref(b *bool) any {
	if b == nil {
		return "unset"
	}
	return *b
}
