package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/requestor"
)

func newReturnCmd(o *rootOptions) *cobra.Command {
	var zo zkOptions
	cmd := &cobra.Command{
		Use:   "return NODE...",
		Short: "Give back nodes from 'kubepool request'; the launcher deletes them",
		Long: `Return gives back in-use nodes as Zuul does when a build ends: under each
node's lock it sets the state to used, and the launcher deletes the node's
namespace, pod and record. Nodes that another requestor (Zuul) holds locked
are left alone.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, closeZK, err := o.admin(cmd, &zo)
			if err != nil {
				return err
			}
			defer closeZK()
			returned, err := requestor.Return(cmd.Context(), a, args)
			for _, id := range returned {
				fmt.Fprintf(o.Out, "%s used\n", id)
			}
			return err
		},
	}
	zo.AddFlags(cmd)
	return cmd
}
