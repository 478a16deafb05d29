package launcher

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/kubepool/kubepool/internal/config"
	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/nodepod"
	"github.com/kubepool/kubepool/internal/zk"
)

// launch makes node n (locked, building) ready: it creates its namespace,
// credentials and pod, retrying with a fresh namespace name up to the
// provider's launch-retries. On failure the node is marked failed, with the
// reason in driver_data, and the cleanup worker deletes it.
func (l *Launcher) launch(ctx context.Context, pw *poolWorker, n *zk.Node, r *zk.Request) error {
	label := pw.pool.Label(n.Type[0])
	release, joined, err := l.joinShared(ctx, pw, label, n, r)
	defer release()
	if joined {
		return err
	}
	attempts := max(pw.provider.LaunchRetries, 1)
	// first is what went wrong first: a later attempt's error is often a
	// consequence (the replacement pod does not fit while the failed one
	// is still stopping) and says less about what to fix.
	var first, last error
	for attempt := 1; attempt <= attempts; attempt++ {
		// <pool>-<node id>, as Nodepool names it, plus a random suffix:
		// every attempt gets a fresh name, and launchers with separate
		// ZooKeepers (whose node ids collide) can share a cluster.
		ns := kube.DNSLabel(fmt.Sprintf("%s-%s-%s", pw.pool.Name, n.ID, randHex(2)))
		if pw.inProject() {
			ns = pw.pool.Name // openshiftpods: the pool is the project
		}
		n.ExternalID = ns
		if err := l.zk.UpdateNode(ctx, n); err != nil {
			return fmt.Errorf("recording namespace of node %s: %w", n.ID, err)
		}
		start := time.Now()
		res, err := l.resource(ctx, pw, label, n, r, ns, start)
		if err == nil {
			err = l.withBuildset(ctx, pw, n, r, &res)
		}
		var conn *kube.Connection
		if err == nil {
			bctx, cancel := context.WithTimeout(ctx, pw.provider.BootTimeout)
			conn, err = pw.driver.Create(bctx, res)
			cancel()
		}
		if err == nil {
			err = l.sharedToken(ctx, pw, n, conn) // a shared namespace's first node
		}
		if err == nil {
			l.setConnection(n, pw, label, conn)
			setDriverData(n, func(dd *driverData) { dd.Waiting = "" })
			n.SetState(zk.NodeReady)
			if err := l.zk.UpdateNode(ctx, n); err != nil {
				return fmt.Errorf("storing ready node %s: %w", n.ID, err)
			}
			l.metrics.Launches.WithLabelValues(label.Name, "ready").Inc()
			l.metrics.LaunchSeconds.WithLabelValues(label.Name, "total").Observe(time.Since(start).Seconds())
			l.log.Info("node ready", "node", n.ID, "label", label.Name, "namespace", ns, "pod", conn.Pod, "took", time.Since(start).Round(time.Millisecond))
			return nil
		}
		last = err
		if first == nil {
			first = err
		}
		l.metrics.KubeErrors.WithLabelValues("launch").Inc()
		l.log.Warn("launch failed", "node", n.ID, "label", label.Name, "namespace", ns, "attempt", attempt, "of", attempts, "err", err)
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		// In a project the next attempt reuses the pod's name: wait.
		if derr := pw.deleteNodeObjects(dctx, n, ns, pw.inProject() && attempt < attempts); derr != nil {
			l.log.Warn("deleting failed launch", "node", n.ID, "namespace", ns, "err", derr)
		}
		dcancel()
		if ctx.Err() != nil {
			break
		}
		if attempt < attempts {
			l.metrics.Launches.WithLabelValues(label.Name, "retry").Inc()
		}
	}
	l.metrics.Launches.WithLabelValues(label.Name, "failed").Inc()
	setDriverData(n, func(dd *driverData) {
		dd.Waiting, dd.Error, dd.LastError = "", first.Error(), ""
		if last != first {
			dd.LastError = last.Error()
		}
	})
	n.SetState(zk.NodeFailed)
	if err := l.zk.UpdateNode(context.WithoutCancel(ctx), n); err != nil {
		l.log.Warn("marking node failed", "node", n.ID, "err", err)
	}
	return fmt.Errorf("launching node %s (label %s): %w", n.ID, label.Name, first)
}

