package cli

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/imageset"
)

func newImagesRenderCmd(o *rootOptions) *cobra.Command {
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			images, err := set.load()
			if err != nil {
				return err
			}
			if envFile != "" {
				if err := writeFileWith(envFile, func(w io.Writer) error { return imageset.WriteEnvFile(w, images) }); err != nil {
					return err
				}
			}
			return imageset.WriteImages(o.Out, images)
		},
	}
	set.AddFlags(cmd)
	cmd.Flags().StringVar(&envFile, "env-file", "", "write a Heat environment (parameter_defaults: image parameters) here")
	return cmd
}
