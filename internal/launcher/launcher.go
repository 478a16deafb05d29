// Package launcher is kubepool's node provider: it serves Zuul's node
// requests from ZooKeeper (the Nodepool protocol, see internal/zk) with
// Kubernetes resources made by internal/kube.
//
// One pool worker per provider pool takes requests in priority order,
// declines what its pool cannot serve, honours provider affinity, hands out
// warm (min-ready) nodes first and launches the rest, retrying a failed
// launch with a fresh namespace up to launch-retries. A cleanup worker
// deletes used, failed and orphaned nodes (a launcher that crashed
// mid-launch leaves unlocked building nodes behind), recycles ready nodes
// past max-ready-age, keeps min-ready nodes, and sweeps leaked namespaces by
// label selector.
package launcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kubepool/kubepool/internal/buildset"
	"github.com/kubepool/kubepool/internal/config"
	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/zk"
)

// Version is written into the launcher's component registrations.
var Version = "kubepool"

// Driver is what the launcher needs of a provider's Kubernetes cluster;
// internal/kube's *Driver is the real one.
type Driver interface {
	// Create makes a node's namespace (and pod) and waits until it is
	// usable; on error, what was made is left for Delete.
	Create(ctx context.Context, r kube.Resource) (*kube.Connection, error)
	// Delete deletes a node's namespace, stopping its pods first; with
	// wait, until it is gone.
	Delete(ctx context.Context, namespace string, wait bool) error
	// WaitPodsGone waits until a namespace has no pods left.
	WaitPodsGone(ctx context.Context, namespace string) error
	// RefreshToken gives conn a fresh token.
	RefreshToken(ctx context.Context, conn *kube.Connection) error
	// List returns the namespaces made for provider's nodes.
	List(ctx context.Context, provider string) ([]kube.Owned, error)
}

// Options configure a Launcher. Config, ZK and Drivers are required.
type Options struct {
	Config *config.Config
	ZK     *zk.Client
	// Drivers holds one Kubernetes driver per provider name.
	Drivers map[string]Driver
	Logger  *slog.Logger // nil logs nothing
	Metrics *Metrics     // nil records nothing
	// Hostname is registered with the components; default os.Hostname.
	Hostname string
	// CleanupInterval is how often the cleanup worker runs even when no
	// node changed, and the leak sweep's period; default 60 s.
	CleanupInterval time.Duration
}

// Launcher serves node requests. Create it with New and start it with Run.
type Launcher struct {
	cfg      *config.Config
	zk       *zk.Client
	drivers  map[string]Driver
	log      *slog.Logger
	metrics  *Metrics
	hostname string
	id       string // unique per process: what this launcher writes as "launcher"
	interval time.Duration

	pools []*poolWorker

	mu sync.Mutex
	// busy holds the ids of nodes and requests a goroutine of this launcher
	// is working on, so that no second one starts on them.
	busy  map[string]bool
	ready bool
	// watching holds the lock directories whose holder is watched (see
	// wakeWhenReleased); wake pokes the cleanup loop.
	watching    map[string]bool
	wake        chan struct{}
	wakePending bool // see wakeAfter

	wg sync.WaitGroup // launch, fulfil and delete goroutines

	// live and liveAt cache the registered pools for the cleanup loop
	// (see livePools).
	live   map[string]bool
	liveAt time.Time

	// sem bounds the requests being locked and given nodes at once.
	sem chan struct{}

	// requests and nodes are kept up to date by watches (see zk.Cache).
	requests *zk.Cache[zk.Request]
	nodes    *zk.Cache[zk.Node]
	cacheMu  sync.Mutex
	inflight map[string]*zk.Node // see nodesView

	// buildsetStore and registries serve buildsets (buildset.go).
	buildsetStore *buildset.Store
	registries    map[string]*buildsetRegistry
	// sharedMu and sharedKeys order shared buildset namespaces' joins
	// and deletions (shared.go).
	sharedMu   sync.Mutex
	sharedKeys sync.Map
}

