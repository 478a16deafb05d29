package imageset

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// PromoteOptions controls [Client.Promote].
type PromoteOptions struct {
	To string // the tag to promote to
	// Destination, if set, is a registry/namespace ("reg.example:5000/ci")
	// that receives the promoted images instead of their own repository;
	// blobs are mounted across repositories of one registry, or copied.
	Destination string
	// Journal is the path of the promotion's journal (see [Journal]). If
	// one is there, Promote finishes it instead of starting over; "" means
	// no journal, and an interrupted promotion cannot be resumed.
	Journal string
	// DryRun stops after the check phase and returns the plan, with what
	// each registry allows ([TagDeletion]).
	DryRun bool
}

// Action is what promote does to one target tag.
type Action string

const (
	ActionCreate    Action = "create"    // target tag did not exist
	ActionUpdate    Action = "update"    // target tag pointed elsewhere
	ActionUnchanged Action = "unchanged" // target tag already has the digest
)

// State is where a target stands after a run.
type State string

const (
	StatePlanned State = "planned" // dry run
	StateDone    State = "done"    // written and verified by this run
	StateAlready State = "already" // had its new digest before this run
	StatePending State = "pending" // not (known to be) at its new digest
)

// PromoteStep is the plan for one image, and after the run its outcome.
type PromoteStep struct {
	Source    string `json:"source" yaml:"source"`
	Target    string `json:"target" yaml:"target"`
	Digest    string `json:"digest" yaml:"digest"`
	MediaType string `json:"mediaType" yaml:"mediaType"`
	Previous  string `json:"previous,omitempty" yaml:"previous,omitempty"` // target digest before; "" if absent
	Action    Action `json:"action" yaml:"action"`
	State     State  `json:"state" yaml:"state"`
	Error     string `json:"error,omitempty" yaml:"error,omitempty"`
}

// PromoteResult is the plan (dry run) or what was done.
type PromoteResult struct {
	Steps []PromoteStep `json:"steps" yaml:"steps"`
	// Resumed is set when the run finished a journal left by an earlier
	// one.
	Resumed bool   `json:"resumed,omitempty" yaml:"resumed,omitempty"`
	Journal string `json:"journal,omitempty" yaml:"journal,omitempty"`
	// TagDeletion says, per registry that gets new tags, whether a
	// rollback could remove them (dry run only).
	TagDeletion map[string]TagDeletion `json:"tagDeletion,omitempty" yaml:"tagDeletion,omitempty"`
}

// Count returns how many steps are in state s.
func (r *PromoteResult) Count(s State) int {
	n := 0
	for _, st := range r.Steps {
		if st.State == s {
			n++
		}
	}
	return n
}

// PromoteError is returned when a promotion stopped with some targets not
// at their new digest. The journal keeps the plan: promoting again (or
// [Client.ApplyJournal]) finishes it.
type PromoteError struct {
	Total, Pending int
	// Errs are the per-target errors, the first cause first.
	Errs []error
	// Journal is the journal's path ("" without one); ErrorsFile has
	// every target's error, one per line.
	Journal, ErrorsFile string
}

func (e *PromoteError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "promotion incomplete: %d of %d targets at their new digest, %d pending; %s", e.Total-e.Pending, e.Total, e.Pending, ErrorSummary(e.Errs))
	if e.ErrorsFile != "" {
		fmt.Fprintf(&b, "; every error in %s", e.ErrorsFile)
	}
	if e.Journal != "" {
		fmt.Fprintf(&b, "; the journal %s keeps the plan: run the same promotion again to finish it", e.Journal)
	}
	return b.String()
}

func (e *PromoteError) Unwrap() []error { return e.Errs }

// TargetError is the error of one target.
type TargetError struct {
	Target string
	Err    error
}

func (e *TargetError) Error() string { return e.Target + ": " + e.Err.Error() }
func (e *TargetError) Unwrap() error { return e.Err }

// ErrSourceMissing is returned (wrapped) when some sources do not exist;
// nothing was changed.
var ErrSourceMissing = errors.New("source missing")

// ErrJournalMismatch is returned (wrapped) when the journal holds another
// promotion than the one asked for.
var ErrJournalMismatch = errors.New("the journal holds another promotion")

