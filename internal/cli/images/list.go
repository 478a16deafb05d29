package images

import (
	"fmt"
	"io"

	"github.com/kubepool/kubepool/internal/cli/cliutil"

	"github.com/spf13/cobra"
)

func newImagesListCmd(o *cliutil.Options) *cobra.Command {
	var (
		set  imageSetOptions
		out  = cliutil.Output{Names: true}
		refs bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Print the set's image names, one per line (for image build tools)",
		Example: `  kubepool images list -t overcloud_containers.yaml.j2
  kubepool images list -t overcloud_containers.yaml.j2 --set tag=abc --refs --service NovaApi`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		PreRunE: func(*cobra.Command, []string) error {
			if err := out.Validate(); err != nil {
				return err
			}
			return set.Validate()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			images, err := set.loadLogged(o)
			if err != nil {
				return err
			}
			lines := make([]string, 0, len(images))
			for _, img := range images {
				if refs {
					lines = append(lines, img.ImageName)
				} else {
					lines = append(lines, img.Name())
				}
			}
			return out.PrintNamed(o.Out, lines, lines, func(w io.Writer) error {
				for _, l := range lines {
					if _, err := fmt.Fprintln(w, l); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	set.AddFlags(cmd)
	out.AddFlags(cmd)
	cmd.Flags().BoolVar(&refs, "refs", false, "print full references (namespace/name:tag) instead of names")
	return cmd
}
