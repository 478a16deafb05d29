package launcher

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kubepool/kubepool/internal/buildset"
	"github.com/kubepool/kubepool/internal/config"
	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/nodepod"
	"github.com/kubepool/kubepool/internal/registrytoken"
	"github.com/kubepool/kubepool/internal/zk"
)

// Buildsets: a node whose request carries a buildset (Zuul's
// requestor_data.build_set_uuid) is marked with it (its namespace's
// kube.LabelBuildset, its driver_data "buildset"); on a provider with a
// buildset-registry it also gets credentials for that buildset's
// repositories, and the launcher serves the registry's token endpoint and
// ends buildsets a ttl after their last node (package buildset).

// TokenPath is the path of a provider's registry token endpoint on the
// launcher's HTTP listener: the registry's auth.token.realm is
// http(s)://<listener>/buildset-registry/<provider>/token.
func TokenPath(provider string) string { return "/buildset-registry/" + provider + "/token" }

// tokenRealm is the realm of the Basic challenge of a refused token request.
const tokenRealm = "kubepool buildset registry"

// orphanAge is how old a credential whose node is gone must be before the
// launcher revokes it: a credential is made just before its node's record
// shows it.
var orphanAge = 2 * time.Minute

// buildsetRegistry is one provider's buildset registry.
type buildsetRegistry struct {
	cfg     *config.BuildsetRegistry
	policy  buildset.Policy
	issuer  *registrytoken.Issuer
	handler http.Handler
	// sweeper is nil for a provider whose registry (URL and prefix) another
	// provider's sweeper already ends buildsets in.
	sweeper *buildset.Sweeper
}

// initBuildsets loads the token keys of the providers that have a
// buildset-registry.
func (l *Launcher) initBuildsets() error {
	l.buildsetStore = &buildset.Store{ZK: l.zk}
	l.registries = map[string]*buildsetRegistry{}
	swept := map[string]bool{}
	for i := range l.cfg.Providers {
		p := &l.cfg.Providers[i]
		br := p.BuildsetRegistry
		if br == nil {
			continue
		}
		iss, err := registrytoken.LoadIssuer(br.Issuer, br.Service, br.TokenKey, br.TokenCertificate)
		if err != nil {
			return fmt.Errorf("launcher: provider %q buildset-registry: %w", p.Name, err)
		}
		iss.TTL = br.TokenTTL
		promoters, err := readPromoters(br.Promoters)
		if err != nil {
			return fmt.Errorf("launcher: provider %q buildset-registry: %w", p.Name, err)
		}
		reg := &buildsetRegistry{cfg: br, policy: br.Policy(), issuer: iss}
		reg.handler = &registrytoken.Handler{
			Issuer:     iss,
			Authorizer: &buildset.Authorizer{Store: l.buildsetStore, Policy: reg.policy, Promoters: promoters},
			Realm:      tokenRealm,
			Log:        l.log.With("provider", p.Name),
		}
		if key := br.URL + " " + br.RepositoryPrefix; !swept[key] {
			swept[key] = true
			reg.sweeper = &buildset.Sweeper{
				Store:    l.buildsetStore,
				Registry: &buildset.Registry{URL: br.URL, Issuer: iss},
				Policy:   reg.policy,
				TTL:      br.TTL,
				Log:      l.log.With("provider", p.Name),
			}
		}
		l.registries[p.Name] = reg
	}
	return nil
}

// readPromoters reads the promoters' password files (the first line of
// each) and keeps their hashes.
func readPromoters(list []config.Promoter) (map[string][32]byte, error) {
	out := map[string][32]byte{}
	for _, pr := range list {
		b, err := os.ReadFile(pr.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("promoter %q: reading its password: %w", pr.Username, err)
		}
		pw, _, _ := strings.Cut(string(b), "\n")
		if pw = strings.TrimSuffix(pw, "\r"); pw == "" {
			return nil, fmt.Errorf("promoter %q: %s is empty", pr.Username, pr.PasswordFile)
		}
		out[pr.Username] = buildset.HashPassword(pw)
	}
	return out, nil
}

