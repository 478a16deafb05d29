// Command kubepool-images is `kubepool images` on its own: the image-set
// commands (list, render, discover, promote, defaults, prepare) with the
// same flags and output, in a binary that links no Kubernetes or ZooKeeper
// client. It starts in about a millisecond where kubepool, whose package
// initialisation registers every Kubernetes API type, takes about ten: for
// pipelines that render image sets many times (README.md, "Image sets").
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/kubepool/kubepool/internal/cli/cliutil"
	"github.com/kubepool/kubepool/internal/cli/images"
)

func main() {
	o := &cliutil.Options{Out: os.Stdout, Err: os.Stderr}
	cmd := images.NewCmd(o)
	cmd.Use = "kubepool-images"
	cmd.Short = "Container image sets (kubepool images, without the Kubernetes client)"
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.Version = version()
	o.AddFlags(cmd)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubepool-images:", err)
		os.Exit(cliutil.ExitCode(err))
	}
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "(devel)"
}
