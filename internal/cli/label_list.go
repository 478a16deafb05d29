package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/cli/cliutil"
	"github.com/kubepool/kubepool/internal/nodeadmin"
)

func newLabelListCmd(o *rootOptions) *cobra.Command {
	lo := newOpsOptions()
	cmd := &cobra.Command{
		Use:   "label-list",
		Short: "List labels: the launchers that serve them, ready and min-ready nodes",
		Long: `Label-list shows each label that a registered launcher pool serves or
the config (-c) defines: which launchers serve it (provider/pool@host), how
many ready, unallocated nodes it has, and its min-ready. min-ready is only
in the launcher config, so with --zookeeper alone it shows as "-".`,
		Args:    cobra.NoArgs,
		PreRunE: validate(lo),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cfg, err := o.zookeeper(cmd, &lo.zkOptions)
			if err != nil {
				return err
			}
			defer c.Close()
			var configured map[string]int
			if cfg != nil {
				configured = map[string]int{}
				for _, l := range cfg.Labels {
					configured[l.Name] = l.MinReady
				}
			}
			rows, err := (&nodeadmin.Admin{ZK: c}).Labels(cmd.Context(), configured)
			if err != nil {
				return err
			}
			names := make([]string, len(rows))
			for i, r := range rows {
				names[i] = r.Name
			}
			return lo.PrintNamed(o.Out, rows, names, func(w io.Writer) error {
				return cliutil.Table(w, func(w io.Writer) { labelTable(w, rows) })
			})
		},
	}
	lo.AddFlags(cmd)
	return cmd
}

func labelTable(w io.Writer, rows []nodeadmin.LabelRow) {
	fmt.Fprintln(w, "LABEL\tREADY\tMIN-READY\tLAUNCHERS")
	for _, r := range rows {
		min := "-"
		if r.MinReady != nil {
			min = fmt.Sprint(*r.MinReady)
		}
		launchers := strings.Join(r.Launchers, ",")
		if launchers == "" {
			launchers = "(none registered)"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", r.Name, r.Ready, min, launchers)
	}
}
