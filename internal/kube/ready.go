package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// ErrPodFailed is matched (errors.Is) by every *PodError.
var ErrPodFailed = errors.New("pod cannot start")

// PodError says why a pod will not become ready. Reason is Kubernetes' own
// word for it (ErrImagePull, ImagePullBackOff, Unschedulable, CrashLoopBackOff,
// Error, Deleted, ...), Message its explanation.
type PodError struct {
	Namespace string
	Pod       string
	Container string // empty when the reason is not a container's
	Reason    string
	Message   string
}

func (e *PodError) Error() string {
	where := fmt.Sprintf("pod %s/%s", e.Namespace, e.Pod)
	if e.Container != "" {
		where += fmt.Sprintf(" container %q", e.Container)
	}
	if e.Message == "" {
		return fmt.Sprintf("%s: %s", where, e.Reason)
	}
	return fmt.Sprintf("%s: %s: %s", where, e.Reason, e.Message)
}

// Is makes errors.Is(err, ErrPodFailed) true for a *PodError.
func (e *PodError) Is(target error) bool { return target == ErrPodFailed }

// fatalWaitingReasons are container waiting reasons that do not resolve by
// themselves: the spec or the image is wrong. Kubernetes keeps retrying them
// with back-off; a launcher should not.
var fatalWaitingReasons = map[string]bool{
	"InvalidImageName":           true,
	"ErrImageNeverPull":          true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
	"CrashLoopBackOff":           true,
}

// pullReasons are the waiting reasons of an image pull that failed. Whether
// waiting helps depends on why: see pullPermanent.
var pullReasons = map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true}

// permanentPullErrors are what registries and containerd say when an image
// does not exist or may not be pulled: retrying will not change that. Other
// pull errors (a registry that is down, slow or rate-limiting) may pass.
var permanentPullErrors = []string{
	"not found", "notfound", "manifest unknown", "name unknown", "repository does not exist",
	"unauthorized", "denied", "invalid reference", "no match for platform",
}

// pullPermanent reports whether an image pull error message says the image
// cannot be pulled however long one waits.
func pullPermanent(msg string) bool {
	msg = strings.ToLower(msg)
	for _, s := range permanentPullErrors {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// podWaiting returns what p is waiting for that may pass by itself (room
// on a node, an image pull that failed for a reason that may not last), or
// nil. Waiting for it is bounded by the caller's context (the boot timeout).
func podWaiting(p *corev1.Pod) *PodError {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return &PodError{Namespace: p.Namespace, Pod: p.Name, Reason: c.Reason, Message: c.Message}
		}
	}
	statuses := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, cs := range statuses {
		if w := cs.State.Waiting; w != nil && pullReasons[w.Reason] {
			return &PodError{Namespace: p.Namespace, Pod: p.Name, Container: cs.Name, Reason: w.Reason, Message: w.Message}
		}
	}
	return nil
}

// podProblem returns why p will never become ready, or nil if it still may.
// An unschedulable pod may yet fit (pods finish, an autoscaler adds a
// node), and a pull error other than a missing or forbidden image may
// pass: those are podWaiting's, not problems.
func podProblem(p *corev1.Pod) *PodError {
	perr := func(container, reason, msg string) *PodError {
		return &PodError{Namespace: p.Namespace, Pod: p.Name, Container: container, Reason: reason, Message: msg}
	}
	switch p.Status.Phase {
	case corev1.PodFailed, corev1.PodSucceeded:
		reason := p.Status.Reason
		if reason == "" {
			reason = "Pod" + string(p.Status.Phase)
		}
		return perr("", reason, p.Status.Message)
	}
	statuses := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, cs := range statuses {
		if w := cs.State.Waiting; w != nil && (fatalWaitingReasons[w.Reason] || pullReasons[w.Reason] && pullPermanent(w.Message)) {
			return perr(cs.Name, w.Reason, w.Message)
		}
		// A machine-like pod's containers never exit; an exit means the
		// image's command is wrong for it.
		if t := cs.State.Terminated; t != nil && !isCompletedInit(p, cs.Name, t) {
			msg := t.Message
			if msg == "" {
				msg = fmt.Sprintf("exit code %d", t.ExitCode)
			}
			return perr(cs.Name, "Container"+t.Reason, msg)
		}
	}
	return nil
}

