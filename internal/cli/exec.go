package cli

import (
	"errors"
	"fmt"

	"github.com/kubepool/kubepool/internal/cli/cliutil"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/nodeaccess"
	"github.com/kubepool/kubepool/internal/podexec"
	"github.com/kubepool/kubepool/internal/zk"
)

// ExitStreamBroken is kubepool exec's exit code when the exec stream broke
// before the command's exit status arrived (ssh uses 255 likewise).
const ExitStreamBroken = 255

type execOptions struct {
	zkOptions
	Stdin     bool
	Container string
}

func (e *execOptions) AddFlags(cmd *cobra.Command) {
	e.zkOptions.AddFlags(cmd)
	cmd.Flags().BoolVarP(&e.Stdin, "stdin", "i", false, "pass standard input to the command")
	cmd.Flags().StringVar(&e.Container, "container", "", "container to run in (default: the pod's only one)")
}

func newExecCmd(o *rootOptions) *cobra.Command {
	var eo execOptions
	cmd := &cobra.Command{
		Use:   "exec NODE [--] COMMAND [ARG...]",
		Short: "Run a command in a pod node, streaming its output; exit with its exit code",
		Long: `Exec runs a command in a pod node with the node's own credentials (its
service-account token from the node record, not the launcher's), streams its
standard output and error, and exits with the command's exit code. If the
exec stream breaks before the exit status arrives, the exit code is 255 and
the command may or may not have finished. Flags go before NODE.`,
		Example: `  kubepool exec 0000000042 -- git --version
  tar c src | kubepool exec -i 0000000042 -- tar x -C /tmp`,
		Args:    cobra.MinimumNArgs(2),
		PreRunE: validate(&eo),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := o.zookeeper(cmd, &eo.zkOptions)
			if err != nil {
				return err
			}
			defer c.Close()
			argv := args[1:]
			if argv[0] == "--" { // flags stop at NODE, so cobra keeps the "--"
				argv = argv[1:]
			}
			if len(argv) == 0 {
				return fmt.Errorf("no command: kubepool exec NODE -- COMMAND [ARG...]")
			}
			return runExec(cmd, o, c, eo, args[0], argv)
		},
	}
	cmd.Flags().SetInterspersed(false) // the command's own flags are not ours
	eo.AddFlags(cmd)
	return cmd
}

func runExec(cmd *cobra.Command, o *rootOptions, c *zk.Client, eo execOptions, node string, argv []string) error {
	ctx := cmd.Context()
	a, target, err := nodeaccess.ResolvePod(ctx, c, node)
	if errors.Is(err, nodeaccess.ErrNotPod) {
		return fmt.Errorf("%w: use kubectl with `kubepool request -o kubeconfig` for namespace nodes", err)
	}
	if err != nil {
		return err
	}
	if st := a.Node.State; st != zk.NodeInUse && st != zk.NodeHold && st != zk.NodeReady {
		return fmt.Errorf("node %s is %s: only ready, in-use and held nodes have a pod to run in", node, st)
	}
	target.Container = eo.Container
	ex, err := podexec.New(a.RESTConfig)
	if err != nil {
		return err
	}
	opts := podexec.Options{Stdout: o.Out, Stderr: o.Err}
	if eo.Stdin {
		opts.Stdin = cmd.InOrStdin()
	}
	err = ex.Run(ctx, target, argv, opts)
	if ee, ok := errors.AsType[*podexec.ExecError](err); ok {
		return cliutil.Exitf(ee.ExitCode, "command %q in node %s (pod %s) exited with code %d", argv, node, target, ee.ExitCode)
	}
	if errors.Is(err, podexec.ErrStream) {
		return &cliutil.ExitError{Code: ExitStreamBroken, Err: fmt.Errorf("%w: the command may or may not have finished", err)}
	}
	if se, ok := errors.AsType[*podexec.StartError](err); ok {
		// The command never ran; 127 is what a shell says for that.
		return &cliutil.ExitError{Code: 127, Err: fmt.Errorf("node %s: %w", node, se)}
	}
	return err
}
