package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/cli/cliutil"
	"github.com/kubepool/kubepool/internal/nodeadmin"
)

func newListCmd(o *rootOptions) *cobra.Command {
	lo := newOpsOptions()
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List nodes: id, provider, label, state, age, namespace/pod, lock, comment",
		Long: `List reads every node record from ZooKeeper, as 'nodepool list' does.
AGE is the time in the current state. -o json gives the rows of Nodepool's
webapp /node-list (plus namespace, pod and lock_holder), the same rows the
launcher's /node-list serves; -o name the node ids.`,
		Args:    cobra.NoArgs,
		PreRunE: validate(lo),
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, closeZK, err := o.admin(cmd, &lo.zkOptions)
			if err != nil {
				return err
			}
			defer closeZK()
			rows, err := a.Nodes(cmd.Context())
			if err != nil {
				return err
			}
			return printNodes(o.Out, &lo.Output, rows)
		},
	}
	lo.AddFlags(cmd)
	return cmd
}

// printNodes prints node rows as -o asks.
func printNodes(w io.Writer, out *cliutil.Output, rows []nodeadmin.NodeRow) error {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return out.PrintNamed(w, rows, ids, func(w io.Writer) error {
		return cliutil.Table(w, func(w io.Writer) { nodeTable(w, rows) })
	})
}

func nodeTable(w io.Writer, rows []nodeadmin.NodeRow) {
	fmt.Fprintln(w, "ID\tPROVIDER\tLABEL\tSTATE\tAGE\tNAMESPACE/POD\tLOCKED\tCOMMENT")
	for _, r := range rows {
		where := r.Namespace
		if r.Pod != "" {
			where += "/" + r.Pod
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, dash(r.Provider), dash(r.Label), dash(r.State),
			humanAge(r.Age), dash(where), r.Locked, dash(strings.ReplaceAll(r.Comment, "\n", " ")))
	}
}