// Routes returns the HTTP handlers the launcher serves besides its status
// endpoints, by ServeMux pattern: the token endpoint of each provider with a
// buildset-registry (GET with basic auth, and the OAuth2 POST form).
func (l *Launcher) Routes() map[string]http.Handler {
	routes := map[string]http.Handler{}
	for name, reg := range l.registries {
		routes[TokenPath(name)] = l.countTokens(name, reg.handler)
	}
	return routes
}

// countTokens counts h's answers in the TokenRequests metric.
func (l *Launcher) countTokens(provider string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		l.metrics.TokenRequests.WithLabelValues(provider, strconv.Itoa(sw.code)).Inc()
	})
}

// statusWriter records the status code written through it.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// requestBuildset returns the buildset of r ("" if none, or if its
// build_set_uuid cannot be a buildset id).
func requestBuildset(r *zk.Request) string {
	if r == nil {
		return ""
	}
	id, _ := r.RequestorData["build_set_uuid"].(string)
	if buildset.ValidateID(id) != nil {
		return ""
	}
	return id
}

// withBuildset adds to res what node n gets of its request's buildset: the
// buildset on the node record and its namespace, and, where the provider
// has a buildset registry, fresh credentials (a credential of an earlier
// attempt is revoked first) in a Secret and, for a pod, mounted in it.
func (l *Launcher) withBuildset(ctx context.Context, pw *poolWorker, n *zk.Node, r *zk.Request, res *kube.Resource) error {
	id := requestBuildset(r)
	if id == "" {
		if r == nil {
			return nil // a min-ready node: no request, no buildset
		}
		if bs, _ := r.RequestorData["build_set_uuid"].(string); bs != "" {
			l.log.Warn("request's build_set_uuid cannot name repositories: the node gets no buildset", "node", n.ID, "request", r.ID, "build_set_uuid", bs)
		}
		return nil
	}
	res.Buildset = &kube.BuildsetAccess{ID: id}
	reg := l.registries[pw.provider.Name]
	dd := driverDataOf(n)
	if reg == nil {
		shared := pw.pool.Label(firstType(n)).BuildsetShared
		setDriverData(n, func(dd *driverData) { dd.Buildset, dd.Shared = id, shared })
		return nil
	}
	if dd.BuildsetCredential != "" {
		if err := l.buildsetStore.Revoke(ctx, id, dd.BuildsetCredential); err != nil {
			return fmt.Errorf("revoking the earlier attempt's registry credential: %w", err)
		}
	}
	// A shared namespace's credentials are the namespace's, not its first
	// node's: they live until the buildset ends.
	shared := pw.pool.Label(firstType(n)).BuildsetShared
	owner := n.ID
	if shared {
		owner = ""
	}
	creds, err := l.buildsetStore.NewCredentials(ctx, id, owner)
	if err != nil {
		return fmt.Errorf("making registry credentials for buildset %s: %w", id, err)
	}
	setDriverData(n, func(dd *driverData) { dd.Buildset, dd.BuildsetCredential, dd.Shared = id, creds.ID, shared })
	host := reg.cfg.Host()
	cfg, err := buildset.DockerConfig(host, creds)
	if err != nil {
		return err
	}
	res.Buildset.DockerConfig = cfg
	if res.Kind == kube.KindPod {
		return nodepod.AddBuildsetRegistry(&res.Pod, nodepod.BuildsetRegistry{Secret: res.RegistrySecret(), Path: reg.policy.RegistryPath(host, id)})
	}
	return nil
}

// buildsetGranter is what a driver does for a warm node handed to a
// request of a buildset (*kube.Driver does).
type buildsetGranter interface {
	GrantBuildset(ctx context.Context, namespace string, kind kube.Kind, b *kube.BuildsetAccess) error
}

