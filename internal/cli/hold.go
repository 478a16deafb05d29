package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/nodeadmin"
	"github.com/kubepool/kubepool/internal/zk"
)

type holdOptions struct {
	opsOptions
	Reason     string
	Job        string
	Expiration time.Duration
}

func (h *holdOptions) AddFlags(cmd *cobra.Command) {
	h.opsOptions.AddFlags(cmd)
	cmd.Flags().StringVar(&h.Reason, "reason", "", "why the node is held (required; goes into its comment)")
	cmd.Flags().StringVar(&h.Job, "job", "", "the job whose failure is being looked at (hold_job)")
	cmd.Flags().DurationVar(&h.Expiration, "expiration", 0, "delete the node once held this long (0: until released or max-hold-age)")
}

func (h *holdOptions) Validate() error {
	if h.Reason == "" {
		return fmt.Errorf("--reason is required: it goes into the node's comment for whoever finds it held")
	}
	if h.Expiration < 0 {
		return fmt.Errorf("--expiration %v: want 0 or more", h.Expiration)
	}
	return h.opsOptions.Validate()
}

func newHoldCmd(o *rootOptions) *cobra.Command {
	ho := holdOptions{opsOptions: *newOpsOptions()}
	cmd := &cobra.Command{
		Use:   "hold NODE --reason REASON",
		Short: "Keep a node from being deleted or handed out",
		Long: `Hold sets a node's state to hold with the reason as its comment, as Zuul's
autohold does to the nodes of a failed build, so that someone can look at it.
It applies to in-use, used and unallocated ready nodes that nobody else holds
locked. The launcher keeps held nodes until 'kubepool release-hold', the
--expiration, or the config's max-hold-age.`,
		Args:    cobra.ExactArgs(1),
		PreRunE: validate(&ho),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.changeNode(cmd, &ho.opsOptions, func(a *nodeadmin.Admin) (*zk.Node, error) {
				return a.Hold(cmd.Context(), args[0], nodeadmin.HoldOptions{Reason: ho.Reason, Job: ho.Job, Expiration: ho.Expiration})
			})
		},
	}
	ho.AddFlags(cmd)
	return cmd
}