// nodesView returns the cached nodes plus the nodes this launcher created
// or reserved that the cache has not shown yet, so that quota and min-ready
// counts never miss them. Records are possibly a moment old: callers lock
// and re-read a node before acting on it.
func (l *Launcher) nodesView() []*zk.Node {
	nodes := l.nodes.Snapshot()
	l.cacheMu.Lock()
	defer l.cacheMu.Unlock()
	if len(l.inflight) == 0 {
		return nodes
	}
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		seen[n.ID] = true
	}
	for key, n := range l.inflight {
		if n.ID != "" && seen[n.ID] {
			delete(l.inflight, key) // the cache has it now
			continue
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// addInflight records a node (or a reservation for one) under key until
// the cache shows it (nodes with an ID) or dropInflight is called.
func (l *Launcher) addInflight(key string, n *zk.Node) {
	l.cacheMu.Lock()
	l.inflight[key] = n
	l.cacheMu.Unlock()
}

func (l *Launcher) dropInflight(keys ...string) {
	l.cacheMu.Lock()
	for _, k := range keys {
		delete(l.inflight, k)
	}
	l.cacheMu.Unlock()
}

// poolWorker serves one provider pool.
type poolWorker struct {
	provider *config.Provider
	pool     *config.Pool
	id       string // the pool component's id: what goes in declined_by
	driver   Driver
	// project is driver, for pools whose nodes live in an existing
	// project (openshiftpods); nil otherwise.
	project projectDriver

	// kick wakes servePool: a lock it found held was let go.
	kick chan struct{}

	// pausedLock and pausedID are the request the pool is paused on
	// (locked, pending, waiting for quota); only servePool touches them.
	pausedLock *zk.Lock
	pausedID   string
}

// New returns a Launcher for opts.
func New(opts Options) (*Launcher, error) {
	if opts.Config == nil || opts.ZK == nil {
		return nil, errors.New("launcher: Config and ZK are required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host := opts.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	l := &Launcher{
		cfg:      opts.Config,
		zk:       opts.ZK,
		drivers:  opts.Drivers,
		log:      log,
		metrics:  opts.Metrics,
		hostname: host,
		id:       fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randHex(4)),
		interval: opts.CleanupInterval,
		busy:     map[string]bool{},
		watching: map[string]bool{},
		wake:     make(chan struct{}, 1),
		sem:      make(chan struct{}, 32),
		inflight: map[string]*zk.Node{},
	}
	if l.metrics == nil {
		l.metrics = NewMetrics(nil)
	}
	if l.interval <= 0 {
		l.interval = 60 * time.Second
	}
	for i := range l.cfg.Providers {
		p := &l.cfg.Providers[i]
		d := l.drivers[p.Name]
		if d == nil {
			return nil, fmt.Errorf("launcher: no Kubernetes driver for provider %q", p.Name)
		}
		var pd projectDriver
		if p.Driver == config.DriverOpenShiftPods {
			var ok bool
			if pd, ok = d.(projectDriver); !ok {
				return nil, fmt.Errorf("launcher: the driver of openshiftpods provider %q cannot make pods in an existing project", p.Name)
			}
		}
		for j := range p.Pools {
			pool := &p.Pools[j]
			l.pools = append(l.pools, &poolWorker{provider: p, pool: pool, driver: d, project: pd, kick: make(chan struct{}, 1), id: fmt.Sprintf("%s-%s-%s", l.id, p.Name, pool.Name)})
		}
	}
	if err := l.initBuildsets(); err != nil {
		return nil, err
	}
	l.logPodSecurity()
	return l, nil
}

// ID is this launcher's id, written into the nodes it makes.
func (l *Launcher) ID() string { return l.id }

// Run registers the launcher and its pools in ZooKeeper and serves requests
// until ctx ends. Launches under way when ctx ends are abandoned; the nodes
// they were building are unlocked and the next launcher's cleanup deletes
// them.
func (l *Launcher) Run(ctx context.Context) error {
	if err := l.checkAccess(ctx); err != nil {
		return err
	}
	launcher, err := l.zk.Register(ctx, zk.Component{Kind: zk.KindLauncher, Hostname: l.hostname, State: zk.ComponentRunning, Version: Version, ID: l.id})
	if err != nil {
		return fmt.Errorf("registering launcher: %w", err)
	}
	regs := []*zk.Registration{launcher}
	for _, pw := range l.pools {
		reg, err := l.zk.Register(ctx, zk.Component{
			Kind: zk.KindPool, Hostname: l.hostname, State: zk.ComponentRunning, Version: Version,
			ID: pw.id, Name: pw.pool.Name, ProviderName: pw.provider.Name,
			SupportedLabels: pw.pool.SupportedLabels(), Priority: pw.pool.Priority,
		})
		if err != nil {
			return fmt.Errorf("registering pool %s/%s: %w", pw.provider.Name, pw.pool.Name, err)
		}
		regs = append(regs, reg)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, r := range regs {
			_ = r.Unregister(uctx)
		}
	}()
	if l.requests, err = l.zk.CacheRequests(ctx); err != nil {
		return fmt.Errorf("loading requests: %w", err)
	}
	if l.nodes, err = l.zk.CacheNodes(ctx); err != nil {
		return fmt.Errorf("loading nodes: %w", err)
	}
	l.mu.Lock()
	l.ready = true
	l.mu.Unlock()
	l.log.Info("launcher running", "launcher", l.id, "pools", len(l.pools))

	g, gctx := errgroup.WithContext(ctx)
	for _, pw := range l.pools {
		g.Go(func() error { return l.servePool(gctx, pw) })
	}
	g.Go(func() error { return l.cleanupLoop(gctx) })
	g.Go(func() error { return l.buildsetLoop(gctx) })
	err = g.Wait()
	l.mu.Lock()
	l.ready = false
	l.mu.Unlock()
	l.wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// claim marks id busy and reports whether it was free.
func (l *Launcher) claim(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.busy[id] {
		return false
	}
	l.busy[id] = true
	return true
}

func (l *Launcher) release(id string) {
	l.mu.Lock()
	delete(l.busy, id)
	l.mu.Unlock()
}

func (l *Launcher) isBusy(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.busy[id]
}

// goTracked runs f in a goroutine that Run waits for.
func (l *Launcher) goTracked(f func()) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f()
	}()
}

// wakeWhenReleased, given the error of a try-lock on the lock directory
// dir, watches the lock's holder and wakes the cleanup loop and the pool
// workers when it lets go or its session ends (a launcher or executor that
// died, or our own cleanup putting a request back to requested): what it
// held is dealt with then, not at the next interval. A lock's release
// changes no request or node record, so no cache would tell.
func (l *Launcher) wakeWhenReleased(ctx context.Context, dir string, err error) {
	var le *zk.LockedError
	if !errors.As(err, &le) {
		return
	}
	if le.Holder == nil { // let go while the try-lock looked
		l.wakeAll()
		return
	}
	l.mu.Lock()
	if l.watching[dir] {
		l.mu.Unlock()
		return
	}
	l.watching[dir] = true
	l.mu.Unlock()
	l.goTracked(func() {
		<-l.zk.Released(ctx, dir, le.Holder)
		l.mu.Lock()
		delete(l.watching, dir)
		l.mu.Unlock()
		l.wakeAll()
	})
}

// wakeAll pokes the cleanup loop and every pool worker.
func (l *Launcher) wakeAll() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
	for _, pw := range l.pools {
		select {
		case pw.kick <- struct{}{}:
		default:
		}
	}
}

// providerOf returns the pool worker serving provider/pool, or nil.
func (l *Launcher) poolOf(provider, pool string) *poolWorker {
	for _, pw := range l.pools {
		if pw.provider.Name == provider && pw.pool.Name == pool {
			return pw
		}
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func typeIs(n *zk.Node, label string) bool {
	return len(n.Type) == 1 && n.Type[0] == label
}
