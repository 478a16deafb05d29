package imageset

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// CopyStep is one image of a [Client.Copy].
type CopyStep struct {
	Source, Target string
	Digest         string // the source's manifest (or index) digest
	Previous       string // what the target tag pointed at before, if anything
	Action         Action

	src, tgt name.Tag
	desc     *remote.Descriptor
}

// Copy copies images to other registries as TripleO's uploader does for
// push_destination, all or nothing:
//
//  1. check: every source exists; what every target tag points at is
//     recorded;
//  2. content: every image is written to its target repository by digest,
//     no tag yet: indexes whole with every platform, blobs mounted from
//     another repository of the registry or streamed, and skipped where the
//     registry has them (so a copy killed half way and run again sends
//     only what is missing);
//  3. tags: each target tag is put (the manifest bytes again), then
//     checked.
//
// Nothing is tagged until all content is in; if tagging fails, the tags
// written are put back as they were ([CopyError]).
func (c *Client) Copy(ctx context.Context, uploads []Upload, opts CopyOptions) ([]CopyStep, error) {
	steps := make([]CopyStep, len(uploads))
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
	}

	var (
		mu      sync.Mutex
		missing []string
	)
	err := c.each(ctx, "checking", len(steps), func(ctx context.Context, i int) error {
		s := &steps[i]
		d, err := c.puller.Get(ctx, s.src)
		if err != nil {
			if isNotFound(err) {
				mu.Lock()
				missing = append(missing, s.Source)
				mu.Unlock()
				return nil
			}
			return fmt.Errorf("fetching %s: %w", s.src, err)
		}
		s.desc, s.Digest = d, d.Digest.String()
		prev, err := c.puller.Head(ctx, s.tgt)
		switch {
		case isNotFound(err):
			s.Action = ActionCreate
		case err != nil:
			return fmt.Errorf("resolving %s: %w", s.tgt, err)
		default:
			s.Previous, s.Action = prev.Digest.String(), ActionUpdate
			if prev.Digest == d.Digest {
				s.Action = ActionUnchanged
			}
		}
		return nil
	})
	if err != nil {
		return steps, fmt.Errorf("checking: %w", err)
	}
	if len(missing) > 0 {
		return steps, fmt.Errorf("checking: %w: %s", ErrSourceMissing, strings.Join(missing, ", "))
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
		return steps, fmt.Errorf("copying (no tag written): %w", err)
	}

	touched := make([]bool, len(steps))
	err = c.each(ctx, "tagging", len(steps), func(ctx context.Context, i int) error {
		s := &steps[i]
		if s.Action == ActionUnchanged {
			return nil
		}
		touched[i] = true
		if err := c.pusher.Put(ctx, s.tgt, rawManifest{body: s.desc.Manifest, mediaType: s.desc.MediaType}); err != nil {
			return fmt.Errorf("tagging %s: %w", s.tgt, err)
		}
		d, err := c.puller.Head(ctx, s.tgt)
		if err != nil {
			return fmt.Errorf("verifying %s: %w", s.tgt, err)
		}
		if d.Digest.String() != s.Digest {
			return fmt.Errorf("verifying %s: digest is %s, want %s", s.tgt, d.Digest, s.Digest)
		}
		return nil
	})
	if err != nil {
		var entries []JournalEntry
		for i, s := range steps {
			if touched[i] {
				entries = append(entries, JournalEntry{Source: s.Source, Target: s.Target, Digest: s.Digest, Previous: s.Previous})
			}
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		res, errs := c.rollbackEntries(rctx, entries)
		return steps, &CopyError{Err: err, Rollback: res, RollbackErrs: errs}
	}
	return steps, nil
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
