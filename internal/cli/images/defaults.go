package images

import (
	"fmt"

	"github.com/kubepool/kubepool/internal/cli/cliutil"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/kubepool/kubepool/internal/imageset"
)

// newImagesDefaultsCmd is `kubepool images defaults`: TripleO's default
// parameters of a release, as `openstack tripleo container image prepare
// default` prints them.
func newImagesDefaultsCmd(o *cliutil.Options) *cobra.Command {
	var (
		release, template, format string
	)
	cmd := &cobra.Command{
		Use:   "defaults",
		Short: "Print TripleO's default image-set parameters of a release (or the one a template belongs to)",
		Example: `  kubepool images defaults --release train                # a Heat environment with ContainerImagePrepare
  kubepool images defaults -t tripleo_containers.yaml.j2 -o yaml   # the parameters alone`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var (
				d   imageset.Defaults
				err error
			)
			switch {
			case template != "":
				tpl, terr := imageset.LoadTemplate(template)
				if terr != nil {
					return terr
				}
				d, err = imageset.PickDefaults(release, tpl)
			case release != "":
				d, err = imageset.ReleaseDefaults(release)
			default:
				return fmt.Errorf("--release or --template is required")
			}
			if err != nil {
				return err
			}
			var v any
			switch format {
			case "yaml":
				v = d.Set
			case "env":
				entry := map[string]any{"set": d.Set}
				if d.TagFromLabel != "" {
					entry["tag_from_label"] = d.TagFromLabel
				}
				v = map[string]any{"parameter_defaults": map[string]any{"ContainerImagePrepare": []any{entry}}}
			default:
				return fmt.Errorf("-o %q: want env or yaml", format)
			}
			if _, err := fmt.Fprintf(o.Out, "# TripleO %s defaults (%s)\n", d.Release, d.Source); err != nil {
				return err
			}
			enc := yaml.NewEncoder(o.Out)
			enc.SetIndent(2)
			if err := enc.Encode(v); err != nil {
				return err
			}
			return enc.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&release, "release", "", "TripleO release: "+fmt.Sprint(imageset.Releases)+" or master; with -t, a release or defaults file as --defaults takes")
	f.StringVarP(&template, "template", "t", "", "print the defaults kubepool picks for this template")
	f.StringVarP(&format, "output", "o", "env", "env (a Heat environment with ContainerImagePrepare) or yaml (the parameters)")
	return cmd
}
