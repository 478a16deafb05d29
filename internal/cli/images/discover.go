package images

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"text/tabwriter"

	"github.com/kubepool/kubepool/internal/cli/cliutil"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/imageset"
)

func newImagesDiscoverCmd(o *cliutil.Options) *cobra.Command {
	var (
		set              imageSetOptions
		reg              imagesRegistryOptions
		out              = cliutil.Output{Names: true}
		moving, pattern  string
		tagFromLabel     string
		imagesFile       string
		lockFile         string
		envFile          string
		missingReport    string
		requireAll       bool
		requireConsensus bool
	)
	cmd := &cobra.Command{
		Use:   "discover",
		Short: "Find which immutable tag each image's moving tag points at, in the registry",
		Long: `discover resolves, for every image of the set, the moving tag (the images'
own tag, or --moving-tag) to the immutable tag (matching --tag-pattern) that has
the same manifest digest. Images without the moving tag are dropped and
reported; --require-all makes that an error. With --tag-from-label the tag is
read from the image's labels ("rdo_version" or "{version}-{release}").`,
		Example: `  kubepool images discover -t overcloud_containers.yaml.j2 --params params.yaml \
      --moving-tag current-tripleo --images-file images.yaml --env-file env.yaml`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		PreRunE: func(*cobra.Command, []string) error {
			if err := out.Validate(); err != nil {
				return err
			}
			if err := set.Validate(); err != nil {
				return err
			}
			return reg.Validate()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			re, err := regexp.Compile(pattern)
			if err != nil {
				return fmt.Errorf("--tag-pattern: %w", err)
			}
			images, err := set.loadLogged(o)
			if err != nil {
				return err
			}
			line := o.Progress(out.Text())
			defer line.Finish()
			c, err := reg.client(o, line, nil)
			if err != nil {
				return err
			}
			res, err := c.Discover(cmd.Context(), images, imageset.DiscoverOptions{MovingTag: moving, TagPattern: re, TagFromLabel: tagFromLabel})
			line.Finish()
			if err != nil {
				return err
			}
			if missingReport != "" {
				if err := cliutil.WriteFile(missingReport, func(w io.Writer) error { return imagesYAML(w, res.Missing) }); err != nil {
					return err
				}
			}
			if imagesFile != "" {
				if err := cliutil.WriteFile(imagesFile, func(w io.Writer) error { return imageset.WriteImages(w, res.Images) }); err != nil {
					return err
				}
			}
			if lockFile != "" {
				if err := cliutil.WriteFile(lockFile, func(w io.Writer) error { return imageset.WriteDiscoverLock(w, res) }); err != nil {
					return err
				}
			}
			if envFile != "" {
				if err := cliutil.WriteFile(envFile, func(w io.Writer) error { return imageset.WriteEnvFile(w, res.Images) }); err != nil {
					return err
				}
			}
			names := make([]string, len(res.Images))
			for i, img := range res.Images {
				names[i] = img.ImageName
			}
			if err := out.PrintNamed(o.Out, res, names, func(w io.Writer) error { return discoverTable(w, res) }); err != nil {
				return err
			}
			var errs []error
			if requireAll && len(res.Missing) > 0 {
				errs = append(errs, fmt.Errorf("%d of %d images lack the moving tag or a matching tag (--require-all)", len(res.Missing), len(images)))
			}
			if requireConsensus && !res.Consensus() {
				errs = append(errs, fmt.Errorf("images resolve to %d different tags %v (--require-consensus)", len(res.Tags), res.Tags))
			}
			return errors.Join(errs...)
		},
	}
	set.AddFlags(cmd)
	reg.AddFlags(cmd)
	out.AddFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&moving, "moving-tag", "", "tag to resolve (default: each image's own tag from the template)")
	f.StringVar(&pattern, "tag-pattern", imageset.DefaultTagPattern.String(), "regular expression of the immutable tags to look for")
	f.StringVar(&tagFromLabel, "tag-from-label", "", `read the tag from this label or label format ("{version}-{release}") instead of searching`)
	f.StringVar(&imagesFile, "images-file", "", "write the resolved image list (YAML, as render prints it) here")
	f.StringVar(&lockFile, "lock-file", "", "write the resolved images pinned to their digests (image:tag -> digest, YAML) here: promote --from-lock's input")
	f.StringVar(&envFile, "env-file", "", "write the Heat environment of the resolved images here")
	f.StringVar(&missingReport, "missing-report", "", "write the dropped images and why (YAML) here")
	f.BoolVar(&requireAll, "require-all", false, "fail if any image was dropped")
	f.BoolVar(&requireConsensus, "require-consensus", false, "fail unless every image resolved to the same tag")
	return cmd
}

func discoverTable(w io.Writer, res *imageset.DiscoverResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tTAG\tDIGEST")
	for _, r := range res.Resolved {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Image, r.Tag, r.Digest)
	}
	for _, m := range res.Missing {
		fmt.Fprintf(tw, "%s\t-\tdropped: %s\n", m.Image, m.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d resolved, %d dropped, tags: %v, consensus: %v\n", len(res.Resolved), len(res.Missing), res.Tags, res.Consensus())
	return err
}

func imagesYAML(w io.Writer, v any) error { return cliutil.WriteYAML(w, v) }
