package kube

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

var unschedulable = &corev1.Pod{Status: corev1.PodStatus{
	Phase:      corev1.PodPending,
	Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/1 nodes are available: 1 Insufficient cpu."}},
}}

// TestPodWaiting: what may pass is waited for, and said.
func TestPodWaiting(t *testing.T) {
	pull := func(reason, msg string) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "node", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}},
		}}}}
	}
	for _, tt := range []struct {
		name       string
		pod        *corev1.Pod
		wantReason string
	}{
		{"unschedulable", unschedulable, "Unschedulable"},
		{"registry down", pull("ErrImagePull", "connection refused"), "ErrImagePull"},
		{"backing off", pull("ImagePullBackOff", "Back-off pulling image"), "ImagePullBackOff"},
		{"creating", pull("ContainerCreating", ""), ""},
		{"running", &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning}}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := podWaiting(tt.pod)
			switch {
			case tt.wantReason == "" && got != nil:
				t.Errorf("podWaiting() = %v, want nil", got)
			case tt.wantReason != "" && (got == nil || got.Reason != tt.wantReason):
				t.Errorf("podWaiting() = %v, want reason %q", got, tt.wantReason)
			}
		})
	}
}

func TestPodProblem(t *testing.T) {
	waiting := func(reason string) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{
			Phase: corev1.PodPending,
			ContainerStatuses: []corev1.ContainerStatus{{
				Name:  "node",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "m"}},
			}},
		}}
	}
	waitingMsg := func(reason, msg string) *corev1.Pod {
		p := waiting(reason)
		p.Status.ContainerStatuses[0].State.Waiting.Message = msg
		return p
	}
	tests := []struct {
		name       string
		pod        *corev1.Pod
		wantReason string // "" means no problem yet
	}{
		{"creating", waiting("ContainerCreating"), ""},
		{"pull error, no such image", waitingMsg("ErrImagePull", `failed to pull and unpack image "127.0.0.1:5001/x:1": failed to resolve reference "127.0.0.1:5001/x:1": 127.0.0.1:5001/x:1: not found`), "ErrImagePull"},
		{"pull error, manifest unknown", waitingMsg("ErrImagePull", "manifest unknown: manifest unknown"), "ErrImagePull"},
		{"pull backoff, denied", waitingMsg("ImagePullBackOff", "pull access denied"), "ImagePullBackOff"},
		{"pull error, registry down", waitingMsg("ErrImagePull", "dial tcp 127.0.0.1:5001: connect: connection refused"), ""},
		{"pull backoff", waiting("ImagePullBackOff"), ""},
		{"crash loop", waiting("CrashLoopBackOff"), "CrashLoopBackOff"},
		{"invalid image name", waiting("InvalidImageName"), "InvalidImageName"},
		{"unschedulable", unschedulable, ""},
		{"exited", &corev1.Pod{Status: corev1.PodStatus{
			Phase: corev1.PodRunning,
			ContainerStatuses: []corev1.ContainerStatus{{
				Name:  "node",
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 127}},
			}},
		}}, "ContainerError"},
		{"failed phase", &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted"}}, "Evicted"},
		{"completed init", &corev1.Pod{
			Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "init"}}},
			Status: corev1.PodStatus{
				Phase: corev1.PodPending,
				InitContainerStatuses: []corev1.ContainerStatus{{
					Name:  "init",
					State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}},
				}},
			}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := podProblem(tt.pod)
			switch {
			case tt.wantReason == "" && got != nil:
				t.Fatalf("podProblem() = %v, want nil", got)
			case tt.wantReason != "" && got == nil:
				t.Fatalf("podProblem() = nil, want reason %q", tt.wantReason)
			case got != nil && got.Reason != tt.wantReason:
				t.Fatalf("podProblem().Reason = %q, want %q", got.Reason, tt.wantReason)
			case got != nil && !errors.Is(got, ErrPodFailed):
				t.Fatalf("errors.Is(%v, ErrPodFailed) = false", got)
			}
		})
	}
}
