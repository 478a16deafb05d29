package imageset

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"gopkg.in/yaml.v3"
)

// PromoteSource is one image to promote: its reference (repository:tag)
// and, when the set is pinned, the digest it was tested at. Without a
// digest the tag is resolved when promote checks the set.
type PromoteSource struct {
	Ref    string `json:"ref" yaml:"ref"`
	Digest string `json:"digest,omitempty" yaml:"digest,omitempty"`
}

// SourcesFromImages promotes every image from tag (or, if tag is "", from
// its own tag).
func SourcesFromImages(images []Image, tag string) []PromoteSource {
	out := make([]PromoteSource, len(images))
	for i, img := range images {
		if tag != "" {
			img = img.WithTag(tag)
		}
		out[i] = PromoteSource{Ref: img.ImageName}
	}
	return out
}

// A lock file pins a set: every image reference with the digest it had
// when it was written.
//
//	images:
//	  reg.example/ns/nova-api:0123…: sha256:…
//
// discover writes one (the immutable tags it found, with their digests),
// and so does promote (the targets with their new digests). Either is
// promote's --from-lock input.
type lockFile struct {
	Images map[string]string `yaml:"images"`
}

// WriteLock writes the lock file of a promotion: target -> digest.
func WriteLock(w io.Writer, res *PromoteResult) error {
	lock := map[string]string{}
	for _, s := range res.Steps {
		lock[s.Target] = s.Digest
	}
	return encodeYAML(w, lockFile{Images: lock})
}

// WriteDiscoverLock writes the lock file of what discover found: every
// resolved image at its immutable tag -> digest.
func WriteDiscoverLock(w io.Writer, res *DiscoverResult) error {
	lock := map[string]string{}
	for _, r := range res.Resolved {
		repo, _ := splitTag(r.Image)
		lock[repo+":"+r.Tag] = r.Digest
	}
	return encodeYAML(w, lockFile{Images: lock})
}

// ReadLock reads a lock file into pinned sources, sorted by reference.
// Errors name the file and line.
func ReadLock(path string) ([]PromoteSource, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading lock file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: want a mapping with the key images", path)
	}
	top := doc.Content[0]
	var images *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		k := top.Content[i]
		if k.Value != "images" {
			return nil, fmt.Errorf("%s:%d: unknown key %q (want images)", path, k.Line, k.Value)
		}
		images = top.Content[i+1]
	}
	if images == nil || images.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: want images: a mapping of image reference to digest", path)
	}
	var out []PromoteSource
	seen := map[string]int{}
	for i := 0; i+1 < len(images.Content); i += 2 {
		k, v := images.Content[i], images.Content[i+1]
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s:%d: want image reference: digest", path, k.Line)
		}
		if _, err := name.NewTag(k.Value); err != nil {
			return nil, fmt.Errorf("%s:%d: image %q: %w", path, k.Line, k.Value, err)
		}
		if _, err := v1.NewHash(v.Value); err != nil {
			return nil, fmt.Errorf("%s:%d: digest of %s: %w", path, v.Line, k.Value, err)
		}
		repo, _ := splitTag(k.Value)
		if line, ok := seen[repo]; ok {
			return nil, fmt.Errorf("%s:%d: repository %s is already pinned on line %d", path, k.Line, repo, line)
		}
		seen[repo] = k.Line
		out = append(out, PromoteSource{Ref: k.Value, Digest: v.Value})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no images", path)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}

// ReadImagesFile reads an images file (container_images entries, what
// render and discover --images-file write): every image is promoted from
// its own tag.
func ReadImagesFile(path string) ([]PromoteSource, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading images file: %w", err)
	}
	var doc struct {
		Images []Image `yaml:"container_images"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Images) == 0 {
		return nil, fmt.Errorf("%s: no container_images", path)
	}
	for i, img := range doc.Images {
		if _, err := img.Reference(); err != nil {
			return nil, fmt.Errorf("%s: container_images[%d]: %w", path, i, err)
		}
		if _, tag := splitTag(img.ImageName); tag == "" {
			return nil, fmt.Errorf("%s: container_images[%d]: %s has no tag", path, i, img.ImageName)
		}
	}
	return SourcesFromImages(doc.Images, ""), nil
}
