package launcher

import (
	"context"
	"encoding/base64"
	"fmt"
	"sync"
	"time"

	"github.com/kubepool/kubepool/internal/config"
	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/zk"
)

// Shared buildset namespaces: on a namespace label with buildset-shared,
// every request of one buildset gets the namespace of the buildset's first
// node of the label (a record and a token of its own each time): what a
// job deployed there stays for the buildset's child jobs. The namespace is
// deleted with the last node that uses it.
//
// Within one launcher, l.sharedMu orders joining a namespace against
// deciding to delete it. Launchers sharing a ZooKeeper do not coordinate
// this: two of them serving one buildset's requests for the same label at
// the same moment may each make a namespace (Zuul asks for a child's nodes
// after its parent's, on the parent's provider).

// sharedKey names a shared namespace: the buildset's, for one label of one
// pool.
func sharedKey(pw *poolWorker, label, id string) string {
	return pw.provider.Name + "/" + pw.pool.Name + "/" + label + "/" + id
}

// sharedLive reports whether a node in state s keeps its shared namespace
// for others to join.
func sharedLive(s string) bool {
	return s == zk.NodeReady || s == zk.NodeInUse || s == zk.NodeHold
}

// joinShared gives node n, for a request of a buildset on a buildset-shared
// label, the namespace of a live node of the same buildset, label and pool,
// and makes n ready there with a token of its own. It reports whether n
// joined one (then err says whether it became ready). If not, the caller
// launches n as usual and calls release once n is ready or failed: a second
// request of the buildset for the label waits until then, and joins n.
func (l *Launcher) joinShared(ctx context.Context, pw *poolWorker, label *config.PoolLabel, n *zk.Node, r *zk.Request) (release func(), joined bool, err error) {
	id := requestBuildset(r)
	if !label.BuildsetShared || label.Type != config.TypeNamespace || id == "" || pw.inProject() {
		return func() {}, false, nil
	}
	release = l.lockSharedKey(sharedKey(pw, label.Name, id))
	// Choosing the namespace and recording it in n is one step against
	// namespaceShared: a namespace is never deleted under a node joining it.
	l.sharedMu.Lock()
	host := l.sharedHost(ctx, pw, label.Name, id, n.ID)
	var kc zk.KubeConnection
	if host != nil {
		kc, err = host.KubeConnection()
		if err == nil {
			n.ExternalID = kc.Namespace
			setDriverData(n, func(dd *driverData) { dd.Buildset, dd.Shared, dd.SharedWith = id, true, host.ID })
			err = l.zk.UpdateNode(ctx, n)
		}
	}
	l.sharedMu.Unlock()
	if host == nil {
		return release, false, nil
	}
	release()
	if err != nil {
		return func() {}, true, fmt.Errorf("recording node %s in the shared namespace of node %s: %w", n.ID, host.ID, err)
	}
	start := time.Now()
	ca, _ := base64.StdEncoding.DecodeString(kc.CACert)
	conn := &kube.Connection{Host: kc.Host, CAData: ca, SkipTLS: kc.SkipTLS, Namespace: kc.Namespace, User: kc.User}
	if err := l.sharedToken(ctx, pw, n, conn); err != nil {
		return func() {}, true, l.failShared(ctx, label, n, fmt.Errorf("token for node %s in shared namespace %s: %w", n.ID, kc.Namespace, err))
	}
	l.setConnection(n, pw, label, conn)
	n.SetState(zk.NodeReady)
	if err := l.zk.UpdateNode(ctx, n); err != nil {
		return func() {}, true, fmt.Errorf("storing ready node %s: %w", n.ID, err)
	}
	l.metrics.Launches.WithLabelValues(label.Name, "ready").Inc()
	l.metrics.LaunchSeconds.WithLabelValues(label.Name, "total").Observe(time.Since(start).Seconds())
	l.log.Info("node ready in its buildset's shared namespace", "node", n.ID, "label", label.Name, "namespace", kc.Namespace, "buildset", id, "with", host.ID)
	return func() {}, true, nil
}