// refreshToken gives a warm node handed to a request a fresh token, so that
// its lifetime counts from now.
func (l *Launcher) refreshToken(ctx context.Context, pw *poolWorker, n *zk.Node) error {
	kc, err := n.KubeConnection()
	if err != nil {
		return err
	}
	conn := &kube.Connection{Namespace: kc.Namespace, User: kc.User, Pod: kc.Pod}
	if err := pw.driver.RefreshToken(ctx, conn); err != nil {
		l.metrics.KubeErrors.WithLabelValues("token").Inc()
		return err
	}
	kc.Token = conn.Token
	if err := n.SetKubeConnection(kc); err != nil {
		return err
	}
	setTokenExpiry(n, conn.TokenExpiry)
	return l.zk.UpdateNode(ctx, n)
}

// driverData is what kubepool keeps in a node's driver_data (Zuul does not
// read it): the token's expiry, so that a warm node whose token is still
// nearly new is handed out as it is and one whose token has aged is given
// a fresh one first; what a launching pod waits for; why a launch failed.
type driverData struct {
	TokenExpires float64 `json:"token_expires,omitempty"` // seconds since the epoch
	Waiting      string  `json:"waiting,omitempty"`       // "Reason: message", while the pod waits
	Error        string  `json:"error,omitempty"`         // the first cause of a failed launch
	LastError    string  `json:"last_error,omitempty"`    // the last attempt's, if different
	// Buildset is the buildset of the node's request, and
	// BuildsetCredential the id of its registry credential (buildset.go).
	Buildset           string `json:"buildset,omitempty"`
	BuildsetCredential string `json:"buildset_credential,omitempty"`
	// Shared says the node's namespace is its buildset's shared one, and
	// SharedWith names the node it joined, if it did not make it.
	Shared     bool   `json:"shared,omitempty"`
	SharedWith string `json:"shared_with,omitempty"`
}

const tokenExpiryKey = "token_expires"

// driverDataOf decodes n's driver_data; what is not kubepool's is ignored.
func driverDataOf(n *zk.Node) driverData {
	var dd driverData
	switch v := n.DriverData.(type) {
	case driverData:
		return v
	case nil:
	default:
		b, err := json.Marshal(v)
		if err == nil {
			_ = json.Unmarshal(b, &dd) // a foreign shape reads as empty
		}
	}
	return dd
}

func setDriverData(n *zk.Node, f func(*driverData)) {
	dd := driverDataOf(n)
	f(&dd)
	n.DriverData = dd
}

func setTokenExpiry(n *zk.Node, t time.Time) {
	setDriverData(n, func(dd *driverData) { dd.TokenExpires = zk.Timestamp(t) })
}

// tokenFresh reports whether n's token has at least 90% of its configured
// lifetime left (and so needs no refresh before it is handed out).
func tokenFresh(n *zk.Node, lifetime time.Duration) bool {
	exp := driverDataOf(n).TokenExpires
	if exp == 0 {
		return false
	}
	return time.Until(zk.TimeOf(exp)) >= lifetime*9/10
}

// resource describes the Kubernetes objects of node n.
func (l *Launcher) resource(ctx context.Context, pw *poolWorker, label *config.PoolLabel, n *zk.Node, r *zk.Request, ns string, start time.Time) (kube.Resource, error) {
	res := kube.Resource{
		Kind:        kube.KindNamespace,
		Owner:       kube.Owner{Provider: pw.provider.Name, Pool: pw.pool.Name, NodeID: n.ID, Label: label.Name, Launcher: l.id},
		Namespace:   ns,
		Annotations: label.Annotations,
		Policy:      nodePolicy(label),
		AdminRole:   label.Role == config.RoleAdmin,
	}
	if label.Type != config.TypePod {
		return res, nil
	}
	dynamic := make(map[string]string, len(label.DynamicLabels))
	for k, f := range label.DynamicLabels {
		dynamic[k] = renderDynamic(f, n, r)
	}
	pod, err := nodepod.For(label, dynamic)
	if err != nil {
		return res, err
	}
	res.Kind = kube.KindPod
	res.PodName, res.PodLabels, res.Pod, res.Annotations = pod.Name, pod.Labels, pod.Spec, pod.Annotations
	if pw.inProject() {
		res.InNamespace = true
		res.PodName = projectPodName(label.Name, n.ID)
	}
	for _, s := range label.ImagePullSecrets {
		if s.Namespace != "" {
			res.CopySecrets = append(res.CopySecrets, kube.SecretRef{Namespace: s.Namespace, Name: s.Name})
		}
	}
	last := start
	phases := map[kube.Milestone]string{kube.Scheduled: "schedule", kube.Pulled: "image_pull", kube.Started: "container_start", kube.Ready: "ready"}
	res.Observe = func(m kube.Milestone) {
		now := time.Now()
		l.metrics.LaunchSeconds.WithLabelValues(label.Name, phases[m]).Observe(now.Sub(last).Seconds())
		last = now
	}
	res.Waiting = func(w *kube.PodError) {
		// The pod waits (up to the boot timeout) for something that may
		// pass: say so in the node record, where operators and `kubepool
		// nodes` look, and count it. We hold the node's lock, and launch
		// does not touch n until Create returns.
		why := ""
		if w != nil {
			why = w.Reason + ": " + w.Message
			l.metrics.LaunchWaits.WithLabelValues(label.Name, w.Reason).Inc()
			l.log.Info("launching pod waits", "node", n.ID, "label", label.Name, "namespace", ns, "reason", w.Reason, "message", w.Message)
		}
		setDriverData(n, func(dd *driverData) { dd.Waiting = why })
		if err := l.zk.UpdateNode(context.WithoutCancel(ctx), n); err != nil {
			l.log.Warn("recording why the pod waits", "node", n.ID, "err", err)
		}
	}
	return res, nil
}