// errNotTried marks targets not tried after the registry stopped answering.
var errNotTried = errors.New("not tried: the registry stopped answering")

// Promote points the To tag of every source's repository at the source's
// manifest: the digest it is pinned to, or what its tag has now.
//
//  1. check: every source is read (GET: its manifest and digest) and every
//     target's digest is recorded (HEAD); nothing is written if any source
//     is missing or a request fails;
//  2. the plan (target, new digest, previous digest) is written to the
//     journal, durably;
//  3. put: every target not already right is written (a manifest PUT of
//     the same bytes within a repository: no blob moves; multi-arch
//     indexes whole) and verified by the digest the registry answers.
//
// On return either every target has its new digest (and the journal is
// removed), or a *PromoteError says which have not and the journal stays:
// Promote with the same targets finishes it (reading the registry, writing
// only what is not right yet), whatever stopped the first run.
func (c *Client) Promote(ctx context.Context, sources []PromoteSource, opts PromoteOptions) (*PromoteResult, error) {
	if opts.To == "" {
		return nil, errors.New("promote needs a tag to promote to")
	}
	if len(sources) == 0 {
		return nil, errors.New("promote: no images")
	}
	type item struct {
		src, tgt name.Reference
		pin      string
	}
	items := make([]item, len(sources))
	seen := map[string]bool{}
	for i, s := range sources {
		tag, err := name.NewTag(s.Ref, c.nameOpts...)
		if err != nil {
			return nil, fmt.Errorf("parsing image %q: %w", s.Ref, err)
		}
		var src name.Reference = tag
		if s.Digest != "" {
			src = tag.Context().Digest(s.Digest)
		} else if tag.TagStr() == opts.To && opts.Destination == "" {
			return nil, fmt.Errorf("%s: source and target are the same tag", s.Ref)
		}
		tgt := tag.Context().Tag(opts.To)
		if opts.Destination != "" {
			repo := tag.Context().RepositoryStr()
			tgt, err = name.NewTag(strings.TrimSuffix(opts.Destination, "/")+"/"+repo[strings.LastIndex(repo, "/")+1:]+":"+opts.To, c.nameOpts...)
			if err != nil {
				return nil, fmt.Errorf("parsing destination %q: %w", opts.Destination, err)
			}
		}
		if seen[tgt.String()] {
			return nil, fmt.Errorf("two images promote to %s", tgt)
		}
		seen[tgt.String()] = true
		items[i] = item{src: src, tgt: tgt, pin: s.Digest}
	}

	if opts.Journal != "" {
		j, err := ReadJournal(opts.Journal)
		switch {
		case err == nil:
			targets := make([]string, len(items))
			pins := map[string]string{}
			for i, it := range items {
				targets[i] = it.tgt.String()
				pins[it.tgt.String()] = it.pin
			}
			slices.Sort(targets)
			if !slices.Equal(targets, j.Targets()) {
				return nil, fmt.Errorf("%w: %s (%s, %d targets, started %s): finish it (promote --resume) or undo it (promote --rollback) first",
					ErrJournalMismatch, opts.Journal, j.Operation, len(j.Entries), j.Created.Format(time.RFC3339))
			}
			for _, e := range j.Entries {
				if p := pins[e.Target]; p != "" && p != e.Digest {
					return nil, fmt.Errorf("%w: %s pins %s to %s, this promotion to %s: finish it (--resume) or undo it (--rollback) first",
						ErrJournalMismatch, opts.Journal, e.Target, e.Digest, p)
				}
			}
			if opts.DryRun {
				return c.journalStatus(ctx, j, opts.Journal)
			}
			return c.ApplyJournal(ctx, opts.Journal)
		case !errors.Is(err, ErrNoJournal):
			return nil, err
		}
	}

	// Phase 1: check.
	targets := make([]checkTarget, len(items))
	for i, it := range items {
		targets[i] = checkTarget{src: it.src, tgt: it.tgt}
	}
	steps, manifests, err := c.check(ctx, targets)
	if errors.Is(err, ErrSourceMissing) {
		return &PromoteResult{Steps: steps, Journal: opts.Journal}, err
	}
	if err != nil {
		return nil, err
	}
	res := &PromoteResult{Steps: steps, Journal: opts.Journal}
	if opts.DryRun {
		for i := range steps {
			steps[i].State = StatePlanned
		}
		if err := c.probeDeletion(ctx, res); err != nil {
			return res, err
		}
		return res, nil
	}

	j := &Journal{Operation: "promote to " + opts.To, Created: time.Now().UTC()}
	known := map[string]string{}
	for i, s := range steps {
		j.Entries = append(j.Entries, JournalEntry{
			Source: items[i].src.Context().Digest(s.Digest).String(), Target: s.Target,
			Digest: s.Digest, MediaType: s.MediaType, Previous: s.Previous, Manifest: manifests[i],
		})
		known[s.Target] = s.Previous
	}
	if opts.Journal != "" {
		if err := WriteJournal(opts.Journal, j); err != nil {
			return res, fmt.Errorf("nothing was changed: %w", err)
		}
	}
	out, err := c.apply(ctx, j, opts.Journal, known)
	for i := range out.Steps {
		out.Steps[i].Source = steps[i].Source // as given: tag or digest
	}
	return out, err
}

