package images

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/kubepool/kubepool/internal/cli/cliutil"

	"github.com/spf13/cobra"

	"github.com/kubepool/kubepool/internal/imageset"
)

// exitIncomplete is promote's exit code when some targets were written
// and others not: the journal is kept and a rerun finishes the promotion.
const exitIncomplete = 3

type promoteOptions struct {
	from, fromLock, fromImages string
	lockFile, journal          string
	resume, rollback           bool
	popts                      imageset.PromoteOptions
}

func newImagesPromoteCmd(o *cliutil.Options) *cobra.Command {
	var (
		set imageSetOptions
		reg imagesRegistryOptions
		out = cliutil.Output{Names: true}
		p   promoteOptions
	)
	cmd := &cobra.Command{
		Use:   "promote",
		Short: "Point a tag of every image at the manifest it was tested at",
		Long: `promote points --to of every image at the manifest the set was tested at:
pinned by digest (--from-lock: the lock file that discover --lock-file or an
earlier promote --lock-file wrote), or what each image's own tag has
(--from-images-file: the images file discover or render wrote), or what
--from has for every image of a template (-t).

It checks every source and records what every target has (nothing is written
if a source is missing or the registry fails), writes the plan to a journal
(--journal; by default promote-<to>.journal next to --lock-file or
--from-lock, else in the current directory), writes the targets (the same
manifest: no blob is copied within a repository; multi-arch indexes whole)
and verifies each by the digest the registry answers.

On return either every target has its new digest (exit 0, the journal is
removed), or the journal says which have not (exit 3): the same command
again, or --resume, reads the registry and finishes the promotion without
writing what is already right. --rollback puts every target that existed
back to its previous digest and names the new tags this registry cannot
delete (distribution 2.x deletes by digest only), with how to remove them.
--dry-run prints the plan and whether the registry can delete tags.`,
		Example: `  kubepool images discover -t overcloud_containers.yaml.j2 --params params.yaml \
      --moving-tag current-tripleo --lock-file tested.lock
  kubepool images promote --from-lock tested.lock --to current-passed-ci --lock-file promoted.lock
  # interrupted? the same command again finishes it; or undo it:
  kubepool images promote --from-lock tested.lock --to current-passed-ci --lock-file promoted.lock --rollback`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		PreRunE: func(*cobra.Command, []string) error {
			if err := out.Validate(); err != nil {
				return err
			}
			if err := reg.Validate(); err != nil {
				return err
			}
			return p.validate(set)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			line := o.Progress(out.Text())
			defer line.Finish()
			c, err := reg.client(o, line, nil)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if p.rollback {
				res, err := c.RollbackJournal(ctx, p.journal)
				line.Finish()
				if res != nil {
					names := slices.Concat(res.Restored, res.Removed)
					if perr := out.PrintNamed(o.Out, res, names, func(w io.Writer) error { return rollbackTable(w, res) }); perr != nil && err == nil {
						err = perr
					}
				}
				return err
			}
			var res *imageset.PromoteResult
			if p.resume {
				res, err = c.ApplyJournal(ctx, p.journal)
			} else {
				var sources []imageset.PromoteSource
				switch {
				case p.fromLock != "":
					sources, err = imageset.ReadLock(p.fromLock)
				case p.fromImages != "":
					sources, err = imageset.ReadImagesFile(p.fromImages)
				default:
					var images []imageset.Image
					if images, err = set.loadLogged(o); err == nil {
						sources = imageset.SourcesFromImages(images, p.from)
					}
				}
				if err != nil {
					return err
				}
				res, err = c.Promote(ctx, sources, p.popts)
			}
			line.Finish()
			if res != nil {
				names := make([]string, len(res.Steps))
				for i, s := range res.Steps {
					names[i] = s.Target
				}
				if perr := out.PrintNamed(o.Out, res, names, func(w io.Writer) error { return promoteTable(w, res, p.popts.DryRun) }); perr != nil && err == nil {
					err = perr
				}
			}
			if _, ok := errors.AsType[*imageset.PromoteError](err); ok {
				return &cliutil.ExitError{Code: exitIncomplete, Err: err}
			}
			if err != nil {
				return err
			}
			if p.lockFile != "" && !p.popts.DryRun {
				return cliutil.WriteFile(p.lockFile, func(w io.Writer) error { return imageset.WriteLock(w, res) })
			}
			return nil
		},
	}
	set.AddFlags(cmd)
	reg.AddFlags(cmd)
	out.AddFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&p.from, "from", "", "tag every image of the template (-t) was tested as (e.g. the hash)")
	f.StringVar(&p.fromLock, "from-lock", "", "promote every image to the digest this lock file pins (discover --lock-file, promote --lock-file)")
	f.StringVar(&p.fromImages, "from-images-file", "", "promote every image of this images file (container_images, as discover --images-file writes) from its own tag")
	f.StringVar(&p.popts.To, "to", "", "tag to promote to (e.g. current-passed-ci)")
	f.StringVar(&p.popts.Destination, "destination", "", "promote into this registry/namespace instead of the images' own repositories")
	f.BoolVar(&p.popts.DryRun, "dry-run", false, "check and print the plan (and whether the registry can delete tags); change nothing")
	f.StringVar(&p.lockFile, "lock-file", "", "write target -> digest here after a successful promotion")
	f.StringVar(&p.journal, "journal", "", "the promotion's journal (default: promote-<to>.journal next to --lock-file or --from-lock, else in the current directory)")
	f.BoolVar(&p.resume, "resume", false, "finish the promotion the journal holds")
	f.BoolVar(&p.rollback, "rollback", false, "undo the promotion the journal holds: restore the targets' previous digests")
	return cmd
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

