package imageset

import (
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestPromoteAcrossRepositories promotes a pinned set out of the
// repositories it was built in into release repositories of the same
// registry (a buildset's private area to the release area): every blob is
// mounted across repositories, none is uploaded; a failure injected half
// way leaves the journal, and the same promotion again finishes with every
// target at its planned digest, still without a blob byte sent.
func TestPromoteAcrossRepositories(t *testing.T) {
	w := seedWorld(t, 10)
	sources := pinnedSet(t, w)
	dest := w.reg.Host + "/release"
	const to = "v1"
	want := map[string]string{}
	for _, s := range sources {
		ref, err := name.NewTag(s.Ref)
		if err != nil {
			t.Fatal(err)
		}
		repo := ref.Context().RepositoryStr()
		want[dest+"/"+repo[strings.LastIndex(repo, "/")+1:]+":"+to] = s.Digest
	}
	journal := filepath.Join(t.TempDir(), "promote.journal")

	// The first run's 40th manifest PUT to the release area is answered
	// 503 without reaching the registry.
	var puts, mounts atomic.Int64
	inject := func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodPost && req.URL.Query().Get("mount") != "" {
				mounts.Add(1)
			}
			if req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/release/") && strings.Contains(req.URL.Path, "/manifests/") &&
				puts.Add(1) == 40 {
				return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable", Request: req,
					Header: http.Header{"Content-Type": {"application/json"}},
					Body:   io.NopCloser(strings.NewReader(`{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}`))}, nil
			}
			return next.RoundTrip(req)
		})
	}
	c := newClient(t, RegistryOptions{Retries: -1, WrapTransport: inject})
	_, err := c.Promote(t.Context(), sources, PromoteOptions{To: to, Destination: dest, Journal: journal})
	var perr *PromoteError
	if !errors.As(err, &perr) {
		t.Fatalf("first Promote() = %v, want a *PromoteError (the injected 503)", err)
	}
	if got := c.Stats().BlobUploadBytes; got != 0 {
		t.Errorf("first run uploaded %d blob bytes, want 0 (mounts)", got)
	}
	if mounts.Load() == 0 {
		t.Errorf("first run mounted no blob")
	}

	c2 := newClient(t, RegistryOptions{})
	res, err := c2.Promote(t.Context(), sources, PromoteOptions{To: to, Destination: dest, Journal: journal})
	if err != nil {
		t.Fatalf("second Promote() = %v", err)
	}
	if !res.Resumed {
		t.Errorf("second Promote() did not resume the journal")
	}
	if got := c2.Stats().BlobUploadBytes; got != 0 {
		t.Errorf("second run uploaded %d blob bytes, want 0", got)
	}
	for target, digest := range want {
		ref, err := name.ParseReference(target)
		if err != nil {
			t.Fatal(err)
		}
		d, err := remote.Head(ref, remote.WithContext(t.Context()))
		if err != nil {
			t.Errorf("HEAD %s: %v", target, err)
			continue
		}
		if d.Digest.String() != digest {
			t.Errorf("%s is at %s, want %s", target, d.Digest, digest)
		}
	}
	t.Logf("%d images promoted to %s with %d blob mounts, 0 blob bytes uploaded; the first run stopped at the injected 503 with %d pending",
		len(want), dest, mounts.Load(), perr.Pending)
}