// failShared marks n failed with err (the cleanup deletes its record; the
// namespace stays with the nodes that share it).
func (l *Launcher) failShared(ctx context.Context, label *config.PoolLabel, n *zk.Node, err error) error {
	l.metrics.Launches.WithLabelValues(label.Name, "failed").Inc()
	setDriverData(n, func(dd *driverData) { dd.Error = err.Error() })
	n.SetState(zk.NodeFailed)
	if uerr := l.zk.UpdateNode(context.WithoutCancel(ctx), n); uerr != nil {
		l.log.Warn("marking node failed", "node", n.ID, "err", uerr)
	}
	return err
}

// sharedHost returns a live node of buildset id, label and pw's pool whose
// namespace n may join, read again from ZooKeeper; nil if there is none.
func (l *Launcher) sharedHost(ctx context.Context, pw *poolWorker, label, id, self string) *zk.Node {
	for _, c := range l.nodesView() {
		dd := driverDataOf(c)
		if c.ID == self || c.ID == "" || !dd.Shared || dd.Buildset != id || c.Provider != pw.provider.Name || c.Pool != pw.pool.Name || !typeIs(c, label) || !sharedLive(c.State) {
			continue
		}
		fresh, err := l.zk.GetNode(ctx, c.ID)
		if err != nil || !sharedLive(fresh.State) || fresh.ExternalID == "" {
			continue
		}
		return fresh
	}
	return nil
}

// namespaceShared reports whether another node than n still uses n's
// shared namespace, so that deleting n must leave it. It reads the node
// records afresh; on error it says yes (the namespace is kept, and looked
// at again with the next deletion or by the leak sweep).
func (l *Launcher) namespaceShared(ctx context.Context, n *zk.Node) bool {
	if !driverDataOf(n).Shared || n.ExternalID == "" {
		return false
	}
	l.sharedMu.Lock()
	defer l.sharedMu.Unlock()
	nodes, err := l.zk.ListNodeRecords(ctx)
	if err != nil {
		l.log.Warn("listing nodes to see who shares a namespace", "node", n.ID, "namespace", n.ExternalID, "err", err)
		return true
	}
	for _, o := range nodes {
		if o.ID != n.ID && o.ExternalID == n.ExternalID && o.State != zk.NodeDeleted {
			return true
		}
	}
	return false
}

// namespaceUsed reports whether a node record names namespace: a shared
// namespace outlives the node it was made for.
func namespaceUsed(nodes []*zk.Node, namespace string) bool {
	for _, n := range nodes {
		if n.ExternalID == namespace && driverDataOf(n).Shared {
			return true
		}
	}
	return false
}

// lockSharedKey takes the lock of one shared namespace key and returns
// its release (which may be called more than once).
func (l *Launcher) lockSharedKey(key string) func() {
	m, _ := l.sharedKeys.LoadOrStore(key, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	var once sync.Once
	return func() { once.Do(mu.Unlock) }
}

// nodeTokener gives nodes of a shared namespace tokens that can be revoked
// one by one (*kube.Driver does).
type nodeTokener interface {
	NodeToken(ctx context.Context, conn *kube.Connection, node string) error
	RevokeNodeToken(ctx context.Context, namespace, node string) error
}

// sharedToken gives n, a node of a shared namespace, a token of its own
// that revokeSharedToken ends when n goes while the namespace stays; for a
// node that is not shared it does nothing (its token ends with its
// namespace).
func (l *Launcher) sharedToken(ctx context.Context, pw *poolWorker, n *zk.Node, conn *kube.Connection) error {
	if !driverDataOf(n).Shared {
		return nil
	}
	var err error
	if nt, ok := pw.driver.(nodeTokener); ok {
		err = nt.NodeToken(ctx, conn, n.ID)
	} else {
		err = pw.driver.RefreshToken(ctx, conn)
	}
	if err != nil {
		l.metrics.KubeErrors.WithLabelValues("token").Inc()
	}
	return err
}

// revokeSharedToken ends the token of n, a node leaving a shared namespace
// that stays.
func (l *Launcher) revokeSharedToken(ctx context.Context, pw *poolWorker, n *zk.Node) error {
	nt, ok := pw.driver.(nodeTokener)
	if !ok || !driverDataOf(n).Shared || n.ExternalID == "" {
		return nil
	}
	return nt.RevokeNodeToken(ctx, n.ExternalID, n.ID)
}
