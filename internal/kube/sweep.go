package kube

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Owned is one namespace kubepool made, as the leak sweep sees it.
type Owned struct {
	Namespace string
	// Name is, for pod nodes in a namespace they do not own, the name of
	// their pod, service account and Role; empty otherwise.
	Name     string
	NodeID   string
	Launcher string
	Deleting bool // already terminating
}

// List returns provider's namespaces, selected by label: namespaces that are
// not kubepool's are never listed.
func (d *Driver) List(ctx context.Context, provider string) ([]Owned, error) {
	project, err := d.useProjects(ctx)
	if err != nil {
		return nil, err
	}
	if project {
		return d.listProjects(ctx, provider)
	}
	l, err := d.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: ProviderSelector(provider).String()})
	if err != nil {
		return nil, fmt.Errorf("listing namespaces of provider %q: %w", provider, err)
	}
	out := make([]Owned, 0, len(l.Items))
	for _, ns := range l.Items {
		out = append(out, Owned{
			Namespace: ns.Name,
			NodeID:    ns.Labels[LabelNodeID],
			Launcher:  ns.Labels[LabelLauncher],
			Deleting:  ns.DeletionTimestamp != nil,
		})
	}
	return out, nil
}

// Sweep deletes provider's namespaces for which keep returns false, without
// waiting for them to go, and returns the ones it deleted. keep is asked only
// about namespaces not already being deleted.
func (d *Driver) Sweep(ctx context.Context, provider string, keep func(Owned) bool) ([]string, error) {
	owned, err := d.List(ctx, provider)
	if err != nil {
		return nil, err
	}
	var deleted []string
	var errs []error
	for _, o := range owned {
		if o.Deleting || keep(o) {
			continue
		}
		if err := d.Delete(ctx, o.Namespace, false); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, o.Namespace)
	}
	return deleted, errors.Join(errs...)
}
