package cli

import (
	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/nodeadmin"
	"github.com/kubepool/kubepool/internal/zk"
)

func newReleaseHoldCmd(o *rootOptions) *cobra.Command {
	lo := newOpsOptions()
	cmd := &cobra.Command{
		Use:   "release-hold NODE",
		Short: "End a node's hold; the launcher then deletes it",
		Long: `Release-hold ends the hold of a node. A held node has run a job and is not
handed out again: like Zuul's autohold-delete, release-hold marks it used and
the launcher deletes it.`,
		Args:    cobra.ExactArgs(1),
		PreRunE: validate(lo),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.changeNode(cmd, lo, func(a *nodeadmin.Admin) (*zk.Node, error) {
				return a.ReleaseHold(cmd.Context(), args[0])
			})
		},
	}
	lo.AddFlags(cmd)
	return cmd
}
