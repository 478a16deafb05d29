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

// inProject reports whether the pool's nodes live in an existing project
// (openshiftpods) rather than in namespaces of their own.
func (pw *poolWorker) inProject() bool {
	return pw.provider.Driver == config.DriverOpenShiftPods
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
		return pw.driver.DeleteInNamespace(ctx, ns, projectPodName(firstType(n), n.ID), wait)
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
		if err := pw.driver.CheckPodNodeAccess(ctx, pw.pool.Name, len(from) > 0, from); err != nil {
			errs = append(errs, fmt.Errorf("provider %s pool %s: %w", pw.provider.Name, pw.pool.Name, err))
		}
	}
	return errors.Join(errs...)
}

// sweepProjects deletes the pod nodes in openshiftpods projects whose node
// no longer exists, looking only inside the configured projects and only at
// objects with kubepool's labels.
func (l *Launcher) sweepProjects(ctx context.Context, p *config.Provider) error {
	d := l.drivers[p.Name]
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
