// Command kubepool hands out Kubernetes build resources to CI jobs and manages
// the container image sets those jobs build and promote. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubepool/kubepool/internal/cli"
	"github.com/kubepool/kubepool/internal/cli/cliutil"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.New().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubepool:", err)
		os.Exit(cliutil.ExitCode(err))
	}
}
