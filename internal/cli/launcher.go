package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/kubepool/kubepool/internal/config"
	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/launcher"
	"github.com/kubepool/kubepool/internal/web"
	"github.com/kubepool/kubepool/internal/zk"
)

type launcherOptions struct {
	configFileOptions
	Listen          string
	Hostname        string
	CleanupInterval time.Duration
}

func (o *launcherOptions) AddFlags(cmd *cobra.Command) {
	o.configFileOptions.AddFlags(cmd)
	cmd.Flags().StringVar(&o.Listen, "listen", "127.0.0.1:8005", `address of the status page, JSON endpoints and /metrics ("" to serve none)`)
	cmd.Flags().StringVar(&o.Hostname, "hostname", "", "hostname to register in ZooKeeper (default: this machine's)")
	cmd.Flags().DurationVar(&o.CleanupInterval, "cleanup-interval", time.Minute, "period of the cleanup worker and the leak sweep")
}

func (o *launcherOptions) Validate() error {
	if err := o.configFileOptions.Validate(); err != nil {
		return err
	}
	if o.CleanupInterval < time.Second {
		return fmt.Errorf("--cleanup-interval %v: want at least 1s", o.CleanupInterval)
	}
	return nil
}

func newLauncherCmd(o *rootOptions) *cobra.Command {
	var lo launcherOptions
	cmd := &cobra.Command{
		Use:   "launcher",
		Short: "Serve Zuul's node requests with Kubernetes pods and namespaces",
		Long: `The launcher speaks Nodepool's protocol on ZooKeeper: it registers its
pools and their labels, takes node requests in priority order, makes each node
(a namespace with a least-privilege service account and a bounded token, and for
pod labels one pod that behaves like a machine), and deletes nodes once Zuul is
done with them. Its config is Nodepool's nodepool.yaml with kubernetes
providers; check it with 'kubepool config check'.`,
		Args:    cobra.NoArgs,
		PreRunE: validate(&lo),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLauncher(cmd.Context(), o.Log(), lo)
		},
	}
	lo.AddFlags(cmd)
	return cmd
}

func runLauncher(ctx context.Context, log *slog.Logger, lo launcherOptions) error {
	cfg, err := config.Load(lo.File)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := launcher.NewMetrics(reg)

	drivers := map[string]launcher.Driver{}
	for _, p := range cfg.Providers {
		rc, err := p.RESTConfig()
		if err != nil {
			return fmt.Errorf("provider %q: %w", p.Name, err)
		}
		d, err := kube.NewDriver(rc)
		if err != nil {
			return fmt.Errorf("provider %q: %w", p.Name, err)
		}
		d.TokenExpiration = p.TokenExpiration
		// openshift: a project per node where the cluster serves them.
		d.Projects, d.Log = p.Driver == config.DriverOpenShift, log
		drivers[p.Name] = d
	}

	zkc, err := connectZooKeeper(ctx, cfg, log, func(ev zk.SessionEvent) {
		switch ev.State {
		case zk.StateConnected:
			metrics.ZKConnected.Set(1)
		case zk.StateExpired:
			metrics.ZKSessionLosses.Inc()
			metrics.ZKConnected.Set(0)
		default:
			metrics.ZKConnected.Set(0)
		}
	})
	if err != nil {
		return err
	}
	defer zkc.Close()
	metrics.ZKConnected.Set(1)

	l, err := launcher.New(launcher.Options{
		Config: cfg, ZK: zkc, Drivers: drivers, Logger: log, Metrics: metrics,
		Hostname: lo.Hostname, CleanupInterval: lo.CleanupInterval,
	})
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return l.Run(gctx) })
	if lo.Listen != "" {
		srv := &web.Server{Addr: lo.Listen, Source: l, Gatherer: reg, Log: log, Routes: l.Routes()}
		log.Info("serving status", "url", "http://"+lo.Listen+"/")
		g.Go(func() error { return srv.ListenAndServe(gctx) })
	}
	return g.Wait()
}

// launcherZooKeeperTimeout is how long the launcher tries to reach
// ZooKeeper at start.
const launcherZooKeeperTimeout = 30 * time.Second

// connectZooKeeper connects to the config's ZooKeeper ensemble.
func connectZooKeeper(ctx context.Context, cfg *config.Config, log *slog.Logger, onEvent func(zk.SessionEvent)) (*zk.Client, error) {
	opts := zk.Options{Logger: log, OnSessionEvent: onEvent}
	servers, err := configZooKeeper(cfg, &opts)
	if err != nil {
		return nil, err
	}
	return dialZooKeeper(ctx, servers, cfg.File, launcherZooKeeperTimeout, opts)
}

// configZooKeeper returns the connection string of the config's
// zookeeper-servers and sets opts' session timeout and TLS from it.
func configZooKeeper(cfg *config.Config, opts *zk.Options) (string, error) {
	opts.SessionTimeout = cfg.ZooKeeper.Timeout
	if t := cfg.ZooKeeper.TLS; t != nil {
		tc, err := zkTLS(t)
		if err != nil {
			return "", err
		}
		opts.TLS = tc
	}
	return strings.Join(cfg.ZooKeeper.Addrs(), ",") + cfg.ZooKeeper.Chroot(), nil
}

func zkTLS(t *config.ZooKeeperTLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("loading zookeeper-tls cert %s and key %s: %w", t.Cert, t.Key, err)
	}
	ca, err := os.ReadFile(t.CA)
	if err != nil {
		return nil, fmt.Errorf("reading zookeeper-tls ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("zookeeper-tls ca %s: no PEM certificate in it", t.CA)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
