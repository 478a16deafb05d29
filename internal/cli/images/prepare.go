package images

import (
	"errors"
	"io"
	"path/filepath"
	"time"

	"github.com/kubepool/kubepool/internal/cli/cliutil"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/imageset"
)

// newImagesPrepareCmd is `kubepool images prepare`: TripleO's
// `openstack tripleo container image prepare`, copies included.
func newImagesPrepareCmd(o *cliutil.Options) *cobra.Command {
	var (
		set      imageSetOptions
		reg      imagesRegistryOptions
		envFile  string
		journal  string
		dryRun   bool
		rollback bool
	)
	cmd := &cobra.Command{
		Use:   "prepare",
		Short: "Do what TripleO's container image prepare does: copy to each push_destination (all or nothing) and write the environment file",
		Long: `Render the image set as TripleO's container image prepare does and copy every
image whose ContainerImagePrepare entry has a push_destination, all or nothing:
every source is checked first (nothing is written if one is missing), the plan
goes to a journal (--journal), every image's content is copied by digest with
no tag, and only then are the tags put and verified. An interrupted copy (a
registry down, kill -9) is finished by running the same command again, which
sends only what is missing; --rollback puts the targets back as they were.
Then the Heat environment is written, pointing at the destinations.`,
		Example: `  kubepool images prepare -t tripleo_containers.yaml.j2 -e containers-prepare-parameter.yaml \
      --output-env-file containers-env.yaml`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		PreRunE: func(*cobra.Command, []string) error {
			if err := set.Validate(); err != nil {
				return err
			}
			return reg.Validate()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := o.Log()
			if journal == "" {
				journal = filepath.Join(filepath.Dir(envFile), "prepare.journal")
			}
			meter := &imageset.BackoffMeter{}
			if rollback {
				c, err := reg.client(o, nil, meter.Wrap)
				if err != nil {
					return err
				}
				res, err := c.RollbackJournal(cmd.Context(), journal)
				if err != nil {
					return err
				}
				log.Info("rolled back", "journal", journal, "restored", len(res.Restored), "removed", len(res.Removed), "unremovable", len(res.Unremovable))
				for _, u := range res.Unremovable {
					log.Warn("tag left in place", "target", u.Target, "how_to_remove", u.How)
				}
				return nil
			}
			p, err := set.prepare(o)
			if err != nil {
				return err
			}
			if len(p.Uploads) > 0 && !dryRun {
				// Progress on a terminal: stdout is the environment.
				line := o.Progress(true)
				defer line.Finish()
				c, err := reg.client(o, line, meter.Wrap)
				if err != nil {
					return err
				}
				steps, err := c.Copy(cmd.Context(), p.Uploads, imageset.CopyOptions{Journal: journal, OnBackoff: meter.Add})
				line.Finish()
				if n, waited := meter.Throttled(); n > 0 {
					log.Info("registry throttled", "answers_429", n, "backoff", waited.Round(time.Millisecond).String())
				}
				if err != nil {
					if _, ok := errors.AsType[*imageset.PromoteError](err); ok {
						return &cliutil.ExitError{Code: exitIncomplete, Err: err}
					}
					return err
				}
				counts := map[imageset.Action]int{}
				for _, s := range steps {
					counts[s.Action]++
				}
				st := c.Stats()
				log.Info("copied", "images", len(steps), "created", counts[imageset.ActionCreate], "updated", counts[imageset.ActionUpdate],
					"unchanged", counts[imageset.ActionUnchanged], "blob_bytes_sent", st.BlobUploadBytes, "requests", st.Requests)
			}
			if envFile != "" {
				return cliutil.WriteFile(envFile, func(w io.Writer) error { return imageset.WritePreparedEnv(w, p) })
			}
			if len(p.Uploads) == 0 {
				log.Info("nothing to copy: no ContainerImagePrepare entry has a push_destination")
			}
			return imageset.WritePreparedEnv(o.Out, p)
		},
	}
	set.AddFlags(cmd)
	reg.AddFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&envFile, "output-env-file", "", "write the Heat environment here (default: standard output)")
	f.BoolVar(&dryRun, "dry-run", false, "copy nothing; write the environment only")
	f.StringVar(&journal, "journal", "", "the copy's journal (default: prepare.journal next to --output-env-file, else in the current directory)")
	f.BoolVar(&rollback, "rollback", false, "undo the copy the journal holds: put the targets back to their previous digests")
	return cmd
}
