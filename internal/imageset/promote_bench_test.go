package imageset

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sync/errgroup"
)

// BenchmarkPromotePinned promotes a set pinned by digest (discover's lock
// of ≥90 images on per-image hashes) to a new tag, against the skopeo copy
// loop with 16 in parallel, and times a promotion resumed after an
// interruption half-way (make bench; figures in BENCHMARKS.md, "Trusted
// promotion").
func BenchmarkPromotePinned(b *testing.B) {
	w := seedWorld(b, 12)
	sources := pinnedSet(b, w)
	b.Logf("pinned set: %d images", len(sources))
	n := 0
	target := func() string { n++; return fmt.Sprintf("bench-%d", n) }

	b.Run("kubepool", func(b *testing.B) {
		var requests, puts int64
		for b.Loop() {
			c := newClient(b, RegistryOptions{})
			res, err := c.Promote(b.Context(), sources, PromoteOptions{To: target(), Journal: filepath.Join(b.TempDir(), "j")})
			if err != nil {
				b.Fatal(err)
			}
			if res.Count(StateDone) != len(sources) {
				b.Fatalf("promoted %d, want %d", res.Count(StateDone), len(sources))
			}
			s := c.Stats()
			requests, puts = s.Requests, s.ManifestPuts
		}
		b.ReportMetric(float64(requests)/float64(len(sources)), "requests/image")
		b.ReportMetric(float64(puts)/float64(len(sources)), "puts/image")
	})

	// Resume after an interruption half-way: the first run's PUTs fail
	// (connection lost) from the middle on; only the second run is timed.
	b.Run("kubepool-resume-half", func(b *testing.B) {
		var requests int64
		for b.Loop() {
			b.StopTimer()
			to, journal := target(), filepath.Join(b.TempDir(), "j")
			var put atomic.Int64
			c := newClient(b, RegistryOptions{Retries: -1, WrapTransport: func(next http.RoundTripper) http.RoundTripper {
				return roundTripFunc(func(req *http.Request) (*http.Response, error) {
					if req.Method == http.MethodPut && put.Add(1) > int64(len(sources)/2) {
						return nil, fmt.Errorf("cut: %w", errInjected)
					}
					return next.RoundTrip(req)
				})
			}})
			if _, err := c.Promote(b.Context(), sources, PromoteOptions{To: to, Journal: journal}); err == nil {
				b.Fatal("interrupted promotion succeeded")
			}
			b.StartTimer()
			c = newClient(b, RegistryOptions{})
			res, err := c.Promote(b.Context(), sources, PromoteOptions{To: to, Journal: journal})
			if err != nil {
				b.Fatal(err)
			}
			if !res.Resumed || res.Count(StateDone)+res.Count(StateAlready) != len(sources) {
				b.Fatalf("resume: %d done, %d already", res.Count(StateDone), res.Count(StateAlready))
			}
			requests = c.Stats().Requests
		}
		b.ReportMetric(float64(requests)/float64(len(sources)), "requests/image")
	})

	b.Run("skopeo-copy-16", func(b *testing.B) {
		skopeo, err := exec.LookPath("skopeo")
		if err != nil {
			b.Skip("skopeo not installed (apt-get install skopeo)")
		}
		for b.Loop() {
			to := target()
			g, ctx := errgroup.WithContext(b.Context())
			g.SetLimit(16)
			for _, s := range sources {
				g.Go(func() error { return skopeoCopy(ctx, skopeo, s, to) })
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// skopeoCopy copies a pinned source to its repository's tag to, as a
// release script would: skopeo copy --all --preserve-digests.
func skopeoCopy(ctx context.Context, skopeo string, s PromoteSource, to string) error {
	repo, _ := splitTag(s.Ref)
	out, err := exec.CommandContext(ctx, skopeo, "copy", "--all", "--preserve-digests", "--quiet",
		"--src-tls-verify=false", "--dest-tls-verify=false",
		"docker://"+repo+"@"+s.Digest, "docker://"+repo+":"+to).CombinedOutput()
	if err != nil {
		return fmt.Errorf("skopeo copy %s: %w: %s", repo, err, strings.TrimSpace(string(out)))
	}
	return nil
}
