package kube

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

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
	tests := []struct {
		name       string
		pod        *corev1.Pod
		wantReason string // "" means no problem yet
	}{
		{"creating", waiting("ContainerCreating"), ""},
		{"pull error", waiting("ErrImagePull"), "ErrImagePull"},
		{"pull backoff", waiting("ImagePullBackOff"), "ImagePullBackOff"},
		{"crash loop", waiting("CrashLoopBackOff"), "CrashLoopBackOff"},
		{"unschedulable", &corev1.Pod{Status: corev1.PodStatus{
			Phase:      corev1.PodPending,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable"}},
		}}, "Unschedulable"},
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
