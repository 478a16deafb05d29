package nodepod

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Harden sets the safe defaults of a node's pod where its spec leaves
// them unset: the container runtime's default seccomp profile, no
// privilege escalation (setuid) in containers that are not privileged and
// do not add CAP_SYS_ADMIN (the API refuses the combination), and no
// service-account token mounted (the node's token reaches the job through
// the node record, not the pod). What the spec sets explicitly is kept.
func Harden(spec *corev1.PodSpec) {
	if spec.AutomountServiceAccountToken == nil {
		spec.AutomountServiceAccountToken = ptr(false)
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	if spec.SecurityContext.SeccompProfile == nil {
		spec.SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	}
	harden := func(c *corev1.Container) {
		if c.SecurityContext == nil {
			c.SecurityContext = &corev1.SecurityContext{}
		}
		sc := c.SecurityContext
		if sc.AllowPrivilegeEscalation != nil || (sc.Privileged != nil && *sc.Privileged) {
			return
		}
		if sc.Capabilities != nil {
			for _, c := range sc.Capabilities.Add {
				if strings.TrimPrefix(strings.ToUpper(string(c)), "CAP_") == "SYS_ADMIN" {
					return
				}
			}
		}
		sc.AllowPrivilegeEscalation = ptr(false)
	}
	for i := range spec.InitContainers {
		harden(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		harden(&spec.Containers[i])
	}
}
