package imageset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"
)

// PromoteOptions controls [Client.Promote].
type PromoteOptions struct {
	From, To string // tags
	// Destination, if set, is a registry/namespace ("reg.example:5000/ci")
	// that receives the promoted images instead of their own repository;
	// blobs are mounted across repositories of one registry, or copied.
	Destination string
	// DryRun stops after the check phase and returns the plan.
	DryRun bool
}

// Action is what promote does to one target tag.
type Action string

const (
	ActionCreate    Action = "create"    // target tag did not exist
	ActionUpdate    Action = "update"    // target tag pointed elsewhere
	ActionUnchanged Action = "unchanged" // target tag already has the digest
)

// PromoteStep is the plan for one image, and after the run its outcome.
type PromoteStep struct {
	Source    string `json:"source" yaml:"source"`
	Target    string `json:"target" yaml:"target"`
	Digest    string `json:"digest" yaml:"digest"`
	MediaType string `json:"mediaType" yaml:"mediaType"`
	Previous  string `json:"previous,omitempty" yaml:"previous,omitempty"` // target digest before; "" if absent
	Action    Action `json:"action" yaml:"action"`

	src, tgt name.Tag
	srcDesc  *remote.Descriptor
}

// PromoteResult is the plan (dry run) or what was done.
type PromoteResult struct {
	Steps []PromoteStep `json:"steps" yaml:"steps"`
}

// PromoteError is returned when promote failed after changing targets: it
// says whether every target was put back as it was.
type PromoteError struct {
	Err error
	// Restored are targets put back to their previous digest.
	Restored []string
	// Unrestored are targets that could not be put back, and why.
	Unrestored map[string]error
}

func (e *PromoteError) Error() string {
	if len(e.Unrestored) == 0 {
		return fmt.Sprintf("promoting: %v (rolled back: %d targets restored)", e.Err, len(e.Restored))
	}
	var b strings.Builder
	for t, err := range e.Unrestored {
		fmt.Fprintf(&b, "; %s: %v", t, err)
	}
	return fmt.Sprintf("promoting: %v (rollback incomplete: %d restored, %d not%s)", e.Err, len(e.Restored), len(e.Unrestored), b.String())
}

func (e *PromoteError) Unwrap() error { return e.Err }

// ErrSourceMissing is returned (wrapped) when some images lack the From
// tag; nothing was changed.
var ErrSourceMissing = errors.New("source tag missing")

