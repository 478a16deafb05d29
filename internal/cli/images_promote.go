package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/imageset"
)

func newImagesPromoteCmd(o *rootOptions) *cobra.Command {
	var (
		set      imageSetOptions
		reg      imagesRegistryOptions
		out      imagesOutput
		popts    imageset.PromoteOptions
		lockFile string
	)
	cmd := &cobra.Command{
		Use:   "promote",
		Short: "Point a tag of every image at what another tag has, all or nothing",
		Long: `promote checks that every image has --from (and records what --to points at
now), writes every --to tag (the same manifest: no blob is copied within a
repository; multi-arch indexes are promoted whole), and verifies them. If any
step fails, the --to tags already written are put back as they were.`,
		Example: `  kubepool images promote -t overcloud_containers.yaml.j2 --params params.yaml \
      --from 0123456789abcdef0123456789abcdef01234567 --to current-passed-ci --lock-file promoted.lock`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.Validate(); err != nil {
				return err
			}
			if popts.From == "" || popts.To == "" {
				return fmt.Errorf("--from and --to are required")
			}
			images, err := set.load()
			if err != nil {
				return err
			}
			c, err := reg.client(o)
			if err != nil {
				return err
			}
			res, err := c.Promote(cmd.Context(), images, popts)
			if res != nil {
				if perr := out.print(o.Out, res, func(w io.Writer) error { return promoteTable(w, res, popts.DryRun) }); perr != nil && err == nil {
					err = perr
				}
			}
			if err != nil {
				return err
			}
			if lockFile != "" && !popts.DryRun {
				return writeFileWith(lockFile, func(w io.Writer) error { return imageset.WriteLock(w, res) })
			}
			return nil
		},
	}
	set.AddFlags(cmd)
	reg.AddFlags(cmd)
	out.AddFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&popts.From, "from", "", "tag the set was tested as (e.g. the hash)")
	f.StringVar(&popts.To, "to", "", "tag to promote to (e.g. current-passed-ci)")
	f.StringVar(&popts.Destination, "destination", "", "promote into this registry/namespace instead of the images' own repositories")
	f.BoolVar(&popts.DryRun, "dry-run", false, "check and print the plan; change nothing")
	f.StringVar(&lockFile, "lock-file", "", "write target -> digest here after a successful promotion")
	return cmd
}

func promoteTable(w io.Writer, res *imageset.PromoteResult, dryRun bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tACTION\tDIGEST\tPREVIOUS")
	counts := map[imageset.Action]int{}
	for _, s := range res.Steps {
		counts[s.Action]++
		prev := s.Previous
		if prev == "" {
			prev = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Target, s.Action, s.Digest, prev)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verb := "promoted"
	if dryRun {
		verb = "plan (dry run)"
	}
	_, err := fmt.Fprintf(w, "%s: %d images, %d created, %d updated, %d unchanged\n", verb, len(res.Steps),
		counts[imageset.ActionCreate], counts[imageset.ActionUpdate], counts[imageset.ActionUnchanged])
	return err
}