// setConnection fills in what Zuul reads from a ready node.
func (l *Launcher) setConnection(n *zk.Node, pw *poolWorker, label *config.PoolLabel, conn *kube.Connection) {
	kc := zk.KubeConnection{
		Name: conn.Namespace, Namespace: conn.Namespace, Host: conn.Host, SkipTLS: conn.SkipTLS,
		Token: conn.Token, User: conn.User, Pod: conn.Pod,
	}
	if !conn.SkipTLS {
		kc.CACert = base64.StdEncoding.EncodeToString(conn.CAData)
	}
	if gs := label.GitSidecar; gs != nil && label.Type == config.TypePod {
		kc.GitContainer, kc.GitPath = nodepod.GitContainer, path.Clean(gs.Path)
	}
	_ = n.SetKubeConnection(kc) // a struct of strings always encodes
	setTokenExpiry(n, conn.TokenExpiry)
	n.ExternalID = conn.Namespace
	n.HostID = conn.Node
	n.PythonPath = label.PythonPath
	n.ShellType = label.ShellType
	if label.Username != "" {
		n.Username = label.Username
	}
	n.Resources = resourcesMap(label.Resources())
	n.Attributes = pw.pool.NodeAttributes
	if label.Type == config.TypePod {
		n.ConnectionType = zk.ConnectionKubectl
		n.InterfaceIP = conn.Pod
		n.Hostname = conn.Pod
	} else if label.Type == config.TypeProject {
		n.ConnectionType = zk.ConnectionProject
	} else {
		n.ConnectionType = zk.ConnectionNamespace
	}
}

var dynamicField = regexp.MustCompile(`\{(node|request)\.([a-z_]+)((?:\[[^\]]*\])*)\}`)

// renderDynamic renders a dynamic-labels format string: {node.id},
// {request.id}, {request.requestor}, {request.requestor_data[job_name]}, ...
// Unknown fields render empty.
func renderDynamic(format string, n *zk.Node, r *zk.Request) string {
	return dynamicField.ReplaceAllStringFunc(format, func(m string) string {
		sub := dynamicField.FindStringSubmatch(m)
		var v any
		switch sub[1] {
		case "node":
			switch sub[2] {
			case "id":
				v = n.ID
			case "provider":
				v = n.Provider
			case "pool":
				v = n.Pool
			}
		case "request":
			if r == nil {
				return ""
			}
			switch sub[2] {
			case "id":
				v = r.ID
			case "requestor":
				v = r.Requestor
			case "tenant_name":
				v = r.TenantName
			case "event_id":
				v = r.EventID
			case "requestor_data":
				v = r.RequestorData
			}
		}
		for _, key := range strings.Split(strings.Trim(sub[3], "[]"), "][") {
			if key == "" {
				continue
			}
			mv, ok := v.(map[string]any)
			if !ok {
				return ""
			}
			v = mv[strings.Trim(key, `'"`)]
		}
		if v == nil {
			return ""
		}
		return fmt.Sprint(v)
	})
}
