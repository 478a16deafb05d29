// Package cliutil is the plumbing every kubepool command shares: the global
// flags and the logger they ask for, the -o output option, progress on a
// terminal, exit codes carried by errors, and writing a result file. It
// imports no Kubernetes or ZooKeeper client, so that a command tree built
// on it alone (the image-set commands in kubepool-images) starts as fast as
// a small Go program.
package cliutil

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/cli/progress"
)

// Options are the flags every command shares, and where commands write.
type Options struct {
	LogLevel  string
	LogFormat string

	// Out and Err are where commands write; tests replace them.
	Out io.Writer
	Err io.Writer

	log  *slog.Logger
	logw *switchWriter
}

// AddFlags adds the shared flags to cmd as persistent flags, and sets cmd's
// PersistentPreRunE to build the logger from them before any command runs.
func (o *Options) AddFlags(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	cmd.PersistentFlags().StringVar(&o.LogFormat, "log-format", "text", "log format: text or json")
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error { return o.Setup() }
}

// Setup builds the logger the flags ask for, writing to o.Err. The root
// command calls it once, in its PersistentPreRunE.
func (o *Options) Setup() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", o.LogLevel)
	}
	o.logw = &switchWriter{w: o.Err}
	hopts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(o.LogFormat) {
	case "text":
		o.log = slog.New(slog.NewTextHandler(o.logw, hopts))
	case "json":
		o.log = slog.New(slog.NewJSONHandler(o.logw, hopts))
	default:
		return fmt.Errorf("--log-format %q: want text or json", o.LogFormat)
	}
	return nil
}

// Log is the logger Setup built. Before Setup (a command run outside the
// root command, as in some tests) it builds one; bad flags then give the
// default text logger at info.
func (o *Options) Log() *slog.Logger {
	if o.log == nil {
		if err := o.Setup(); err != nil {
			o.logw = &switchWriter{w: o.Err}
			o.log = slog.New(slog.NewTextHandler(o.logw, nil))
		}
	}
	return o.log
}

// Progress returns a status line on o.Err when show is set and o.Err is a
// terminal, and nil otherwise (all of its methods do nothing on nil).
// Until its Finish, log records go through it, so that they and the line
// do not mix. Commands pass show = their -o is table: progress is for
// people, never next to output meant for a program.
func (o *Options) Progress(show bool) *progress.Line {
	if !show {
		return nil
	}
	l := progress.New(o.Err)
	if l == nil {
		return nil
	}
	o.Log() // the log writer exists
	prev := o.logw.set(l)
	l.OnFinish(func() { o.logw.set(prev) })
	return l
}

// switchWriter is the log's writer, which a progress line takes over while
// it is shown.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	w := s.w
	s.mu.Unlock()
	return w.Write(b)
}

func (s *switchWriter) set(w io.Writer) io.Writer {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.w
	s.w = w
	return prev
}
