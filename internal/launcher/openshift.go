package launcher

import (
	"context"
	"errors"
	"fmt"

	"github.com/kubepool/kubepool/internal/config"
	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/zk"
)

// The openshift drivers differ from the kubernetes one in where a node's
// objects live, and nowhere else: the same launch, quota, warm pool,
// cleanup and security code serves all three.
//
//   - openshift: a project per node where the cluster serves them, else a
//     namespace (internal/kube decides, by discovery); project labels are
//     namespace nodes whose records say connection_type "project".
//   - openshiftpods: pods in an existing project, the pool's name, each
//     named <label>-<node id> with its own service account and Role.

// projectDriver is what an openshiftpods pool needs of its driver besides
// Driver: pod nodes in a namespace they do not own.
type projectDriver interface {
	// CheckPodNodeAccess says which permissions the launcher lacks to make
	// pod nodes in namespace (and copy pull secrets there from from).
	CheckPodNodeAccess(ctx context.Context, namespace string, copySecrets bool, from map[string][]string) error
	// DeleteInNamespace deletes a pod node's objects, named name.
	DeleteInNamespace(ctx context.Context, namespace, name string, wait bool) error
	// SweepInNamespace deletes the provider's pod nodes in namespace that
	// keep does not keep.
	SweepInNamespace(ctx context.Context, provider, namespace string, keep func(kube.Owned) bool) ([]string, error)
}

// inProject reports whether the pool's nodes live in an existing project
// (openshiftpods) rather than in namespaces of their own.
func (pw *poolWorker) inProject() bool {
	return pw.provider.Driver == config.DriverOpenShiftPods // New sets pw.project for these
}

// projectPodName is the name of node id's pod, service account and Role in
// an openshiftpods pool's project.
func projectPodName(label, id string) string {
	return kube.DNSLabel(label + "-" + id)
}

// deleteNodeObjects deletes what node n (of pw's pool) was made of, in
// namespace ns: the whole namespace, or, in a project, its own objects.
func (pw *poolWorker) deleteNodeObjects(ctx context.Context, n *zk.Node, ns string, wait bool) error {
	if pw.inProject() {
		return pw.project.DeleteInNamespace(ctx, ns, projectPodName(firstType(n), n.ID), wait)
	}
	return pw.driver.Delete(ctx, ns, wait)
}

// checkAccess makes sure, before the launcher serves anything, that it may
// make pod nodes in each openshiftpods pool's project and copy the image
// pull secrets its labels name; the error names every missing permission.
func (l *Launcher) checkAccess(ctx context.Context) error {
	var errs []error
	for _, pw := range l.pools {
		if !pw.inProject() {
			continue
		}
		from := map[string][]string{}
		for _, lb := range pw.pool.Labels {
			for _, s := range lb.ImagePullSecrets {
				if s.Namespace != "" {
					from[s.Namespace] = append(from[s.Namespace], s.Name)
				}
			}
		}
		if err := pw.project.CheckPodNodeAccess(ctx, pw.pool.Name, len(from) > 0, from); err != nil {
			errs = append(errs, fmt.Errorf("provider %s pool %s: %w", pw.provider.Name, pw.pool.Name, err))
		}
	}
	return errors.Join(errs...)
}

// sweepProjects deletes the pod nodes in openshiftpods projects whose node
// no longer exists, looking only inside the configured projects and only at
// objects with kubepool's labels.
func (l *Launcher) sweepProjects(ctx context.Context, p *config.Provider) error {
	d, ok := l.drivers[p.Name].(projectDriver)
	if !ok {
		return nil // New refuses such a driver
	}
	var errs []error
	for _, pool := range p.Pools {
		// Nodes are listed after the project's objects (keep is first
		// called once they are listed), so that an object made for a node
		// created meanwhile is always matched to its node.
		var byID map[string]*zk.Node
		var listErr error
		deleted, err := d.SweepInNamespace(ctx, p.Name, pool.Name, func(o kube.Owned) bool {
			if l.isBusy(o.NodeID) {
				return true
			}
			if byID == nil && listErr == nil {
				nodes, err := l.zk.ListNodeRecords(ctx)
				if listErr = err; err == nil {
					byID = make(map[string]*zk.Node, len(nodes))
					for _, n := range nodes {
						byID[n.ID] = n
					}
				}
			}
			if listErr != nil {
				return true // keep everything when in doubt
			}
			n := byID[o.NodeID]
			return n != nil && (n.ExternalID == o.Namespace || n.State == zk.NodeBuilding || n.State == zk.NodeInit)
		})
		if err != nil {
			l.metrics.KubeErrors.WithLabelValues("list").Inc()
			errs = append(errs, err)
		}
		if listErr != nil {
			errs = append(errs, listErr)
		}
		for _, name := range deleted {
			l.metrics.LeakDeleted.WithLabelValues(p.Name).Inc()
			l.log.Info("deleted leaked pod node", "provider", p.Name, "pod", name)
		}
	}
	return errors.Join(errs...)
}