// checkTarget is one write a check phase plans: the manifest src has goes
// to tgt.
type checkTarget struct {
	src, tgt name.Reference
}

// check is the first phase of every all-or-nothing write (promote, copy to
// a push_destination): every source is read (GET: its manifest and
// digest) and every target's digest recorded (HEAD). It writes nothing. If
// sources are missing, the error wraps [ErrSourceMissing] and names them
// all, and the steps come back with it.
func (c *Client) check(ctx context.Context, targets []checkTarget) ([]PromoteStep, [][]byte, error) {
	steps := make([]PromoteStep, len(targets))
	manifests := make([][]byte, len(targets))
	var (
		mu      sync.Mutex
		missing []string
	)
	err := c.each(ctx, "checking", len(targets), func(ctx context.Context, i int) error {
		t := targets[i]
		s := &steps[i]
		s.Source, s.Target = t.src.String(), t.tgt.String()
		d, err := c.puller.Get(ctx, t.src)
		if err != nil {
			if isNotFound(err) {
				mu.Lock()
				missing = append(missing, s.Source)
				mu.Unlock()
				return nil
			}
			return c.wrap("GET manifest", t.src, err)
		}
		s.Digest, s.MediaType = d.Digest.String(), string(d.MediaType)
		manifests[i] = d.Manifest
		// The target's digest is all a rollback needs: the registry
		// keeps the manifest, which is fetched by digest if need be.
		prev, err := c.puller.Head(ctx, t.tgt)
		switch {
		case isNotFound(err):
			s.Action = ActionCreate
		case err != nil:
			return c.headError(ctx, t.tgt, err)
		default:
			s.Previous = prev.Digest.String()
			s.Action = ActionUpdate
			if s.Previous == s.Digest {
				s.Action = ActionUnchanged
			}
		}
		return nil
	})
	if err != nil {
		return steps, nil, fmt.Errorf("checking (nothing was changed): %w", err)
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return steps, nil, fmt.Errorf("checking (nothing was changed): %w: %d of %d: %s", ErrSourceMissing, len(missing), len(targets), strings.Join(missing, ", "))
	}
	return steps, manifests, nil
}

// probeDeletion fills res.TagDeletion for the registries that get new tags.
func (c *Client) probeDeletion(ctx context.Context, res *PromoteResult) error {
	res.TagDeletion = map[string]TagDeletion{}
	for _, s := range res.Steps {
		if s.Action != ActionCreate {
			continue
		}
		tgt, err := name.NewTag(s.Target, c.nameOpts...)
		if err != nil {
			return err
		}
		if _, ok := res.TagDeletion[tgt.RegistryStr()]; ok {
			continue
		}
		d, err := c.TagDeletion(ctx, tgt.Context())
		if err != nil {
			return fmt.Errorf("asking whether %s can delete tags: %w", tgt.RegistryStr(), err)
		}
		res.TagDeletion[tgt.RegistryStr()] = d
	}
	return nil
}

