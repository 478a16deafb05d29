package imageset

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// CopyStep is one image of a [Client.Copy].
type CopyStep struct {
	Source, Target string
	Digest         string // the source's manifest (or index) digest
	Previous       string // what the target tag pointed at before, if anything
	Action         Action
	State          State

	src, tgt name.Tag
}

// Copy copies images to other registries as TripleO's uploader does for
// push_destination, all or nothing:
//
//  1. check: every source exists; what every target tag points at is
//     recorded (the check phase promote has: nothing is written if a
//     source is missing);
//  2. the plan goes to the journal, if there is one (see [Journal]);
//  3. content: every image is written to its target repository by digest,
//     no tag yet: indexes whole with every platform, blobs mounted from
//     another repository of the registry or streamed, and skipped where the
//     registry has them (so a copy killed half way and run again sends
//     only what is missing);
//  4. tags: the journal is applied as promote applies it: each target tag
//     is put (the manifest bytes again, within the target repository) and
//     verified.
//
// Nothing is tagged until all content is in. With a journal
// ([CopyOptions.Journal]) an interruption at any point is finished by
// copying again (a journal for other targets is refused), and
// [Client.RollbackJournal] undoes it; without one, a failure while
// tagging puts back the tags written ([CopyError]).
func (c *Client) Copy(ctx context.Context, uploads []Upload, opts CopyOptions) ([]CopyStep, error) {
	steps := make([]CopyStep, len(uploads))
	targets := make([]checkTarget, len(uploads))
	for i, u := range uploads {
		src, err := name.NewTag(u.Source, c.nameOpts...)
		if err != nil {
			return nil, fmt.Errorf("parsing %q: %w", u.Source, err)
		}
		tgt, err := name.NewTag(u.Target, c.nameOpts...)
		if err != nil {
			return nil, fmt.Errorf("parsing %q: %w", u.Target, err)
		}
		steps[i] = CopyStep{Source: src.String(), Target: tgt.String(), src: src, tgt: tgt}
		targets[i] = checkTarget{src: src, tgt: tgt}
	}
	if opts.Journal != "" {
		j, err := ReadJournal(opts.Journal)
		switch {
		case err == nil:
			if err := sameTargets(j, opts.Journal, steps); err != nil {
				return nil, err
			}
			res, err := c.ApplyJournal(ctx, opts.Journal)
			return copyStepsOf(steps, res), err
		case !errors.Is(err, ErrNoJournal):
			return nil, err
		}
	}

	checked, manifests, err := c.check(ctx, targets)
	for i, cs := range checked {
		steps[i].Digest, steps[i].Previous, steps[i].Action = cs.Digest, cs.Previous, cs.Action
	}
	if err != nil {
		return steps, err
	}
	plan := &Journal{Operation: "copy to push_destination", Created: time.Now().UTC()}
	tags := &Journal{}
	known := map[string]string{}
	for i, s := range steps {
		e := JournalEntry{
			Source: s.src.Context().Digest(s.Digest).String(), Target: s.Target,
			Digest: s.Digest, MediaType: checked[i].MediaType, Previous: s.Previous,
		}
		plan.Entries = append(plan.Entries, e)
		// Once the content is in, each tag is a manifest put within the
		// target's repository.
		e.Source, e.Manifest = s.tgt.Context().Digest(s.Digest).String(), manifests[i]
		tags.Entries = append(tags.Entries, e)
		known[s.Target] = s.Previous
	}
	if opts.Journal != "" {
		if err := WriteJournal(opts.Journal, plan); err != nil {
			return steps, fmt.Errorf("nothing was changed: %w", err)
		}
	}

	err = c.each(ctx, "copying", len(steps), func(ctx context.Context, i int) error {
		s := &steps[i]
		if s.Action == ActionUnchanged {
			return nil
		}
		c.log.Debug("copying", "source", s.Source, "target", s.Target, "digest", s.Digest)
		for attempt := 0; ; attempt++ {
			err := c.copyContent(ctx, s)
			if err == nil {
				return nil
			}
			// A throttled blob upload cannot be retried request by
			// request (its body is spent): start the image again, which
			// skips the blobs already there.
			if !isThrottled(err) || attempt >= c.opts.Retries {
				return err
			}
			wait := min(200*time.Millisecond<<attempt, 2*time.Second)
			c.log.Debug("throttled, backing off", "target", s.Target, "wait", wait)
			if opts.OnBackoff != nil {
				opts.OnBackoff(wait)
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	if err != nil {
		if opts.Journal != "" {
			err = fmt.Errorf("%w; the journal %s keeps the plan: copy again to finish it", err, opts.Journal)
		}
		return steps, fmt.Errorf("copying (no tag written): %w", err)
	}

	res, err := c.apply(ctx, tags, opts.Journal, known)
	copyStepsOf(steps, res)
	if err == nil || opts.Journal != "" {
		return steps, err
	}
	var written []JournalEntry
	for i, s := range res.Steps {
		if s.State == StateDone {
			written = append(written, tags.Entries[i])
		}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	rb, errs := c.rollbackEntries(rctx, written)
	return steps, &CopyError{Err: err, Rollback: rb, RollbackErrs: errs}
}

// sameTargets refuses a journal that holds other targets than steps.
func sameTargets(j *Journal, path string, steps []CopyStep) error {
	targets := make([]string, len(steps))
	for i, s := range steps {
		targets[i] = s.Target
	}
	slices.Sort(targets)
	if !slices.Equal(targets, j.Targets()) {
		return fmt.Errorf("%w: %s (%s, %d targets, started %s): finish it (the command that wrote it, run again) or undo it (that command with --rollback --journal %s) first",
			ErrJournalMismatch, path, j.Operation, len(j.Entries), j.Created.Format(time.RFC3339), path)
	}
	return nil
}

// copyStepsOf fills steps' outcome from an applied journal's result.
func copyStepsOf(steps []CopyStep, res *PromoteResult) []CopyStep {
	if res == nil {
		return steps
	}
	byTarget := make(map[string]PromoteStep, len(res.Steps))
	for _, s := range res.Steps {
		byTarget[s.Target] = s
	}
	for i := range steps {
		if s, ok := byTarget[steps[i].Target]; ok {
			steps[i].State = s.State
			if steps[i].Digest == "" {
				steps[i].Digest, steps[i].Previous, steps[i].Action = s.Digest, s.Previous, s.Action
			}
		}
	}
	return steps
}

// CopyError is a copy that failed while tagging, after its tags were put
// back as they were (Rollback; RollbackErrs for those that could not be).
type CopyError struct {
	Err          error
	Rollback     *RollbackResult
	RollbackErrs []error
}

func (e *CopyError) Error() string {
	r := e.Rollback
	msg := fmt.Sprintf("%v (rolled back: %d restored, %d removed", e.Err, len(r.Restored), len(r.Removed))
	if n := len(r.Unremovable) + len(e.RollbackErrs); n > 0 {
		msg += fmt.Sprintf(", %d not: %v", n, errors.Join(e.RollbackErrs...))
		for _, u := range r.Unremovable {
			msg += "; " + u.Target + ": " + u.How
		}
	}
	return msg + ")"
}

func (e *CopyError) Unwrap() error { return e.Err }

// CopyOptions controls [Client.Copy].
type CopyOptions struct {
	// Journal is the path of the copy's journal (see [Journal]); "" for
	// none: a copy interrupted while tagging then cannot be resumed, and
	// one that fails while tagging is rolled back.
	Journal string
	// OnBackoff is told of each wait after a registry answered 429 to a
	// blob upload (requests that can be retried as they are are retried,
	// with backoff, below: see [BackoffMeter]).
	OnBackoff func(time.Duration)
}

// copyContent writes one image to its target repository by digest.
func (c *Client) copyContent(ctx context.Context, s *CopyStep) error {
	// A descriptor fetches its content with the context it was got with,
	// and the check phase's has ended: get it again, by digest.
	d, err := c.puller.Get(ctx, s.src.Context().Digest(s.Digest))
	if err != nil {
		return fmt.Errorf("fetching %s@%s: %w", s.src, s.Digest, err)
	}
	if err := c.pusher.Push(ctx, s.tgt.Context().Digest(s.Digest), d); err != nil {
		return fmt.Errorf("copying %s to %s: %w", s.Source, s.tgt.Context(), err)
	}
	return nil
}

// isThrottled reports whether a registry answered 429.
func isThrottled(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusTooManyRequests
}

// ErrNoUploads is returned when prepare is asked to copy but no
// ContainerImagePrepare entry has a push_destination.
var ErrNoUploads = errors.New("no ContainerImagePrepare entry has a push_destination")

// BackoffMeter is an http.RoundTripper wrapper (for
// [RegistryOptions.WrapTransport]) that counts 429 answers and the time
// until each throttled request is sent again: the time spent backing off.
type BackoffMeter struct {
	throttled atomic.Int64
	waited    atomic.Int64 // nanoseconds
	mu        sync.Mutex
	pending   map[string]time.Time
}

// Wrap returns next, metered.
func (m *BackoffMeter) Wrap(next http.RoundTripper) http.RoundTripper {
	return meteredTransport{m: m, next: next}
}

// Throttled returns how many 429 answers came back, and the time spent
// backing off: between each and the next try of the same request, plus
// what [BackoffMeter.Add] was told.
func (m *BackoffMeter) Throttled() (answers int64, waited time.Duration) {
	return m.throttled.Load(), time.Duration(m.waited.Load())
}

// Add counts a wait made elsewhere ([CopyOptions.OnBackoff]).
func (m *BackoffMeter) Add(d time.Duration) { m.waited.Add(int64(d)) }

type meteredTransport struct {
	m    *BackoffMeter
	next http.RoundTripper
}

func (t meteredTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	key := req.Method + " " + req.URL.String()
	t.m.mu.Lock()
	if at, ok := t.m.pending[key]; ok {
		t.m.waited.Add(int64(time.Since(at)))
		delete(t.m.pending, key)
	}
	t.m.mu.Unlock()
	resp, err := t.next.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		t.m.throttled.Add(1)
		t.m.mu.Lock()
		if t.m.pending == nil {
			t.m.pending = map[string]time.Time{}
		}
		t.m.pending[key] = time.Now()
		t.m.mu.Unlock()
	}
	return resp, err
}
