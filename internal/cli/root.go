// Package cli builds kubepool's command tree. Each command lives in its own
// file as a constructor taking the shared root options; RunE is a thin call
// into the package that does the work.
package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// rootOptions are the flags every command shares.
type rootOptions struct {
	LogLevel  string
	LogFormat string

	// Out and Err are where commands write; tests replace them.
	Out io.Writer
	Err io.Writer
}

func (o *rootOptions) addFlags(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	cmd.PersistentFlags().StringVar(&o.LogFormat, "log-format", "text", "log format: text or json")
}

// logger returns the slog.Logger the flags ask for, writing to o.Err.
func (o *rootOptions) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.LogLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(o.LogFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(o.Err, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(o.Err, hopts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", o.LogFormat)
	}
}

// New returns kubepool's root command.
func New() *cobra.Command {
	o := &rootOptions{Out: os.Stdout, Err: os.Stderr}
	cmd := &cobra.Command{
		Use:           "kubepool",
		Short:         "Kubernetes build resources for CI jobs, and container image sets",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	o.addFlags(cmd)
	cmd.AddCommand(
		newVersionCmd(o),
		newImagesCmd(o),
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