// grantWarm gives warm node n, handed to request r, what a node launched
// for r's buildset gets, as far as a running node can: the buildset on its
// record and namespace, and registry credentials in its namespace (in its
// service accounts' imagePullSecrets for a namespace node; a pod node's
// running pod cannot mount them, its namespace has the Secret). What the
// cluster refuses is logged, not a failed hand-out. Warm nodes never join
// or become a shared buildset namespace.
func (l *Launcher) grantWarm(ctx context.Context, pw *poolWorker, n *zk.Node, r *zk.Request) error {
	id := requestBuildset(r)
	if id == "" || driverDataOf(n).Buildset != "" || pw.inProject() {
		return nil
	}
	g, ok := pw.driver.(buildsetGranter)
	if !ok {
		return nil
	}
	kind := kube.KindNamespace
	if n.ConnectionType == zk.ConnectionKubectl {
		kind = kube.KindPod
	}
	access := &kube.BuildsetAccess{ID: id}
	if reg := l.registries[pw.provider.Name]; reg != nil {
		creds, err := l.buildsetStore.NewCredentials(ctx, id, n.ID)
		if err != nil {
			return fmt.Errorf("making registry credentials for buildset %s: %w", id, err)
		}
		if access.DockerConfig, err = buildset.DockerConfig(reg.cfg.Host(), creds); err != nil {
			return err
		}
		setDriverData(n, func(dd *driverData) { dd.BuildsetCredential = creds.ID })
	}
	if err := g.GrantBuildset(ctx, n.ExternalID, kind, access); err != nil {
		// The node is usable without what failed (as it was before
		// buildsets): hand it out, and say what it lacks.
		l.metrics.KubeErrors.WithLabelValues("buildset").Inc()
		l.log.Warn("a warm node handed to a buildset lacks some of what a node launched for it gets", "node", n.ID, "buildset", id, "namespace", n.ExternalID, "err", err)
	}
	setDriverData(n, func(dd *driverData) { dd.Buildset = id })
	return l.zk.UpdateNode(ctx, n)
}

// buildsetInterval is how often the buildset sweep runs: a quarter of the
// shortest ttl, at least every second and at most every cleanup interval.
func (l *Launcher) buildsetInterval() time.Duration {
	d := l.interval
	for _, reg := range l.registries {
		d = min(d, reg.cfg.TTL/4)
	}
	return max(d, time.Second)
}

// buildsetLoop runs the buildset sweep until ctx ends.
func (l *Launcher) buildsetLoop(ctx context.Context) error {
	if len(l.registries) == 0 {
		return nil
	}
	t := time.NewTicker(l.buildsetInterval())
	defer t.Stop()
	for {
		l.sweepBuildsets(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sweepBuildsets moves the last-node-seen time of buildsets that have a
// node forward, ends those whose last node went a ttl ago, and revokes the
// credentials of nodes that are gone.
func (l *Launcher) sweepBuildsets(ctx context.Context) {
	live := map[string]bool{}
	nodes := map[string]bool{}
	for _, n := range l.nodesView() {
		if n.ID != "" {
			nodes[n.ID] = true
		}
		if id := driverDataOf(n).Buildset; id != "" && n.State != zk.NodeDeleted {
			live[id] = true
		}
	}
	for name, reg := range l.registries {
		if reg.sweeper == nil {
			continue
		}
		// The sweeper logs each buildset it ends.
		if _, err := reg.sweeper.Sweep(ctx, live); err != nil && ctx.Err() == nil {
			l.log.Warn("buildset sweep", "provider", name, "err", err)
		}
	}
	l.revokeOrphans(ctx, nodes)
}

// revokeOrphans revokes the credentials whose node is gone (a used node's
// job is over), in every buildset, live or not.
func (l *Launcher) revokeOrphans(ctx context.Context, nodes map[string]bool) {
	records, err := l.buildsetStore.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			l.log.Warn("listing buildsets", "err", err)
		}
		return
	}
	now := time.Now()
	for _, b := range records {
		for cid, c := range b.Credentials {
			if c.Node == "" || nodes[c.Node] || now.Sub(zk.TimeOf(c.Created)) < orphanAge {
				continue
			}
			if err := l.buildsetStore.Revoke(ctx, b.ID, cid); err != nil {
				l.log.Warn("revoking credential of a gone node", "buildset", b.ID, "node", c.Node, "err", err)
				continue
			}
			l.log.Info("revoked credential of a gone node", "buildset", b.ID, "node", c.Node, "credential", cid)
		}
	}
}