func (p *promoteOptions) validate(set imageSetOptions) error {
	if p.resume && p.rollback {
		return errors.New("--resume and --rollback are exclusive")
	}
	inputs := 0
	for _, in := range []bool{p.from != "" || set.Template != "", p.fromLock != "", p.fromImages != ""} {
		if in {
			inputs++
		}
	}
	switch {
	case inputs > 1:
		return errors.New("give one of --from with -t, --from-lock and --from-images-file")
	case inputs == 0 && !p.resume && !p.rollback:
		return errors.New("give the set to promote: --from-lock FILE, --from-images-file FILE, or -t TEMPLATE with --from TAG")
	case set.Template != "" && p.from == "":
		return errors.New("-t needs --from (the tag the set was tested as)")
	case p.from != "" && set.Template == "":
		return errors.New("--from needs -t (the template of the set)")
	}
	if p.journal == "" {
		if p.popts.To == "" {
			return errors.New("--to is required (or --journal with --resume/--rollback)")
		}
		dir := "."
		switch {
		case p.lockFile != "":
			dir = filepath.Dir(p.lockFile)
		case p.fromLock != "":
			dir = filepath.Dir(p.fromLock)
		}
		p.journal = filepath.Join(dir, "promote-"+unsafeFileChars.ReplaceAllString(p.popts.To, "_")+".journal")
	}
	if p.popts.To == "" && !p.resume && !p.rollback {
		return errors.New("--to is required")
	}
	p.popts.Journal = p.journal
	return nil
}

func promoteTable(w io.Writer, res *imageset.PromoteResult, dryRun bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tACTION\tSTATE\tDIGEST\tPREVIOUS")
	counts := map[imageset.Action]int{}
	for _, s := range res.Steps {
		counts[s.Action]++
		prev := s.Previous
		if prev == "" {
			prev = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Target, s.Action, s.State, s.Digest, prev)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	n := len(res.Steps)
	if dryRun {
		fmt.Fprintf(w, "plan (dry run): %d images, %d to create, %d to update, %d unchanged", n,
			counts[imageset.ActionCreate], counts[imageset.ActionUpdate], counts[imageset.ActionUnchanged])
		if res.Resumed {
			fmt.Fprintf(w, "; from the journal %s: %d already done, %d pending", res.Journal, res.Count(imageset.StateAlready), res.Count(imageset.StatePending))
		}
		fmt.Fprintln(w)
		hosts := make([]string, 0, len(res.TagDeletion))
		for h := range res.TagDeletion {
			hosts = append(hosts, h)
		}
		slices.Sort(hosts)
		for _, h := range hosts {
			d := res.TagDeletion[h]
			what := "a rollback can remove the new tags"
			if d != imageset.TagDeletionSupported {
				what = "a rollback cannot remove the new tags (it restores the existing ones)"
			}
			fmt.Fprintf(w, "tag deletion on %s: %s: %s\n", h, d, what)
		}
		return nil
	}
	done, already, pending := res.Count(imageset.StateDone), res.Count(imageset.StateAlready), res.Count(imageset.StatePending)
	var b strings.Builder
	if pending > 0 {
		fmt.Fprintf(&b, "promoted %d of %d; %d pending; rerun to finish (journal: %s)", done+already, n, pending, res.Journal)
	} else {
		fmt.Fprintf(&b, "promoted %d of %d: %d written, %d already at their digest", n, n, done, already)
		if res.Resumed {
			b.WriteString(" (resumed from the journal)")
		}
	}
	_, err := fmt.Fprintln(w, b.String())
	return err
}

func rollbackTable(w io.Writer, res *imageset.RollbackResult) error {
	for _, t := range res.Restored {
		fmt.Fprintf(w, "restored\t%s\n", t)
	}
	for _, t := range res.Removed {
		fmt.Fprintf(w, "removed\t%s\n", t)
	}
	for _, u := range res.Unremovable {
		fmt.Fprintf(w, "left\t%s\n", u.Target)
	}
	fmt.Fprintf(w, "rolled back: %d restored, %d new tags removed, %d unchanged, %d new tags left\n",
		len(res.Restored), len(res.Removed), len(res.Unchanged), len(res.Unremovable))
	if len(res.Unremovable) > 0 {
		fmt.Fprintf(w, "the registry cannot remove new tags (%s): %s\n", res.Unremovable[0].Reason, res.Unremovable[0].How)
	}
	return nil
}
