package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/kubepool/kubepool/internal/config"
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
	if z.Servers != "" && !cmd.Flags().Changed("config") {
		return nil, nil
	}
	cfg, err := config.Load(z.File)
	if err != nil {
		if z.Servers == "" && !cmd.Flags().Changed("config") && errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no ZooKeeper to talk to: pass --zookeeper host:port or -c with a launcher config (%w)", err)
		}
		return nil, err
	}
	return cfg, nil
}

// connect connects to the ZooKeeper the flags name and returns the client
// with the config, if one was read (for its labels).
func (z *zkOptions) connect(ctx context.Context, cmd *cobra.Command, log *slog.Logger) (*zk.Client, *config.Config, error) {
	if err := z.Validate(); err != nil {
		return nil, nil, err
	}
	cfg, err := z.loadConfig(cmd)
	if err != nil {
		return nil, nil, err
	}
	servers, source := z.Servers, "--zookeeper"
	host, _ := os.Hostname()
	// Session chatter is for the launcher's log; a command shows it with
	// --log-level debug and warnings always.
	zlog := log
	if !log.Enabled(ctx, slog.LevelDebug) {
		zlog = slog.New(minLevel{log.Handler(), slog.LevelWarn})
	}
	opts := zk.Options{Logger: zlog, LockIdentifier: fmt.Sprintf("kubepool %s on %s (pid %d)", cmd.Name(), host, os.Getpid())}
	if servers == "" {
		if servers, err = configZooKeeper(cfg, &opts); err != nil {
			return nil, nil, err
		}
		source = cfg.File
	}
	cctx, cancel := context.WithTimeout(ctx, z.Timeout)
	defer cancel()
	c, err := zk.Connect(cctx, servers, opts)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, nil, &ZooKeeperUnreachableError{Servers: servers, Source: source, Timeout: z.Timeout, Err: err}
		}
		return nil, nil, err
	}
	return c, cfg, nil
}

// outputOptions is -o table|json|yaml of the operator commands.
type outputOptions struct{ Format string }

func (p *outputOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&p.Format, "output", "o", "table", "output format: table, json or yaml")
}

func (p *outputOptions) Validate() error {
	switch p.Format {
	case "table", "json", "yaml":
		return nil
	}
	return fmt.Errorf("-o %q: want table, json or yaml", p.Format)
}

// print writes v as JSON or YAML (with the JSON member names), or calls
// table with a tabwriter for -o table.
func (p *outputOptions) print(w io.Writer, v any, table func(w io.Writer)) error {
	switch p.Format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("encoding YAML: %w", err)
		}
		_, err = w.Write(b)
		return err
	default:
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		table(tw)
		return tw.Flush()
	}
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
