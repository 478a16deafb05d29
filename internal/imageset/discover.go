package imageset

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"
)

// DefaultTagPattern matches the immutable tags TripleO CI pushes: a 40-hex
// commit hash with an optional "_suffix" (a DLRN hash).
var DefaultTagPattern = regexp.MustCompile(`^[0-9a-f]{40}(_[0-9a-zA-Z]+)?$`)

// DiscoverOptions controls [Client.Discover].
type DiscoverOptions struct {
	// MovingTag is the tag to resolve ("current-tripleo"); empty means each
	// image's own tag.
	MovingTag string
	// TagPattern selects the candidate immutable tags; nil means
	// DefaultTagPattern.
	TagPattern *regexp.Regexp
	// TagFromLabel, if set, overrides each image's tag_from_label: the tag
	// is read from the image's config labels instead of searched for. It
	// is a label name ("rdo_version") or a format of labels
	// ("{version}-{release}").
	TagFromLabel string
}

// Resolved is an image whose moving tag was resolved.
type Resolved struct {
	Image  string `json:"image" yaml:"image"` // with the moving tag
	Tag    string `json:"tag" yaml:"tag"`     // the immutable tag found
	Digest string `json:"digest" yaml:"digest"`
}

// Missing is an image dropped from the result, and why.
type Missing struct {
	Image  string `json:"image" yaml:"image"`
	Reason string `json:"reason" yaml:"reason"`
}

// DiscoverResult is what discover found.
type DiscoverResult struct {
	// Images is the resolved set: the input images that were found, each
	// with its immutable tag, in input order.
	Images   []Image    `json:"-" yaml:"-"`
	Resolved []Resolved `json:"resolved" yaml:"resolved"`
	Missing  []Missing  `json:"missing" yaml:"missing"`
	// Tags are the distinct immutable tags found, most common first.
	Tags []string `json:"tags" yaml:"tags"`
}

// Consensus reports whether every resolved image has the same tag.
func (r *DiscoverResult) Consensus() bool { return len(r.Tags) == 1 }

// errTagNotFound marks an image dropped (not a failure of the whole run).
type dropError struct{ reason string }

func (e *dropError) Error() string { return e.reason }

