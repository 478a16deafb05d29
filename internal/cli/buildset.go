package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/buildset"
	"github.com/kubepool/kubepool/internal/cli/cliutil"
	"github.com/kubepool/kubepool/internal/config"
	"github.com/kubepool/kubepool/internal/registrytoken"
)

func newBuildsetCmd(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "buildset",
		Short: "Buildsets' private registry areas: list, show, delete",
		Long: `A buildset with a node on a provider that has a buildset-registry gets
private repositories <repository-prefix><buildset>/* in that registry, and
credentials for them. The records live in ZooKeeper (/kubepool/buildsets);
a buildset ends, images and credentials, ttl after its last node is gone.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newBuildsetListCmd(o), newBuildsetInfoCmd(o), newBuildsetDeleteCmd(o))
	return cmd
}

// buildsetStore connects to ZooKeeper (the node commands' one path) and
// returns a store on it, the config if one was read, and the function that
// closes the connection.
func (o *rootOptions) buildsetStore(cmd *cobra.Command, z *zkOptions) (*buildset.Store, *config.Config, func(), error) {
	c, cfg, err := o.zookeeper(cmd, z)
	if err != nil {
		return nil, nil, nil, err
	}
	return &buildset.Store{ZK: c}, cfg, c.Close, nil
}

func newBuildsetListCmd(o *rootOptions) *cobra.Command {
	lo := newOpsOptions()
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List buildsets: id, state, age, last node seen, credentials",
		Args:    cobra.NoArgs,
		PreRunE: validate(lo),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, _, closeZK, err := o.buildsetStore(cmd, &lo.zkOptions)
			if err != nil {
				return err
			}
			defer closeZK()
			rows, err := s.Rows(cmd.Context())
			if err != nil {
				return err
			}
			ids := make([]string, len(rows))
			for i, r := range rows {
				ids[i] = r.ID
			}
			return lo.PrintNamed(o.Out, rows, ids, func(w io.Writer) error {
				return cliutil.Table(w, func(w io.Writer) { buildsetTable(w, rows, time.Now()) })
			})
		},
	}
	lo.AddFlags(cmd)
	return cmd
}

func buildsetTable(w io.Writer, rows []buildset.Row, now time.Time) {
	fmt.Fprintln(w, "ID\tSTATE\tAGE\tLAST NODE SEEN\tCREDENTIALS")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s ago\t%d\n", r.ID, dash(r.State), humanAge(int64(now.Sub(r.Created).Seconds())),
			humanAge(int64(now.Sub(r.LastNodeSeen).Seconds())), r.Credentials)
	}
}

func newBuildsetInfoCmd(o *rootOptions) *cobra.Command {
	lo := newOpsOptions()
	cmd := &cobra.Command{
		Use:     "info BUILDSET",
		Short:   "Show one buildset: state, times, and its credentials (ids and nodes; never secrets)",
		Args:    cobra.ExactArgs(1),
		PreRunE: validate(lo),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, _, closeZK, err := o.buildsetStore(cmd, &lo.zkOptions)
			if err != nil {
				return err
			}
			defer closeZK()
			info, err := s.Info(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return lo.PrintNamed(o.Out, info, []string{info.ID}, func(w io.Writer) error {
				return cliutil.Table(w, func(w io.Writer) { buildsetInfoTable(w, info) })
			})
		},
	}
	lo.AddFlags(cmd)
	return cmd
}

func buildsetInfoTable(w io.Writer, info *buildset.Info) {
	now := time.Now()
	fmt.Fprintf(w, "id\t%s\nstate\t%s\nusername\t%s\ncreated\t%s (%s ago)\nlast node seen\t%s (%s ago)\n",
		info.ID, info.State, info.Username, info.Created.Format(time.RFC3339), humanAge(int64(now.Sub(info.Created).Seconds())),
		info.LastNodeSeen.Format(time.RFC3339), humanAge(int64(now.Sub(info.LastNodeSeen).Seconds())))
	for _, c := range info.CredentialList {
		fmt.Fprintf(w, "credential %s\tnode %s, created %s\n", c.ID, dash(c.Node), c.Created.Format(time.RFC3339))
	}
}

func newBuildsetDeleteCmd(o *rootOptions) *cobra.Command {
	lo := newOpsOptions()
	var provider string
	cmd := &cobra.Command{
		Use:   "delete BUILDSET",
		Short: "End a buildset now: revoke its credentials, delete its images and its record",
		Long: `Delete ends a buildset whether or not it still has nodes: its credentials
stop working at once, then its manifests are deleted from the registry (by
digest, with a token kubepool issues itself) and its record goes. It reads the
launcher config (-c) for the provider's buildset-registry; --provider picks
one when several providers have one. Interrupted, it can be run again.`,
		Args:    cobra.ExactArgs(1),
		PreRunE: validate(lo),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := buildset.ValidateID(args[0]); err != nil {
				return err
			}
			s, cfg, closeZK, err := o.buildsetStore(cmd, &lo.zkOptions)
			if err != nil {
				return err
			}
			defer closeZK()
			br, err := buildsetRegistry(cfg, provider)
			if err != nil {
				return err
			}
			iss, err := registrytoken.LoadIssuer(br.Issuer, br.Service, br.TokenKey, br.TokenCertificate)
			if err != nil {
				return err
			}
			iss.TTL = br.TokenTTL
			sw := &buildset.Sweeper{Store: s, Registry: &buildset.Registry{URL: br.URL, Issuer: iss}, Policy: br.Policy(), TTL: br.TTL}
			if err := sw.Delete(cmd.Context(), args[0]); err != nil {
				return err
			}
			row := buildset.Row{ID: args[0], State: "deleted"}
			return lo.PrintNamed(o.Out, row, []string{row.ID}, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "buildset %s deleted\n", args[0])
				return err
			})
		},
	}
	lo.AddFlags(cmd)
	cmd.Flags().StringVar(&provider, "provider", "", "provider whose buildset-registry to use (default: the only one that has one)")
	return cmd
}

// buildsetRegistry finds the buildset-registry section of the named provider,
// or of the only provider that has one.
func buildsetRegistry(cfg *config.Config, provider string) (*config.BuildsetRegistry, error) {
	if cfg == nil {
		return nil, fmt.Errorf("buildset delete needs the launcher config (-c) for the registry")
	}
	var names []string
	var found *config.BuildsetRegistry
	for i := range cfg.Providers {
		pr := &cfg.Providers[i]
		if pr.BuildsetRegistry == nil {
			continue
		}
		if provider == pr.Name {
			return pr.BuildsetRegistry, nil
		}
		names = append(names, pr.Name)
		found = pr.BuildsetRegistry
	}
	switch {
	case provider != "":
		return nil, fmt.Errorf("%s: provider %q has no buildset-registry (providers with one: %s)", cfg.File, provider, dash(strings.Join(names, ", ")))
	case len(names) == 0:
		return nil, fmt.Errorf("%s: no provider has a buildset-registry", cfg.File)
	case len(names) > 1:
		return nil, fmt.Errorf("%s: providers %s have a buildset-registry: pick one with --provider", cfg.File, strings.Join(names, ", "))
	}
	return found, nil
}
