package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/cli/cliutil"
	"github.com/kubepool/kubepool/internal/gitsync"
	"github.com/kubepool/kubepool/internal/nodeaccess"
	"github.com/kubepool/kubepool/internal/podexec"
)

type syncOptions struct {
	pod      podOptions
	zk       zkOptions // for NODE: where the launcher's node records are
	Pod      string
	Src      string
	Dest     string
	Parallel int
	Attempts int
	Output   cliutil.Output
	// WebSocket makes exec try WebSocket before SPDY (SPDY first is faster
	// for bulk data: see podexec.Executor.PreferSPDY).
	WebSocket    bool
	NoClean      bool
	Check        bool
	StallTimeout time.Duration
}

func (s *syncOptions) AddFlags(cmd *cobra.Command) {
	s.pod.AddFlags(cmd, "") // -c is the launcher config, as everywhere
	cmd.Flags().StringVar(&s.Pod, "pod", "", "pod to sync into (with --namespace), instead of a NODE")
	cmd.Flags().StringVar(&s.zk.Servers, "zookeeper", "", `for NODE: ZooKeeper holding the node records, "host:port[,host:port...][/chroot]"`)
	cmd.Flags().StringVarP(&s.zk.File, "config", "c", defaultConfigFile, "for NODE: launcher config whose zookeeper-servers to use (when --zookeeper is not given)")
	cmd.Flags().StringVar(&s.zk.File, "launcher-config", defaultConfigFile, "old name of --config")
	_ = cmd.Flags().MarkDeprecated("launcher-config", "use -c/--config (-c no longer names the container: use --container); --launcher-config goes in the next release")
	cmd.Flags().DurationVar(&s.zk.Timeout, "zookeeper-timeout", 10*time.Second, "for NODE: how long to try to reach ZooKeeper")
	cmd.Flags().StringVar(&s.Src, "src", "", "workspace root on this machine: the directory holding the repos (e.g. Zuul's work dir with src/<host>/<project>)")
	cmd.Flags().StringVar(&s.Dest, "dest", "", "workspace root in the pod, absolute or relative to $HOME there (default: $HOME)")
	cmd.Flags().IntVar(&s.Parallel, "parallel", 8, "repos pushed at once")
	cmd.Flags().IntVar(&s.Attempts, "attempts", 3, "tries per repo before giving up on it")
	s.Output.AddFlags(cmd)
	cmd.Flags().BoolVar(&s.WebSocket, "websocket", false, "try WebSocket before SPDY for exec (SPDY first is faster for bulk data)")
	cmd.Flags().BoolVar(&s.NoClean, "no-clean", false, "leave working trees with changes in the pod as they are, and fail their repos (exit status 1), instead of resetting and cleaning them")
	cmd.Flags().BoolVar(&s.Check, "check", false, "change nothing: compare the repos in the pod with --src (refs, HEAD, working tree, interrupted syncs) and exit 1 unless all are verified")
	cmd.Flags().DurationVar(&s.StallTimeout, "stall-timeout", gitsync.DefaultStallTimeout, "give up an exec (and retry it) when, for this long, the pod takes none of its input and prints nothing, or, once all input is sent, reports no progress")
}

func (s *syncOptions) Validate() error {
	switch {
	case s.Src == "":
		return errors.New("--src is required: the workspace root holding the repos")
	case s.Parallel < 1 || s.Attempts < 1:
		return errors.New("--parallel and --attempts must be at least 1")
	case s.StallTimeout <= 0:
		return fmt.Errorf("--stall-timeout %v: want a positive duration", s.StallTimeout)
	}
	return s.Output.Validate()
}

