package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/config"
)

// defaultConfigFile is where Nodepool keeps its config, so that kubepool
// drops in where Nodepool ran.
const defaultConfigFile = "/etc/nodepool/nodepool.yaml"

// configFileOptions is the -c flag of commands that read the launcher config.
type configFileOptions struct {
	File string
}

func (c *configFileOptions) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&c.File, "config", "c", defaultConfigFile, "launcher config file (Nodepool's nodepool.yaml format)")
}

func (c *configFileOptions) Validate() error {
	if c.File == "" {
		return errors.New("-c: a config file is required")
	}
	return nil
}

func newConfigCmd(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Work with launcher configs",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newConfigCheckCmd(o))
	return cmd
}

func newConfigCheckCmd(o *rootOptions) *cobra.Command {
	var co configFileOptions
	cmd := &cobra.Command{
		Use:          "check",
		Short:        "Validate a launcher config without connecting to anything",
		SilenceUsage: true,
		Long: `Check loads a launcher config (Nodepool's nodepool.yaml format) the way the
launcher would, and reports every problem with its file, line and key. It
connects to neither Kubernetes nor ZooKeeper. On success it prints one line
per provider and pool.`,
		Args:    cobra.NoArgs,
		PreRunE: validate(&co),
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := o.Log()
			c, err := config.Load(co.File)
			if errs := config.FieldErrors(err); len(errs) > 0 {
				for _, fe := range errs {
					fmt.Fprintln(o.Err, fe)
				}
				return fmt.Errorf("checking %s: %d problem(s): %w", co.File, len(errs), config.ErrInvalid)
			}
			if err != nil {
				return err
			}
			for _, w := range c.Warnings {
				fmt.Fprintln(o.Err, "warning:", w)
			}
			for _, k := range c.Ignored {
				log.Debug("ignoring Nodepool key kubepool does not use", "key", k.Path, "line", k.Line)
			}
			return printConfigSummary(o.Out, c)
		},
	}
	co.AddFlags(cmd)
	return cmd
}

// printConfigSummary writes one line per provider and pool, then a total.
func printConfigSummary(w io.Writer, c *config.Config) error {
	pools := 0
	var b strings.Builder
	for _, p := range c.Providers {
		kubecontext := p.Context
		if kubecontext == "" {
			kubecontext = "in-cluster"
		}
		fmt.Fprintf(&b, "provider %s: driver %s, context %s, %d pool(s), max-servers %s\n",
			p.Name, p.Driver, kubecontext, len(p.Pools), configLimit(p.MaxServers))
		for _, pl := range p.Pools {
			pools++
			labels := make([]string, len(pl.Labels))
			for i, l := range pl.Labels {
				labels[i] = fmt.Sprintf("%s (%s)", l.Name, l.Type)
			}
			fmt.Fprintf(&b, "  pool %s: %d label(s): %s; max-servers %s\n",
				pl.Name, len(pl.Labels), strings.Join(labels, ", "), configLimit(pl.MaxServers))
		}
	}
	fmt.Fprintf(&b, "%s: OK: %d provider(s), %d pool(s), %d label(s)\n", c.File, len(c.Providers), pools, len(c.Labels))
	_, err := io.WriteString(w, b.String())
	return err
}

func configLimit(v int64) string {
	if v == config.Unlimited {
		return "unlimited"
	}
	return fmt.Sprint(v)
}
