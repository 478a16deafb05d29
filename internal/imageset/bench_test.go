package imageset

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// BenchmarkImageSet compares discover and promote of a ≥90-image set with
// the skopeo loops TripleO used, against one registry seeded once
// (make bench; figures in BENCHMARKS.md, "Image sets").
func BenchmarkImageSet(b *testing.B) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		b.Skip("skopeo not installed (apt-get install skopeo)")
	}
	w := seedWorld(b, 50)
	var present []Image // images that have the moving tag
	for _, img := range w.images {
		if !w.noMoving[img.ImageName] {
			present = append(present, img)
		}
	}
	b.Logf("set: %d images (%d with %s), %d tags each", len(w.images), len(present), movingTag, len(w.hashes))
	run := func(args ...string) ([]byte, error) {
		out, err := exec.CommandContext(b.Context(), skopeo, args...).Output()
		if err != nil {
			return nil, fmt.Errorf("skopeo %s: %w", strings.Join(args, " "), err)
		}
		return out, nil
	}

	b.Run("discover/kubepool", func(b *testing.B) {
		for b.Loop() {
			c := newClient(b, RegistryOptions{})
			res, err := c.Discover(b.Context(), w.images, DiscoverOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Resolved) != len(present) {
				b.Fatalf("resolved %d, want %d", len(res.Resolved), len(present))
			}
			b.ReportMetric(float64(c.Stats().Requests), "requests/op")
		}
	})
	b.Run("discover/kubepool-tag-from-label", func(b *testing.B) {
		for b.Loop() {
			c := newClient(b, RegistryOptions{})
			if _, err := c.Discover(b.Context(), w.images, DiscoverOptions{TagFromLabel: testLabel}); err != nil {
				b.Fatal(err)
			}
		}
	})
	// What TripleO did: skopeo inspect the moving tag, read the label,
	// skopeo inspect the labelled tag to check its digest, image by image.
	b.Run("discover/skopeo-loop", func(b *testing.B) {
		for b.Loop() {
			for _, img := range present {
				out, err := run("inspect", "--tls-verify=false", "docker://"+img.ImageName)
				if err != nil {
					b.Fatal(err)
				}
				var info struct {
					Digest string
					Labels map[string]string
				}
				if err := json.Unmarshal(out, &info); err != nil {
					b.Fatal(err)
				}
				if _, err := run("inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://"+img.WithTag(info.Labels[testLabel]).ImageName); err != nil {
					b.Fatal(err)
				}
			}
		}
	})

	n := 0
	b.Run("promote/kubepool", func(b *testing.B) {
		for b.Loop() {
			n++
			c := newClient(b, RegistryOptions{})
			if _, err := c.Promote(b.Context(), SourcesFromImages(w.images, w.hashes[n]), PromoteOptions{To: fmt.Sprintf("bench-%d", n)}); err != nil {
				b.Fatal(err)
			}
			s := c.Stats()
			b.ReportMetric(float64(s.BlobUploadBytes), "blob-bytes-uploaded/op")
			b.ReportMetric(float64(s.Requests), "requests/op")
		}
	})
	b.Run("promote/skopeo-copy-loop", func(b *testing.B) {
		for b.Loop() {
			n++
			for _, img := range w.images {
				if _, err := run("copy", "--all", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
					"docker://"+img.WithTag(w.hashes[n]).ImageName, "docker://"+img.WithTag(fmt.Sprintf("bench-%d", n)).ImageName); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
