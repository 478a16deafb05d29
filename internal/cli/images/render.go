package images

import (
	"io"

	"github.com/kubepool/kubepool/internal/cli/cliutil"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/imageset"
)

func newImagesRenderCmd(o *cliutil.Options) *cobra.Command {
	var (
		set     imageSetOptions
		envFile string
	)
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Print the concrete image list (YAML) and optionally write a Heat environment file",
		Example: `  kubepool images render -t overcloud_containers.yaml.j2 --set tag=current-tripleo \
      --env-file containers-env.yaml > images.yaml`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		PreRunE:      func(*cobra.Command, []string) error { return set.Validate() },
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := set.prepare(o)
			if err != nil {
				return err
			}
			if envFile != "" {
				if err := cliutil.WriteFile(envFile, func(w io.Writer) error { return imageset.WritePreparedEnv(w, p) }); err != nil {
					return err
				}
			}
			return imageset.WriteImages(o.Out, p.Images)
		},
	}
	set.AddFlags(cmd)
	cmd.Flags().StringVar(&envFile, "env-file", "", "write the Heat environment TripleO would (parameter_defaults: the template's image parameters, DockerInsecureRegistryAddress) here")
	return cmd
}
