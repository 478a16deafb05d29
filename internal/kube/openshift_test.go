package kube

import (
	"slices"
	"testing"
)

// TestPodRoleRules: a pod node's token, which in an openshiftpods project
// shares the namespace with other jobs' pods, may touch its own pod, by
// name, and never delete it.
func TestPodRoleRules(t *testing.T) {
	for _, r := range RoleRules(KindPod, "pod-0000000001") {
		if !slices.Equal(r.ResourceNames, []string{"pod-0000000001"}) {
			t.Errorf("rule %v: resourceNames = %v, want only the pod", r.Resources, r.ResourceNames)
		}
		for _, v := range r.Verbs {
			if v == "*" || v == "delete" || v == "update" || v == "patch" {
				t.Errorf("rule %v grants %q", r.Resources, v)
			}
		}
	}
}

func TestAccessError(t *testing.T) {
	err := &AccessError{Namespace: "ci", Missing: []string{"create pods/exec", "delete roles.rbac.authorization.k8s.io"}}
	want := `the launcher lacks RBAC permission in namespace "ci" to create pods/exec, delete roles.rbac.authorization.k8s.io`
	if got := err.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got := (access{"delete", "rbac.authorization.k8s.io", "roles", ""}).String(); got != "delete roles.rbac.authorization.k8s.io" {
		t.Errorf("access.String() = %q", got)
	}
}