// Promote points the To tag of every image at the manifest its From tag
// has, all or nothing:
//
//  1. check: every source exists (its digest is recorded) and what every
//     target points at now is recorded;
//  2. put: the target tags are written (a manifest PUT of the same bytes
//     within a repository: no blob moves; multi-arch indexes whole);
//  3. verify: every target has the source's digest.
//
// If put or verify fails, the targets already written are put back to
// their recorded manifests (a target that did not exist is deleted where
// the registry allows it) and a *PromoteError says what was restored.
func (c *Client) Promote(ctx context.Context, images []Image, opts PromoteOptions) (*PromoteResult, error) {
	if opts.From == "" || opts.To == "" {
		return nil, errors.New("promote needs a from and a to tag")
	}
	if opts.From == opts.To && opts.Destination == "" {
		return nil, fmt.Errorf("from and to are both %q", opts.From)
	}
	steps := make([]PromoteStep, len(images))
	for i, img := range images {
		src, err := c.ref(img, opts.From)
		if err != nil {
			return nil, err
		}
		tgt, err := c.ref(img, opts.To)
		if err != nil {
			return nil, err
		}
		if opts.Destination != "" {
			repo := src.Context().RepositoryStr()
			tgt, err = name.NewTag(strings.TrimSuffix(opts.Destination, "/")+"/"+repo[strings.LastIndex(repo, "/")+1:]+":"+opts.To, c.nameOpts...)
			if err != nil {
				return nil, fmt.Errorf("parsing destination %q: %w", opts.Destination, err)
			}
		}
		steps[i] = PromoteStep{Source: src.String(), Target: tgt.String(), src: src, tgt: tgt}
	}
	res := &PromoteResult{Steps: steps}

	// Phase 1: check.
	var (
		mu      sync.Mutex
		missing []string
	)
	err := c.each(ctx, len(steps), func(ctx context.Context, i int) error {
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
		s.srcDesc, s.Digest, s.MediaType = d, d.Digest.String(), string(d.MediaType)
		// The target's digest is all a rollback needs: the registry
		// keeps the manifest, which is fetched by digest if need be.
		prev, err := c.puller.Head(ctx, s.tgt)
		switch {
		case isNotFound(err):
			s.Action = ActionCreate
		case err != nil:
			return fmt.Errorf("resolving %s: %w", s.tgt, err)
		default:
			s.Previous = prev.Digest.String()
			s.Action = ActionUpdate
			if prev.Digest == d.Digest {
				s.Action = ActionUnchanged
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checking: %w", err)
	}
	if len(missing) > 0 {
		return res, fmt.Errorf("checking: %w: %s", ErrSourceMissing, strings.Join(missing, ", "))
	}
	if opts.DryRun {
		return res, nil
	}

	// Phase 2: put; phase 3: verify.
	touched := make([]bool, len(steps))
	err = c.each(ctx, len(steps), func(ctx context.Context, i int) error {
		s := &steps[i]
		if s.Action == ActionUnchanged {
			return nil
		}
		touched[i] = true
		c.log.Debug("promoting", "source", s.Source, "target", s.Target, "digest", s.Digest)
		if err := c.putTarget(ctx, s); err != nil {
			return fmt.Errorf("tagging %s: %w", s.tgt, err)
		}
		return nil
	})
	if err == nil {
		err = c.each(ctx, len(steps), func(ctx context.Context, i int) error {
			s := &steps[i]
			d, err := c.puller.Head(ctx, s.tgt)
			if err != nil {
				return fmt.Errorf("verifying %s: %w", s.tgt, err)
			}
			if d.Digest.String() != s.Digest {
				return fmt.Errorf("verifying %s: digest is %s, want %s", s.tgt, d.Digest, s.Digest)
			}
			return nil
		})
	}
	if err != nil {
		return res, c.rollback(ctx, steps, touched, err)
	}
	return res, nil
}

// putTarget writes the target tag: the same manifest bytes when source and
// target share a repository, else a copy that mounts or streams blobs.
func (c *Client) putTarget(ctx context.Context, s *PromoteStep) error {
	if s.src.Context() == s.tgt.Context() {
		return c.pusher.Put(ctx, s.tgt, rawManifest{body: s.srcDesc.Manifest, mediaType: s.srcDesc.MediaType})
	}
	return c.pusher.Push(ctx, s.tgt, s.srcDesc)
}

// rollback restores every touched target, even if ctx is cancelled.
func (c *Client) rollback(ctx context.Context, steps []PromoteStep, touched []bool, cause error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	perr := &PromoteError{Err: cause, Unrestored: map[string]error{}}
	var mu sync.Mutex
	_ = c.each(rctx, len(steps), func(ctx context.Context, i int) error {
		if !touched[i] {
			return nil
		}
		s := &steps[i]
		var err error
		if s.Previous != "" {
			err = c.restoreTag(ctx, s.tgt, s.Previous)
		} else {
			err = c.deleteTag(ctx, s.tgt)
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			perr.Unrestored[s.Target] = err
			c.log.Debug("rollback failed", "target", s.Target, "err", err)
		} else {
			perr.Restored = append(perr.Restored, s.Target)
		}
		return nil
	})
	return perr
}

// restoreTag points tag back at the manifest it had, fetched by digest
// (the registry keeps a manifest after its tag moves), and checks it.
func (c *Client) restoreTag(ctx context.Context, tag name.Tag, digest string) error {
	prev, err := c.puller.Get(ctx, tag.Context().Digest(digest))
	if err != nil {
		return fmt.Errorf("fetching previous manifest %s: %w", digest, err)
	}
	if err := c.pusher.Put(ctx, tag, rawManifest{body: prev.Manifest, mediaType: prev.MediaType}); err != nil {
		return fmt.Errorf("restoring %s: %w", tag, err)
	}
	d, err := c.puller.Head(ctx, tag)
	if err != nil {
		return fmt.Errorf("checking restored %s: %w", tag, err)
	}
	if d.Digest.String() != digest {
		return fmt.Errorf("digest is %s after restoring, want %s", d.Digest, digest)
	}
	return nil
}

// deleteTag removes a tag that promote created. Registries that cannot
// delete a tag without deleting the manifest (and with it the source tag)
// refuse; the tag is then left and reported.
func (c *Client) deleteTag(ctx context.Context, tag name.Tag) error {
	if _, err := c.puller.Head(ctx, tag); isNotFound(err) {
		return nil // never written
	}
	if err := c.pusher.Delete(ctx, tag); err != nil {
		return fmt.Errorf("deleting new tag %s: %w", tag, err)
	}
	return nil
}

// each runs f for 0..n-1 with at most Jobs at a time; the first error
// cancels the rest.
func (c *Client) each(ctx context.Context, n int, f func(context.Context, int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Jobs)
	for i := 0; i < n; i++ {
		g.Go(func() error { return f(gctx, i) })
	}
	return g.Wait()
}

// WriteLock writes the lock file of a promotion: target reference -> digest.
func WriteLock(w io.Writer, res *PromoteResult) error {
	lock := map[string]string{}
	for _, s := range res.Steps {
		lock[s.Target] = s.Digest
	}
	return encodeYAML(w, map[string]any{"images": lock})
}
