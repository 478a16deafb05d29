package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// DeleteInNamespace deletes the objects of a pod node in a namespace it
// does not own (see Resource.InNamespace): its pod (with a grace period of
// PodStopGrace), service account, Role and RoleBinding, all named name,
// and the image pull secrets copied for it. With wait it returns once the
// pod is gone, so that the name can be used again. What does not exist is
// not an error.
func (d *Driver) DeleteInNamespace(ctx context.Context, namespace, name string, wait bool) error {
	grace := int64(PodStopGrace.Seconds())
	ignore := func(what string, err error) error {
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("deleting %s %s/%s: %w", what, namespace, name, err)
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	run := func(f func() error) {
		wg.Go(func() {
			if err := f(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	run(func() error {
		return ignore("pod", d.Client.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &grace}))
	})
	run(func() error {
		return ignore("service account", d.Client.CoreV1().ServiceAccounts(namespace).Delete(ctx, name, metav1.DeleteOptions{}))
	})
	run(func() error {
		return ignore("role", d.Client.RbacV1().Roles(namespace).Delete(ctx, name, metav1.DeleteOptions{}))
	})
	run(func() error {
		return ignore("role binding", d.Client.RbacV1().RoleBindings(namespace).Delete(ctx, name, metav1.DeleteOptions{}))
	})
	run(func() error {
		// Copied secrets are named <name>-<secret>; find them by label.
		sel := labels.SelectorFromSet(labels.Set{LabelManagedBy: managedByValue}).String()
		l, err := d.Client.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if apierrors.IsForbidden(err) {
			return nil // the provider copies no secrets
		}
		if err != nil {
			return fmt.Errorf("listing copied secrets in %s: %w", namespace, err)
		}
		for _, s := range l.Items {
			if len(s.Name) > len(name)+1 && s.Name[:len(name)+1] == name+"-" {
				if err := ignore("secret", d.Client.CoreV1().Secrets(namespace).Delete(ctx, s.Name, metav1.DeleteOptions{})); err != nil {
					return err
				}
			}
		}
		return nil
	})
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if !wait {
		return nil
	}
	return d.waitPodGone(ctx, namespace, name)
}

// waitPodGone waits, by watch, until the pod is gone.
func (d *Driver) waitPodGone(ctx context.Context, namespace, name string) error {
	for {
		p, err := d.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("waiting for pod %s/%s to be deleted: %w", namespace, name, err)
		}
		w, err := d.Client.CoreV1().Pods(namespace).Watch(ctx, metav1.ListOptions{
			FieldSelector:   "metadata.name=" + name,
			ResourceVersion: p.ResourceVersion,
		})
		if err != nil {
			return fmt.Errorf("watching pod %s/%s: %w", namespace, name, err)
		}
		gone, err := drainUntilDeleted(ctx, w)
		w.Stop()
		if err != nil {
			return fmt.Errorf("waiting for pod %s/%s to be deleted: %w", namespace, name, err)
		}
		if gone {
			return nil
		}
	}
}

// ListInNamespace returns provider's pod nodes in namespace (see
// Resource.InNamespace), found by their service accounts' labels: nothing
// else in the namespace is listed.
func (d *Driver) ListInNamespace(ctx context.Context, provider, namespace string) ([]Owned, error) {
	l, err := d.Client.CoreV1().ServiceAccounts(namespace).List(ctx, metav1.ListOptions{LabelSelector: ProviderSelector(provider).String()})
	if err != nil {
		return nil, fmt.Errorf("listing nodes of provider %q in namespace %q: %w", provider, namespace, err)
	}
	out := make([]Owned, 0, len(l.Items))
	for _, sa := range l.Items {
		out = append(out, ownedInNamespace(&sa))
	}
	return out, nil
}

func ownedInNamespace(sa *corev1.ServiceAccount) Owned {
	return Owned{
		Namespace: sa.Namespace,
		Name:      sa.Name,
		NodeID:    sa.Labels[LabelNodeID],
		Launcher:  sa.Labels[LabelLauncher],
		Deleting:  sa.DeletionTimestamp != nil,
	}
}

// SweepInNamespace deletes provider's pod nodes in namespace for which
// keep returns false, without waiting, and returns the names it deleted.
func (d *Driver) SweepInNamespace(ctx context.Context, provider, namespace string, keep func(Owned) bool) ([]string, error) {
	owned, err := d.ListInNamespace(ctx, provider, namespace)
	if err != nil {
		return nil, err
	}
	var deleted []string
	var errs []error
	for _, o := range owned {
		if o.Deleting || keep(o) {
			continue
		}
		if err := d.DeleteInNamespace(ctx, namespace, o.Name, false); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, namespace+"/"+o.Name)
	}
	return deleted, errors.Join(errs...)
}