// journalStatus reports, without writing, where the targets of a journal
// stand.
func (c *Client) journalStatus(ctx context.Context, j *Journal, path string) (*PromoteResult, error) {
	res := &PromoteResult{Journal: path, Resumed: true, Steps: make([]PromoteStep, len(j.Entries))}
	err := c.each(ctx, "checking", len(j.Entries), func(ctx context.Context, i int) error {
		e := j.Entries[i]
		s := stepOf(e)
		tgt, err := name.NewTag(e.Target, c.nameOpts...)
		if err != nil {
			return err
		}
		cur, err := c.current(ctx, tgt)
		if err != nil {
			return err
		}
		s.State = StatePending
		if cur == e.Digest {
			s.State = StateAlready
		}
		res.Steps[i] = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := c.probeDeletion(ctx, res); err != nil {
		return res, err
	}
	return res, nil
}

func stepOf(e JournalEntry) PromoteStep {
	s := PromoteStep{Source: e.Source, Target: e.Target, Digest: e.Digest, MediaType: e.MediaType, Previous: e.Previous, Action: ActionUpdate}
	switch e.Previous {
	case "":
		s.Action = ActionCreate
	case e.Digest:
		s.Action = ActionUnchanged
	}
	return s
}

// current returns the digest tag has, "" if it does not exist.
func (c *Client) current(ctx context.Context, tag name.Tag) (string, error) {
	d, err := c.puller.Head(ctx, tag)
	switch {
	case isNotFound(err):
		return "", nil
	case err != nil:
		return "", c.headError(ctx, tag, err)
	}
	return d.Digest.String(), nil
}

// ApplyJournal finishes the journal at path: every target not at its
// digest is written and verified; the journal is removed when all are.
// See [Journal] for the contract.
func (c *Client) ApplyJournal(ctx context.Context, path string) (*PromoteResult, error) {
	j, err := ReadJournal(path)
	if err != nil {
		return nil, err
	}
	res, err := c.apply(ctx, j, path, nil)
	res.Resumed = true
	return res, err
}

// apply writes the journal's targets. known has the targets' digests as
// the check phase just read them ("" absent); targets not in it are read
// first.
func (c *Client) apply(ctx context.Context, j *Journal, path string, known map[string]string) (*PromoteResult, error) {
	res := &PromoteResult{Journal: path, Steps: make([]PromoteStep, len(j.Entries))}
	errs := make([]error, len(j.Entries))
	var (
		down  atomic.Bool // the registry stopped answering: try no more
		order atomic.Int64
		first = make([]int64, len(j.Entries))
	)
	_ = c.each(ctx, "writing", len(j.Entries), func(ctx context.Context, i int) error {
		e := j.Entries[i]
		res.Steps[i] = stepOf(e)
		s := &res.Steps[i]
		s.State = StatePending
		if down.Load() {
			errs[i] = errNotTried
			return nil
		}
		err := c.applyOne(ctx, e, known, s)
		if err != nil {
			errs[i] = err
			first[i] = order.Add(1)
			if KindOf(err) == KindNetwork {
				down.Store(true)
			}
		}
		return nil // the others go on: one target's error is not theirs
	})
	var failed []error
	var failedIdx []int
	for i, err := range errs {
		if err != nil {
			res.Steps[i].Error = err.Error()
			failedIdx = append(failedIdx, i)
		}
	}
	if len(failedIdx) == 0 {
		if path != "" {
			if err := removeJournal(path); err != nil {
				return res, fmt.Errorf("every target is at its new digest, but: %w", err)
			}
			_ = os.Remove(path + ".errors")
		}
		return res, nil
	}
	// First cause first: the error that happened first, then the rest in
	// plan order.
	slices.SortStableFunc(failedIdx, func(a, b int) int {
		oa, ob := first[a], first[b]
		switch {
		case oa == 0 && ob == 0:
			return 0
		case oa == 0:
			return 1
		case ob == 0:
			return -1
		}
		return int(oa - ob)
	})
	for _, i := range failedIdx {
		failed = append(failed, &TargetError{Target: j.Entries[i].Target, Err: errs[i]})
	}
	perr := &PromoteError{Total: len(j.Entries), Pending: len(failed), Errs: failed, Journal: path}
	if path != "" {
		var b strings.Builder
		for _, err := range failed {
			b.WriteString(err.Error() + "\n")
		}
		if err := writeFileAtomic(path+".errors", []byte(b.String())); err == nil {
			perr.ErrorsFile = path + ".errors"
		}
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("%w (%w)", perr, ctx.Err())
	}
	return res, perr
}

// applyOne brings one target to its digest.
func (c *Client) applyOne(ctx context.Context, e JournalEntry, known map[string]string, s *PromoteStep) error {
	tgt, err := name.NewTag(e.Target, c.nameOpts...)
	if err != nil {
		return err
	}
	src, err := name.NewDigest(e.Source, c.nameOpts...)
	if err != nil {
		return err
	}
	cur, ok := known[e.Target]
	if !ok {
		// A registry killed while writing a tag can leave it unreadable
		// (distribution answers 500): writing it anew repairs it.
		if cur, err = c.current(ctx, tgt); err != nil && KindOf(err) != KindServer {
			return err
		}
	}
	if cur == e.Digest {
		s.State = StateAlready
		return nil
	}
	c.log.Debug("promoting", "source", e.Source, "target", e.Target, "digest", e.Digest)
	var got string
	pctx := withPutDigest(ctx, &got)
	if src.Context() == tgt.Context() {
		body := e.Manifest
		if body == nil {
			d, err := c.puller.Get(ctx, src)
			if err != nil {
				return c.wrap("GET manifest", src, err)
			}
			body = d.Manifest
		}
		err = c.pusher.Put(pctx, tgt, rawManifest{body: body, mediaType: types.MediaType(e.MediaType)})
	} else {
		var d *remote.Descriptor
		if d, err = c.puller.Get(ctx, src); err != nil {
			return c.wrap("GET manifest", src, err)
		}
		err = c.pusher.Push(pctx, tgt, d)
	}
	if err != nil {
		return c.wrap("PUT manifest", tgt, err)
	}
	if got == "" {
		// The registry did not say what it stored: ask.
		if got, err = c.current(ctx, tgt); err != nil {
			return fmt.Errorf("verifying: %w", err)
		}
	}
	if got != e.Digest {
		return fmt.Errorf("verifying %s: the registry has %s, want %s", tgt, got, e.Digest)
	}
	s.State = StateDone
	return nil
}

// RollbackResult is what [Client.RollbackJournal] did.
type RollbackResult struct {
	Restored  []string `json:"restored" yaml:"restored"`   // put back to their previous digest
	Removed   []string `json:"removed" yaml:"removed"`     // new tags deleted
	Unchanged []string `json:"unchanged" yaml:"unchanged"` // already as before
	// Unremovable are new tags this registry cannot delete alone, with
	// how an operator removes them.
	Unremovable []Unremovable `json:"unremovable" yaml:"unremovable"`
}

// Unremovable is a tag a rollback could not delete.
type Unremovable struct {
	Target string      `json:"target" yaml:"target"`
	Reason TagDeletion `json:"reason" yaml:"reason"`
	How    string      `json:"how" yaml:"how"`
}

// RollbackJournal undoes the promotion of the journal at path: every
// target that had a digest gets it back; a target that did not exist is
// deleted where the registry can delete a tag alone, else listed in
// Unremovable (deleting its manifest would delete the source tag too).
// The journal is removed when nothing failed.
func (c *Client) RollbackJournal(ctx context.Context, path string) (*RollbackResult, error) {
	j, err := ReadJournal(path)
	if err != nil {
		return nil, err
	}
	res, errs := c.rollbackEntries(ctx, j.Entries)
	if len(errs) > 0 {
		return res, fmt.Errorf("rollback incomplete: %d of %d targets not restored; %s; the journal %s stays: run the rollback again", len(errs), len(j.Entries), ErrorSummary(errs), path)
	}
	if err := removeJournal(path); err != nil {
		return res, err
	}
	_ = os.Remove(path + ".errors")
	return res, nil
}

// rollbackEntries puts the entries' targets back as they were before (see
// [Client.RollbackJournal]); it returns the per-target errors.
func (c *Client) rollbackEntries(ctx context.Context, entries []JournalEntry) (*RollbackResult, []error) {
	j := &Journal{Entries: entries}
	type outcome struct {
		kind string
		un   *Unremovable
		err  error
	}
	outs := make([]outcome, len(j.Entries))
	_ = c.each(ctx, "rolling back", len(j.Entries), func(ctx context.Context, i int) error {
		e := j.Entries[i]
		o := &outs[i]
		tgt, err := name.NewTag(e.Target, c.nameOpts...)
		if err != nil {
			o.err = err
			return nil
		}
		cur, err := c.current(ctx, tgt)
		switch {
		case err != nil && (KindOf(err) != KindServer || e.Previous == ""):
			o.err = err
			return nil
		case err != nil:
			cur = "unreadable" // a tag a crash left unreadable: restore it
		}
		switch {
		case cur == e.Previous:
			o.kind = "unchanged"
		case e.Previous != "":
			o.err = c.restoreTag(ctx, tgt, e.Previous)
			o.kind = "restored"
		default:
			del, err := c.TagDeletion(ctx, tgt.Context())
			if err != nil {
				o.err = err
				return nil
			}
			if del != TagDeletionSupported {
				o.un = &Unremovable{Target: e.Target, Reason: del, How: removalHint(tgt, del)}
				return nil
			}
			if err := c.pusher.Delete(ctx, tgt); err != nil && !isNotFound(err) {
				o.err = c.wrap("DELETE manifest", tgt, err)
			}
			o.kind = "removed"
		}
		return nil
	})
	res := &RollbackResult{Restored: []string{}, Removed: []string{}, Unchanged: []string{}, Unremovable: []Unremovable{}}
	var errs []error
	for i, o := range outs {
		t := j.Entries[i].Target
		switch {
		case o.err != nil:
			errs = append(errs, &TargetError{Target: t, Err: o.err})
		case o.un != nil:
			res.Unremovable = append(res.Unremovable, *o.un)
		case o.kind == "restored":
			res.Restored = append(res.Restored, t)
		case o.kind == "removed":
			res.Removed = append(res.Removed, t)
		default:
			res.Unchanged = append(res.Unchanged, t)
		}
	}
	return res, errs
}

// removalHint says how an operator removes a tag the registry will not.
func removalHint(tgt name.Tag, d TagDeletion) string {
	switch d {
	case TagDeletionUnsupported:
		return fmt.Sprintf("%s deletes manifests by digest only, which would delete the source tags too; on a distribution registry with filesystem storage remove the tag's directory: rm -r <rootdirectory>/docker/registry/v2/repositories/%s/_manifests/tags/%s",
			tgt.RegistryStr(), tgt.RepositoryStr(), tgt.TagStr())
	case TagDeletionDisabled:
		return fmt.Sprintf("%s has deletion disabled (distribution: storage.delete.enabled); enable it, or remove the tag in its storage", tgt.RegistryStr())
	}
	return "the registry's answer to a tag deletion was not understood; remove the tag with the registry's own tools"
}

// restoreTag points tag back at the manifest it had, fetched by digest
// (the registry keeps a manifest after its tag moves), verified by the
// digest the registry answers.
func (c *Client) restoreTag(ctx context.Context, tag name.Tag, digest string) error {
	ref := tag.Context().Digest(digest)
	prev, err := c.puller.Get(ctx, ref)
	if err != nil {
		return c.wrap("GET manifest", ref, err)
	}
	var got string
	if err := c.pusher.Put(withPutDigest(ctx, &got), tag, rawManifest{body: prev.Manifest, mediaType: prev.MediaType}); err != nil {
		return c.wrap("PUT manifest", tag, err)
	}
	if got == "" {
		if got, err = c.current(ctx, tag); err != nil {
			return err
		}
	}
	if got != digest {
		return fmt.Errorf("restoring %s: the registry has %s, want %s", tag, got, digest)
	}
	return nil
}

// each runs f for 0..n-1 with at most Jobs at a time; the first error
// cancels the rest.
// each runs f for 0..n-1, Jobs at once, and tells OnProgress of each one
// done under phase.
func (c *Client) each(ctx context.Context, phase string, n int, f func(context.Context, int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Jobs)
	var done atomic.Int64
	for i := 0; i < n; i++ {
		g.Go(func() error {
			err := f(gctx, i)
			c.progress(phase, int(done.Add(1)), n)
			return err
		})
	}
	return g.Wait()
}

// Progress is how far a registry operation is: Done of Total images in
// Phase ("checking", "copying", "writing", ...).
type Progress struct {
	Phase       string
	Done, Total int
}

func (c *Client) progress(phase string, done, total int) {
	if c.opts.OnProgress != nil {
		c.opts.OnProgress(Progress{Phase: phase, Done: done, Total: total})
	}
}
