// Package cliutil is the plumbing every kubepool command shares: the global
// flags and the logger they ask for, the -o output option, exit codes
// carried by errors, and writing a result file. It imports no Kubernetes
// or ZooKeeper client, so that a command tree built on it alone (the
// image-set commands in kubepool-images) starts as fast as a small Go
// program.
package cliutil

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
)

// Options are the flags every command shares, and where commands write.
type Options struct {
	LogLevel  string
	LogFormat string

	// Out and Err are where commands write; tests replace them.
	Out io.Writer
	Err io.Writer
}

// AddFlags adds the shared flags to cmd as persistent flags.
func (o *Options) AddFlags(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	cmd.PersistentFlags().StringVar(&o.LogFormat, "log-format", "text", "log format: text or json")
}

// Logger returns the slog.Logger the flags ask for, writing to o.Err.
func (o *Options) Logger() (*slog.Logger, error) {
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
