package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/requestor"
)

func newReturnCmd(o *rootOptions) *cobra.Command {
	var zo zkOptions
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "return NODE...",
		Short: "Give back nodes from 'kubepool request'; the launcher deletes them",
		Long: `Return gives back in-use nodes as Zuul does when a build ends: under each
node's lock it sets the state to used, and the launcher deletes the node's
namespace, pod and record. Nodes that another requestor (Zuul) holds locked
are left alone.`,
		Args: cobra.MinimumNArgs(1),
		PreRunE: func(*cobra.Command, []string) error {
			if wait < 0 {
				return fmt.Errorf("--wait %v: want 0 or more", wait)
			}
			return zo.Validate()
		},
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
			if err != nil || wait == 0 {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), wait)
			defer cancel()
			if err := requestor.WaitDeleted(ctx, a.ZK, returned); err != nil {
				return err
			}
			for _, id := range returned {
				fmt.Fprintf(o.Out, "%s deleted\n", id)
			}
			return nil
		},
	}
	zo.AddFlags(cmd)
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait this long for the launcher to delete the nodes (0: do not wait)")
	return cmd
}