// Discover finds, for every image, which immutable tag its moving tag
// points at (same manifest digest). Images that lack the moving tag, or
// whose digest no candidate tag has, are dropped and listed in Missing;
// registry errors fail the whole call.
func (c *Client) Discover(ctx context.Context, images []Image, opts DiscoverOptions) (*DiscoverResult, error) {
	if opts.TagPattern == nil {
		opts.TagPattern = DefaultTagPattern
	}
	type outcome struct {
		res  *Resolved
		drop string
	}
	outcomes := make([]outcome, len(images))
	h := &hints{count: map[string]int{}}
	// Every image's moving tag is resolved once, by whichever goroutine
	// asks first: its digest (HEAD), or with tag_from_label its manifest
	// too (GET, which has the digest).
	heads := make([]func() (*remote.Descriptor, error), len(images))
	g, gctx := errgroup.WithContext(ctx)
	for i := range images {
		heads[i] = sync.OnceValues(func() (*remote.Descriptor, error) {
			ref, err := c.ref(images[i], moving(images[i], opts))
			if err != nil {
				return nil, err
			}
			if cmp.Or(opts.TagFromLabel, images[i].TagFromLabel) != "" {
				return c.puller.Get(gctx, ref)
			}
			d, err := c.puller.Head(gctx, ref)
			if err != nil {
				return nil, err
			}
			return &remote.Descriptor{Descriptor: *d}, nil
		})
	}
	var resolved atomic.Int64
	one := func(ctx context.Context, i int) error {
		res, err := c.discoverOne(ctx, images[i], opts, h, heads[i])
		defer func() { c.progress("resolving", int(resolved.Add(1)), len(images)) }()
		var drop *dropError
		switch {
		case errors.As(err, &drop):
			outcomes[i].drop = drop.reason
			c.log.Debug("dropping image", "image", images[i].ImageName, "reason", drop.reason)
			return nil
		case err != nil:
			return err
		}
		outcomes[i].res = res
		return nil
	}
	// Resolve images one by one until one gives a tag: the others then
	// try that tag first instead of each searching all tags at once.
	// Meanwhile the other images' moving tags are resolved.
	g.SetLimit(c.opts.Jobs)
	next := 0
	searched := make(chan struct{})
	g.Go(func() error {
		defer close(searched)
		for ; next < len(images) && len(h.count) == 0; next++ {
			if err := one(gctx, next); err != nil {
				return err
			}
		}
		return nil
	})
	for i := range images {
		g.Go(func() error {
			_, _ = heads[i]() // errors are reported by one
			return nil
		})
	}
	<-searched
	for i := next; i < len(images) && gctx.Err() == nil; i++ {
		g.Go(func() error { return one(gctx, i) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := &DiscoverResult{Resolved: []Resolved{}, Missing: []Missing{}, Tags: []string{}}
	counts := map[string]int{}
	for i, o := range outcomes {
		if o.res == nil {
			out.Missing = append(out.Missing, Missing{Image: images[i].WithTag(moving(images[i], opts)).ImageName, Reason: o.drop})
			continue
		}
		out.Resolved = append(out.Resolved, *o.res)
		out.Images = append(out.Images, images[i].WithTag(o.res.Tag))
		if counts[o.res.Tag] == 0 {
			out.Tags = append(out.Tags, o.res.Tag)
		}
		counts[o.res.Tag]++
	}
	sort.SliceStable(out.Tags, func(a, b int) bool { return counts[out.Tags[a]] > counts[out.Tags[b]] })
	return out, nil
}

func moving(img Image, opts DiscoverOptions) string {
	if opts.MovingTag != "" {
		return opts.MovingTag
	}
	_, tag := splitTag(img.ImageName)
	return tag
}

// hints are the tags found so far: in a consistent set, the tag found for
// the first image is the tag of all the others, so it is tried first.
type hints struct {
	mu    sync.Mutex
	count map[string]int
}

func (h *hints) add(tag string) {
	h.mu.Lock()
	h.count[tag]++
	h.mu.Unlock()
}

// order returns tags with the most-seen hints first, the rest sorted.
func (h *hints) order(tags []string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := slices.Clone(tags)
	sort.SliceStable(out, func(a, b int) bool {
		ca, cb := h.count[out[a]], h.count[out[b]]
		if ca != cb {
			return ca > cb
		}
		return out[a] > out[b]
	})
	return out
}

func (h *hints) best() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	best := ""
	for t, n := range h.count {
		if n > h.count[best] || (n == h.count[best] && t < best) {
			best = t
		}
	}
	return best
}

// discoverOne finds the tag of img; head resolves its moving tag (with its
// manifest when the tag is read from a label).
func (c *Client) discoverOne(ctx context.Context, img Image, opts DiscoverOptions, h *hints, head func() (*remote.Descriptor, error)) (*Resolved, error) {
	mov := moving(img, opts)
	ref, err := c.ref(img, mov)
	if err != nil {
		return nil, err
	}
	desc, err := head()
	if err != nil {
		if isNotFound(err) {
			return nil, &dropError{fmt.Sprintf("no tag %q", mov)}
		}
		return nil, c.headError(ctx, ref, err)
	}
	digest := desc.Digest
	res := &Resolved{Image: ref.String(), Digest: digest.String()}

	if label := cmp.Or(opts.TagFromLabel, img.TagFromLabel); label != "" {
		tag, err := tagFromLabel(ref, desc, label)
		if err != nil {
			return nil, err
		}
		if err := c.sameDigest(ctx, img, tag, digest); err != nil {
			return nil, err
		}
		res.Tag = tag
		h.add(tag)
		return res, nil
	}

	// The tag most images so far resolved to is likely right: try it
	// before listing every tag.
	tried := ""
	if best := h.best(); best != "" && opts.TagPattern.MatchString(best) {
		tried = best
		if err := c.sameDigest(ctx, img, best, digest); err == nil {
			res.Tag = best
			h.add(best)
			return res, nil
		} else if !isDrop(err) {
			return nil, err
		}
	}
	tags, err := c.puller.List(ctx, ref.Context())
	if err != nil {
		return nil, c.wrap("GET tags/list", ref, err)
	}
	var candidates []string
	for _, t := range tags {
		if t != mov && opts.TagPattern.MatchString(t) {
			candidates = append(candidates, t)
		}
	}
	for _, t := range h.order(candidates) {
		if t == tried {
			continue
		}
		err := c.sameDigest(ctx, img, t, digest)
		if err == nil {
			res.Tag = t
			h.add(t)
			return res, nil
		}
		if !isDrop(err) {
			return nil, err
		}
	}
	return nil, &dropError{fmt.Sprintf("none of %d tags matching %s has the digest of %q (%s)", len(candidates), opts.TagPattern, mov, digest)}
}

func isDrop(err error) bool {
	var d *dropError
	return errors.As(err, &d)
}

// sameDigest returns nil if img:tag has digest want, a *dropError if it
// does not or does not exist, and other errors as they come.
func (c *Client) sameDigest(ctx context.Context, img Image, tag string, want v1.Hash) error {
	ref, err := c.ref(img, tag)
	if err != nil {
		return err
	}
	d, err := c.puller.Head(ctx, ref)
	if err != nil {
		if isNotFound(err) {
			return &dropError{fmt.Sprintf("tag %q does not exist", tag)}
		}
		return c.headError(ctx, ref, err)
	}
	if d.Digest != want {
		return &dropError{fmt.Sprintf("tag %q has digest %s, not %s", tag, d.Digest, want)}
	}
	return nil
}

var labelField = regexp.MustCompile(`\{([^{}]+)\}`)

// tagFromLabel reads the tag from the config labels of desc, the manifest
// of ref (for an index, the linux/amd64 image's, or the first one's).
// label is a label name or a format such as "{version}-{release}".
func tagFromLabel(ref name.Tag, desc *remote.Descriptor, label string) (string, error) {
	var (
		image v1.Image
		err   error
	)
	if desc.MediaType.IsIndex() {
		image, err = desc.Image() // picks the default platform, linux/amd64
		if err != nil {
			idx, ierr := desc.ImageIndex()
			if ierr != nil {
				return "", fmt.Errorf("reading index %s: %w", ref, ierr)
			}
			m, merr := idx.IndexManifest()
			if merr != nil || len(m.Manifests) == 0 {
				return "", fmt.Errorf("reading index %s: %w", ref, errors.Join(err, merr))
			}
			if image, err = idx.Image(m.Manifests[0].Digest); err != nil {
				return "", fmt.Errorf("reading %s: %w", ref, err)
			}
		}
	} else if image, err = desc.Image(); err != nil {
		return "", fmt.Errorf("reading %s: %w", ref, err)
	}
	cfg, err := image.ConfigFile()
	if err != nil {
		return "", fmt.Errorf("reading config of %s: %w", ref, err)
	}
	labels := cfg.Config.Labels
	if !strings.Contains(label, "{") {
		v, ok := labels[label]
		if !ok || v == "" {
			return "", &dropError{fmt.Sprintf("no label %q", label)}
		}
		return v, nil
	}
	var missing []string
	tag := labelField.ReplaceAllStringFunc(label, func(m string) string {
		key := m[1 : len(m)-1]
		v, ok := labels[key]
		if !ok {
			missing = append(missing, key)
		}
		return v
	})
	if len(missing) > 0 {
		return "", &dropError{fmt.Sprintf("tag_from_label %q: no label %s", label, strings.Join(missing, ", "))}
	}
	return tag, nil
}
