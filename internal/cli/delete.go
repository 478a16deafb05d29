package cli

import (
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/cli/cliutil"
	"github.com/kubepool/kubepool/internal/nodeadmin"
	"github.com/kubepool/kubepool/internal/zk"
)

func newDeleteCmd(o *rootOptions) *cobra.Command {
	lo := newOpsOptions()
	cmd := &cobra.Command{
		Use:   "delete NODE",
		Short: "Mark a node for deletion; its launcher deletes it",
		Long: `Delete marks a node for deletion as 'nodepool delete' does: it takes the
node's lock, sets the state to deleting and lets go. The launcher serving the
node's provider then deletes its namespace (and pod) and the record. A node
that Zuul or a launcher holds locked is not touched; the error says who holds
it.`,
		Args:    cobra.ExactArgs(1),
		PreRunE: validate(lo),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.changeNode(cmd, lo, func(a *nodeadmin.Admin) (*zk.Node, error) {
				return a.Delete(cmd.Context(), args[0])
			})
		},
	}
	lo.AddFlags(cmd)
	return cmd
}

// changeNode runs a change on one node and prints the node's row (-o name:
// its id).
func (o *rootOptions) changeNode(cmd *cobra.Command, lo *opsOptions, change func(*nodeadmin.Admin) (*zk.Node, error)) error {
	a, closeZK, err := o.admin(cmd, &lo.zkOptions)
	if err != nil {
		return err
	}
	defer closeZK()
	n, err := change(a)
	if err != nil {
		return err
	}
	row := nodeadmin.NewNodeRow(n, time.Now())
	return lo.PrintNamed(o.Out, row, []string{row.ID}, func(w io.Writer) error {
		return cliutil.Table(w, func(w io.Writer) { nodeTable(w, []nodeadmin.NodeRow{row}) })
	})
}
