package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubepool/kubepool/internal/podexec"
)

// podOptions name a cluster (kubeconfig and context, as kubectl takes them)
// and a container in it.
type podOptions struct {
	Kubeconfig string
	Context    string
	Namespace  string
	Container  string
}

// AddFlags adds the flags; the container's has the shorthand short ("" for
// none).
func (p *podOptions) AddFlags(cmd *cobra.Command, short string) {
	cmd.Flags().StringVar(&p.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config, as kubectl)")
	cmd.Flags().StringVar(&p.Context, "context", "", "kubeconfig context (default: its current context)")
	cmd.Flags().StringVarP(&p.Namespace, "namespace", "n", "", "namespace of the pod (default: the context's)")
	cmd.Flags().StringVarP(&p.Container, "container", short, "", "container in the pod (default: the pod's only or default container)")
}

// executor returns an exec client for the cluster and the namespace to use.
func (p *podOptions) executor() (*podexec.Executor, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = p.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: p.Context}
	overrides.Context.Namespace = p.Namespace
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("loading kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("loading kubeconfig: %w", err)
	}
	ex, err := podexec.New(cfg)
	if err != nil {
		return nil, "", err
	}
	return ex, ns, nil
}

func newGitRemoteCmd(o *rootOptions) *cobra.Command {
	var po podOptions
	var stall time.Duration
	cmd := &cobra.Command{
		Use:   "git-remote [exec] [-i] POD -- COMMAND [ARG...]",
		Short: "Run a git service in a pod over exec: a transport for git's ext:: remotes",
		Long: `git-remote runs COMMAND in a container of POD with this process's stdin,
stdout and stderr attached, over the API server's exec (WebSocket, SPDY
fallback), with no kubectl binary. It takes kubectl exec's arguments, so it is
a drop-in for the "ext::kubectl ... exec -i POD -- %S DEST" remotes of Zuul's
mirror-workspace-git-repos:

  git -c protocol.ext.allow=always push --mirror \
    "ext::kubepool git-remote --context C -n NS exec -i POD -- %S /home/zuul/src/REPO"

git expands %S to git-receive-pack (push) or git-upload-pack (fetch). The exit
status is the command's; a broken stream is an error, and so is a command that
ended without reading all its input (its exit status then never arrives: it is
given up a second after its output closed). --stall-timeout also gives up when
nothing moves for that long while there is input to send (off by default: git
may think silently for long on big repos). For whole workspaces,
"kubepool sync" is faster and verifies what it pushed.`,
		Args: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if dash < 0 || dash == len(args) {
				return errors.New("want POD -- COMMAND [ARG...]")
			}
			pre := args[:dash]
			if len(pre) > 0 && pre[0] == "exec" {
				pre = pre[1:]
			}
			if len(pre) != 1 {
				return fmt.Errorf("want exactly one POD before --, got %q", pre)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			pod, command := args[dash-1], args[dash:]
			ex, ns, err := po.executor()
			if err != nil {
				return err
			}
			t := podexec.Target{Namespace: ns, Pod: pod, Container: po.Container}
			return ex.Run(cmd.Context(), t, command, podexec.Options{Stdin: cmd.InOrStdin(), Stdout: o.Out, Stderr: o.Err, StallTimeout: stall})
		},
	}
	po.AddFlags(cmd, "c") // kubectl exec's -c: git-remote reads no config
	cmd.Flags().DurationVar(&stall, "stall-timeout", 0, "give up when, with input left to send, nothing moves for this long (0: never)")
	var stdin bool
	cmd.Flags().BoolVarP(&stdin, "stdin", "i", true, "attach stdin (always on; accepted for kubectl compatibility)")
	return cmd
}