func newSyncCmd(o *rootOptions) *cobra.Command {
	var so syncOptions
	cmd := &cobra.Command{
		Use:   "sync {NODE | --namespace NS --pod POD} --src DIR [--dest PATH] [REPO...]",
		Short: "Push a workspace of git repos into a pod: every ref, HEAD and the checked-out tree, verified",
		Long: `sync pushes the git repos under --src (all of them, or the REPOs named, as
paths relative to --src) into the pod, each to the same relative path under
--dest, over exec (no kubectl, no SSH). Afterwards every ref and HEAD in the pod
are the source's (refs the source lacks are deleted), the working tree is reset
to HEAD with untracked files removed, and this is read back and checked repo by
repo: a repo counts as verified only when its refs, HEAD and working tree match.
Every sync checks the working trees, also when no ref changed, and resets and
cleans one that was changed in the pod (--no-clean: leaves it and fails).
Only the objects the pod lacks are sent, so a re-sync is quick. An exec whose
command died, or that stalls (--stall-timeout), is given up within seconds and
retried up to --attempts times; repos that still fail are listed with their
state in the pod and the pod's own error message, and the exit status is 1.
What an interrupted sync leaves in the pod is marked partial, reported by the
next sync (which repairs it) and by --check, which only reads. Into a container
without git, sync through the pod's git sidecar (--container git --dest <its
mount path>). Progress goes to stderr on a terminal; the table to stdout.`,
		PreRunE: validate(&so),
		RunE: func(cmd *cobra.Command, args []string) error {
			progress := newSyncProgress(o.Progress(!so.Check && so.Output.Text()))
			defer progress.Finish()
			log := o.Log()
			var (
				ex     *podexec.Executor
				target podexec.Target
				err    error
			)
			if so.Pod == "" {
				// NODE: a pod node of the launcher, reached with its own
				// token, as its user would.
				if len(args) == 0 {
					return errors.New("want a NODE, or --namespace and --pod")
				}
				node := args[0]
				args = args[1:]
				if err := so.zk.Validate(); err != nil {
					return err
				}
				c, _, err := o.zookeeper(cmd, &so.zk)
				if err != nil {
					return oldContainerFlag(cmd, err)
				}
				defer c.Close()
				a, pod, err := nodeaccess.ResolvePod(cmd.Context(), c, node)
				if err != nil {
					return err
				}
				if ex, err = podexec.New(a.RESTConfig); err != nil {
					return err
				}
				target, so.Dest = a.GitTarget(pod, so.pod.Container, so.Dest)
			} else {
				if err := oldContainerFlag(cmd, nil); err != nil {
					return err
				}
				var ns string
				if ex, ns, err = so.pod.executor(); err != nil {
					return err
				}
				target = podexec.Target{Namespace: ns, Pod: so.Pod, Container: so.pod.Container}
			}
			repos, err := gitsync.FindRepos(so.Src, args...)
			if err != nil {
				return err
			}
			ex.PreferSPDY = !so.WebSocket
			s := &gitsync.Syncer{
				Exec:         ex,
				Target:       target,
				Dest:         so.Dest,
				Parallel:     so.Parallel,
				Attempts:     so.Attempts,
				NoClean:      so.NoClean,
				StallTimeout: so.StallTimeout,
				Logger:       log,
			}
			if progress != nil {
				progress.total = len(repos)
				s.Progress = progress.Update
			}
			start := time.Now()
			var res *gitsync.Result
			if so.Check {
				res, err = s.Check(cmd.Context(), repos)
			} else {
				res, err = s.Sync(cmd.Context(), repos)
			}
			if progress != nil {
				progress.Finish()
			}
			if res != nil {
				d := time.Since(start)
				perr := so.Output.Print(o.Out, res, func(w io.Writer) error { return printSync(w, res, d) })
				if perr != nil {
					return errors.Join(err, perr)
				}
			}
			return err
		},
	}
	so.AddFlags(cmd)
	return cmd
}

// oldContainerFlag turns err, or a -c given with --pod, into an error that
// says -c is the launcher config now (kubepool sync took -c for the
// container before).
func oldContainerFlag(cmd *cobra.Command, err error) error {
	if !cmd.Flags().Changed("config") {
		return err
	}
	if err == nil {
		if cmd.Flags().Changed("pod") {
			return errors.New("-c/--config is the launcher config, which --pod does not read: for the container use --container (kubepool sync took -c for the container before)")
		}
		return nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w (-c/--config is the launcher config; for the container use --container: kubepool sync took -c for the container before)", err)
	}
	return err
}

func printSync(w io.Writer, res *gitsync.Result, d time.Duration) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPO\tHEAD\tREFS\tOBJECTS\tBYTES\tATTEMPTS\tSTATUS")
	verified, partial := 0, 0
	for _, r := range res.Repos {
		status := "synced"
		switch {
		case r.State != gitsync.StateVerified:
			status = "FAILED (" + string(r.State) + ")"
		case r.UpToDate:
			status = "up to date"
		case r.Cleaned:
			status = "synced (tree cleaned)"
		}
		if r.State == gitsync.StateVerified {
			verified++
		}
		if r.WasPartial {
			partial++
			if r.State == gitsync.StateVerified && !r.UpToDate {
				status += ", repaired an interrupted sync"
			} else {
				status += ", left partial by an interrupted sync"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", r.Path, shortHead(r.Head), r.Refs, r.Objects, r.Bytes, r.Attempts, status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d of %d repos verified in the pod, %d bytes sent, %v\n", verified, len(res.Repos), res.Bytes(), d.Round(time.Millisecond))
	return err
}

func shortHead(h string) string {
	if len(h) == 40 {
		return h[:12] + " (detached)"
	}
	if len(h) > 5 && h[:5] == "ref: " {
		return h[5:]
	}
	return h
}
