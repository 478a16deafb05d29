package images

import (
	"io"

	"github.com/kubepool/kubepool/internal/cli/cliutil"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/imageset"
)

// newImagesPrepareCmd is `kubepool images prepare`: TripleO's
// `openstack tripleo container image prepare`, copies included.
func newImagesPrepareCmd(o *cliutil.Options) *cobra.Command {
	var (
		set     imageSetOptions
		reg     imagesRegistryOptions
		envFile string
		dryRun  bool
	)
	cmd := &cobra.Command{
		Use:   "prepare",
		Short: "Do what TripleO's container image prepare does: copy to each push_destination (all or nothing) and write the environment file",
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
			p, err := set.prepare(o)
			if err != nil {
				return err
			}
			if len(p.Uploads) > 0 && !dryRun {
				// Progress on a terminal: stdout is the environment.
				line := o.Progress(true)
				defer line.Finish()
				meter := &imageset.BackoffMeter{}
				retries := reg.Retries
				if retries == 0 {
					retries = -1
				}
				c, err := imageset.NewClient(imageset.RegistryOptions{
					CAFile: reg.CAFile, Insecure: reg.Insecure, Jobs: reg.Jobs,
					RequestsPerSecond: reg.RPS, Retries: retries, Logger: log,
					Creds: reg.Creds, AuthFile: reg.AuthFile, WrapTransport: meter.Wrap, OnProgress: imagesProgress(line),
				})
				if err != nil {
					return err
				}
				steps, err := c.Copy(cmd.Context(), p.Uploads, imageset.CopyOptions{OnBackoff: meter.Add})
				line.Finish()
				if n, waited := meter.Throttled(); n > 0 {
					log.Info("registry throttled", "answers_429", n, "backoff", waited.Round(1e6).String())
				}
				if err != nil {
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
	return cmd
}
