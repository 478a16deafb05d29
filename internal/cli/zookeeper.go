package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/cli/cliutil"
	"github.com/kubepool/kubepool/internal/config"
	"github.com/kubepool/kubepool/internal/nodeadmin"
	"github.com/kubepool/kubepool/internal/zk"
)

// zkOptions say which ZooKeeper the operator commands (list, hold,
// request, ...) work on: --zookeeper, or zookeeper-servers of the launcher
// config given with -c.
type zkOptions struct {
	configFileOptions
	Servers string
	Timeout time.Duration
}

func (z *zkOptions) AddFlags(cmd *cobra.Command) {
	z.configFileOptions.AddFlags(cmd)
	cmd.Flags().StringVar(&z.Servers, "zookeeper", "", `ZooKeeper to use instead of the config's zookeeper-servers: "host:port[,host:port...][/chroot]"`)
	cmd.Flags().DurationVar(&z.Timeout, "zookeeper-timeout", 10*time.Second, "how long to try to reach ZooKeeper")
}

func (z *zkOptions) Validate() error {
	if z.Servers != "" {
		if _, _, err := zk.ParseServers(z.Servers); err != nil {
			return fmt.Errorf("--zookeeper %q: %w", z.Servers, err)
		}
	} else if err := z.configFileOptions.Validate(); err != nil {
		return err
	}
	if z.Timeout <= 0 {
		return fmt.Errorf("--zookeeper-timeout %v: want a positive duration", z.Timeout)
	}
	return nil
}

// ZooKeeperUnreachableError: no ZooKeeper session could be established.
type ZooKeeperUnreachableError struct {
	Servers string // the connection string tried
	Source  string // where it came from: "--zookeeper" or the config file
	Timeout time.Duration
	Err     error
}

func (e *ZooKeeperUnreachableError) Error() string {
	fix := "check --zookeeper"
	if e.Source != "--zookeeper" {
		fix = "check zookeeper-servers in " + e.Source + " (or pass --zookeeper host:port)"
	}
	return fmt.Sprintf("connecting to ZooKeeper %s: no session within %v: is ZooKeeper running and reachable at that address? %s", e.Servers, e.Timeout, fix)
}

func (e *ZooKeeperUnreachableError) Unwrap() error { return e.Err }

// loadConfig loads -c unless --zookeeper was given and -c was left at its
// default; it returns nil then.
func (z *zkOptions) loadConfig(cmd *cobra.Command) (*config.Config, error) {
	// --launcher-config: sync's deprecated name of -c.
	given := cmd.Flags().Changed("config") || cmd.Flags().Changed("launcher-config")
	if z.Servers != "" && !given {
		return nil, nil
	}
	cfg, err := config.Load(z.File)
	if err != nil {
		if z.Servers == "" && !given && errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no ZooKeeper to talk to: pass --zookeeper host:port or -c with a launcher config (%w)", err)
		}
		return nil, err
	}
	return cfg, nil
}

// zookeeper is the one way the node commands reach ZooKeeper: it connects
// to the ZooKeeper the flags name and returns the client with the config,
// if one was read (for its labels and registries).
func (o *rootOptions) zookeeper(cmd *cobra.Command, z *zkOptions) (*zk.Client, *config.Config, error) {
	ctx := cmd.Context()
	cfg, err := z.loadConfig(cmd)
	if err != nil {
		return nil, nil, err
	}
	log := o.Log()
	host, _ := os.Hostname()
	// Session chatter is for the launcher's log; a command shows it with
	// --log-level debug and warnings always.
	if !log.Enabled(ctx, slog.LevelDebug) {
		log = slog.New(minLevel{log.Handler(), slog.LevelWarn})
	}
	opts := zk.Options{Logger: log, LockIdentifier: fmt.Sprintf("kubepool %s on %s (pid %d)", cmd.Name(), host, os.Getpid())}
	servers, source := z.Servers, "--zookeeper"
	if servers == "" {
		if servers, err = configZooKeeper(cfg, &opts); err != nil {
			return nil, nil, err
		}
		source = cfg.File
	}
	c, err := dialZooKeeper(ctx, servers, source, z.Timeout, opts)
	if err != nil {
		return nil, nil, err
	}
	return c, cfg, nil
}

// admin connects to ZooKeeper and returns a nodeadmin.Admin on it and the
// function that closes the connection.
func (o *rootOptions) admin(cmd *cobra.Command, z *zkOptions) (*nodeadmin.Admin, func(), error) {
	c, _, err := o.zookeeper(cmd, z)
	if err != nil {
		return nil, nil, err
	}
	return &nodeadmin.Admin{ZK: c}, c.Close, nil
}

// dialZooKeeper connects to servers (named by source: "--zookeeper" or a
// config file), giving up after timeout with a *ZooKeeperUnreachableError.
func dialZooKeeper(ctx context.Context, servers, source string, timeout time.Duration, opts zk.Options) (*zk.Client, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := zk.Connect(cctx, servers, opts)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, &ZooKeeperUnreachableError{Servers: servers, Source: source, Timeout: timeout, Err: err}
		}
		return nil, fmt.Errorf("connecting to ZooKeeper %s: %w", servers, err)
	}
	return c, nil
}

// opsOptions are the flags of the operator commands that read ZooKeeper
// and print: which ZooKeeper, and -o.
type opsOptions struct {
	zkOptions
	cliutil.Output
}

// newOpsOptions returns opsOptions whose -o name prints identifiers.
func newOpsOptions() *opsOptions { return &opsOptions{Output: cliutil.Output{Names: true}} }

func (o *opsOptions) AddFlags(cmd *cobra.Command) {
	o.zkOptions.AddFlags(cmd)
	o.Output.AddFlags(cmd)
}

func (o *opsOptions) Validate() error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	return o.zkOptions.Validate()
}

// validate is a PreRunE that validates v.
func validate(v interface{ Validate() error }) func(*cobra.Command, []string) error {
	return func(*cobra.Command, []string) error { return v.Validate() }
}

// humanAge renders seconds as 42s, 3m12s, 5h02m, 3d04h.
func humanAge(s int64) string {
	d := time.Duration(s) * time.Second
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", s)
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", s/3600, s/60%60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s/3600%24)
}

// dash returns s, or "-" if it is empty, for table cells.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}