func isCompletedInit(p *corev1.Pod, name string, t *corev1.ContainerStateTerminated) bool {
	if t.ExitCode != 0 {
		return false
	}
	for _, c := range p.Spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Milestone is a step on a pod's way to Ready, as WaitForPod sees it.
type Milestone string

const (
	Scheduled Milestone = "scheduled" // bound to a node
	Pulled    Milestone = "pulled"    // every container's image is present
	Started   Milestone = "started"   // every container is running
	Ready     Milestone = "ready"     // the pod is Ready
)

// WaitForPod watches the pod until it is Ready and returns it. It returns a
// *PodError as soon as the pod shows that it cannot start (image pull
// errors, unschedulable, a container that exits or crash-loops, the pod
// deleted), and ctx's error if ctx ends first. It never polls.
func WaitForPod(ctx context.Context, client kubernetes.Interface, namespace, name string) (*corev1.Pod, error) {
	return WaitForPodObserved(ctx, client, namespace, name, nil)
}

// WaitForPodObserved is WaitForPod, calling observe once for each milestone
// the first time the watch shows it (observe may be nil).
func WaitForPodObserved(ctx context.Context, client kubernetes.Interface, namespace, name string, observe func(Milestone)) (*corev1.Pod, error) {
	return WaitForPodReporting(ctx, client, namespace, name, observe, nil)
}

// WaitForPodReporting is WaitForPodObserved that also calls waiting (if
// set) whenever the pod starts waiting for something that may pass (it is
// unschedulable, an image pull failed for a reason that may not last) and
// with nil when it stops. If ctx ends while the pod waits so, the error
// says for what.
func WaitForPodReporting(ctx context.Context, client kubernetes.Interface, namespace, name string, observe func(Milestone), waiting func(*PodError)) (*corev1.Pod, error) {
	seen := map[Milestone]bool{}
	mark := func(m Milestone, reached bool) {
		if reached && !seen[m] {
			seen[m] = true
			if observe != nil {
				observe(m)
			}
		}
	}
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return client.CoreV1().Pods(namespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return client.CoreV1().Pods(namespace).Watch(ctx, o)
		},
	}
	var (
		ready *corev1.Pod
		perr  *PodError
		held  *PodError // what the pod waits for now, if anything
	)
	report := func(w *PodError) {
		same := w == nil && held == nil || w != nil && held != nil && w.Reason == held.Reason && w.Message == held.Message
		held = w
		if !same && waiting != nil {
			waiting(w)
		}
	}
	precondition := func(store cache.Store) (bool, error) {
		if _, exists, err := store.Get(&metav1.ObjectMeta{Namespace: namespace, Name: name}); err != nil || !exists {
			return false, fmt.Errorf("pod %s/%s not found", namespace, name)
		}
		return false, nil
	}
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{}, precondition, func(ev watch.Event) (bool, error) {
		switch ev.Type {
		case watch.Deleted:
			perr = &PodError{Namespace: namespace, Pod: name, Reason: "Deleted", Message: "the pod was deleted while waiting for it"}
			return true, nil
		case watch.Added, watch.Modified:
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				return false, nil
			}
			mark(Scheduled, p.Spec.NodeName != "")
			mark(Pulled, allContainers(p, func(cs corev1.ContainerStatus) bool { return cs.ImageID != "" }))
			mark(Started, allContainers(p, func(cs corev1.ContainerStatus) bool { return cs.State.Running != nil }))
			if podReady(p) {
				mark(Ready, true)
				ready = p
				return true, nil
			}
			if perr = podProblem(p); perr != nil {
				return true, nil
			}
			report(podWaiting(p))
		}
		return false, nil
	})
	switch {
	case perr != nil:
		return nil, perr
	case err != nil:
		if errors.Is(err, watchtools.ErrWatchClosed) || ctx.Err() != nil {
			if held != nil {
				return nil, fmt.Errorf("waiting for pod %s/%s to be ready: %w; still waiting: %s: %s", namespace, name, context.Cause(ctx), held.Reason, held.Message)
			}
			return nil, fmt.Errorf("waiting for pod %s/%s to be ready: %w", namespace, name, context.Cause(ctx))
		}
		return nil, fmt.Errorf("waiting for pod %s/%s to be ready: %w", namespace, name, err)
	}
	return ready, nil
}

func allContainers(p *corev1.Pod, f func(corev1.ContainerStatus) bool) bool {
	if len(p.Status.ContainerStatuses) < len(p.Spec.Containers) {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if !f(cs) {
			return false
		}
	}
	return true
}
