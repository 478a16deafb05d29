// Package cli builds kubepool's command tree. Each command lives in its own
// file as a constructor taking the shared root options; RunE is a thin call
// into the package that does the work.
package cli

import (
	"os"

	"github.com/kubepool/kubepool/internal/cli/cliutil"
	"github.com/kubepool/kubepool/internal/cli/images"

	"github.com/spf13/cobra"
)

// rootOptions are the flags every command shares, with the helpers the
// node commands build on them.
type rootOptions struct{ cliutil.Options }

// New returns kubepool's root command.
func New() *cobra.Command {
	return newRoot(&rootOptions{Options: cliutil.Options{Out: os.Stdout, Err: os.Stderr}})
}

// newRoot is the command tree writing where o says.
func newRoot(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:           "kubepool",
		Short:         "Kubernetes build resources for CI jobs, and container image sets",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	o.AddFlags(cmd)
	cmd.AddCommand(
		newVersionCmd(o),
		images.NewCmd(&o.Options),
		newConfigCmd(o),
		newLauncherCmd(o),
		newListCmd(o),
		newRequestListCmd(o),
		newLabelListCmd(o),
		newInfoCmd(o),
		newDeleteCmd(o),
		newHoldCmd(o),
		newReleaseHoldCmd(o),
		newRequestCmd(o),
		newReturnCmd(o),
		newExecCmd(o),
		newSyncCmd(o),
		newGitRemoteCmd(o),
		newBuildsetCmd(o),
	)
	return cmd
}
