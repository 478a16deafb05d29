package imageset

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubepool/kubepool/internal/testenv"
)

func newClient(t testing.TB, opts RegistryOptions) *Client {
	t.Helper()
	if opts.Keychain == nil {
		opts.Keychain = authn.NewMultiKeychain() // no credentials: the test registry is open
	}
	c, err := NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// digests returns image -> digest of tag for every image ("" if absent).
func digests(t *testing.T, images []Image, tag string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, img := range images {
		ref, err := img.WithTag(tag).Reference()
		if err != nil {
			t.Fatal(err)
		}
		d, err := remote.Head(ref, remote.WithContext(t.Context()))
		switch {
		case isNotFound(err):
			out[img.ImageName] = ""
		case err != nil:
			t.Fatalf("HEAD %s: %v", ref, err)
		default:
			out[img.ImageName] = d.Digest.String()
		}
	}
	return out
}

// TestRegistry runs discover and promote against one real registry seeded
// with ≥90 images × 50 tags. Subtests that change tags use their own.
func TestRegistry(t *testing.T) {
	w := seedWorld(t, 50)
	if len(w.images) < 90 {
		t.Fatalf("seeded %d images, want ≥ 90", len(w.images))
	}

	t.Run("discover", func(t *testing.T) {
		c := newClient(t, RegistryOptions{PageSize: 16})
		res, err := c.Discover(t.Context(), w.images, DiscoverOptions{})
		if err != nil {
			t.Fatalf("Discover() = %v", err)
		}
		var wantMissing []string
		for _, img := range w.images {
			if w.noMoving[img.ImageName] {
				wantMissing = append(wantMissing, img.ImageName)
			}
		}
		var gotMissing []string
		for _, m := range res.Missing {
			gotMissing = append(gotMissing, m.Image)
			if !strings.Contains(m.Reason, `no tag "current-tripleo"`) {
				t.Errorf("Missing reason for %s = %q, want it to name the tag", m.Image, m.Reason)
			}
		}
		if diff := cmp.Diff(wantMissing, gotMissing); diff != "" {
			t.Errorf("Discover() missing (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{w.current, w.offHash}, res.Tags); diff != "" {
			t.Errorf("Discover() tags (-want +got):\n%s", diff)
		}
		if res.Consensus() {
			t.Errorf("Consensus() = true, want false (one image is on another hash)")
		}
		if got, want := len(res.Images), len(w.images)-len(w.noMoving); got != want {
			t.Fatalf("Discover() resolved %d images, want %d", got, want)
		}
		for i, r := range res.Resolved {
			want := w.current
			if strings.Contains(r.Image, w.images[20].Name()+":") {
				want = w.offHash
			}
			if r.Tag != want {
				t.Errorf("Discover(%s) tag = %s, want %s", r.Image, r.Tag, want)
			}
			if _, tag := splitTag(res.Images[i].ImageName); tag != r.Tag {
				t.Errorf("Images[%d] = %s, want tag %s", i, res.Images[i].ImageName, r.Tag)
			}
		}
		// The env file of the resolved set points at the hash tags.
		env := EnvFile(res.Images)["parameter_defaults"]
		if got := env["DockerKeystoneImage"]; !strings.HasSuffix(got, ":"+w.current) {
			t.Errorf("EnvFile()[DockerKeystoneImage] = %q, want tag %s", got, w.current)
		}
	})

	t.Run("discover tag_from_label", func(t *testing.T) {
		c := newClient(t, RegistryOptions{})
		for _, tt := range []struct{ label, want string }{
			{testLabel, w.current},
		} {
			res, err := c.Discover(t.Context(), w.images, DiscoverOptions{TagFromLabel: tt.label})
			if err != nil {
				t.Fatalf("Discover(tag_from_label %s) = %v", tt.label, err)
			}
			if diff := cmp.Diff([]string{tt.want}, res.Tags); diff != "" {
				t.Errorf("Discover(tag_from_label %s) tags (-want +got):\n%s", tt.label, diff)
			}
			// The image on another hash has the label of the current one:
			// its digest does not match, so it is dropped with the reason.
			if got, want := len(res.Missing), len(w.noMoving)+1; got != want {
				t.Errorf("Discover(tag_from_label) dropped %d, want %d: %v", got, want, res.Missing)
			}
		}
		// A format of labels that names a missing label drops every image.
		res, err := c.Discover(t.Context(), w.images[:3], DiscoverOptions{TagFromLabel: "{version}-{nosuch}"})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Resolved) != 0 || !strings.Contains(res.Missing[0].Reason, "no label nosuch") {
			t.Errorf("Discover({version}-{nosuch}) = %+v, want all dropped for the missing label", res)
		}
	})

	t.Run("promote", func(t *testing.T) {
		c := newClient(t, RegistryOptions{})
		const to = "promoted"
		journal := filepath.Join(t.TempDir(), "promote.journal")
		before := c.Stats()
		res, err := c.Promote(t.Context(), SourcesFromImages(w.images, w.current), PromoteOptions{To: to, Journal: journal})
		if err != nil {
			t.Fatalf("Promote() = %v", err)
		}
		stats := c.Stats()
		if got := stats.BlobUploads - before.BlobUploads; got != 0 {
			t.Errorf("Promote() made %d blob uploads (%d bytes), want 0", got, stats.BlobUploadBytes-before.BlobUploadBytes)
		}
		if diff := cmp.Diff(digests(t, w.images, w.current), digests(t, w.images, to)); diff != "" {
			t.Errorf("after Promote() %s differs from %s (-from +to):\n%s", to, w.current, diff)
		}
		for _, s := range res.Steps {
			if s.Action != ActionCreate || s.State != StateDone {
				t.Errorf("Promote() step %s = %s/%s, want create/done", s.Target, s.Action, s.State)
			}
			isIndex := strings.Contains(s.MediaType, "index")
			if want := w.multiArch[strings.Replace(s.Source, w.current, movingTag, 1)]; isIndex != want {
				t.Errorf("Promote() %s media type %s, want index: %v", s.Source, s.MediaType, want)
			}
		}
		if _, err := os.Stat(journal); !os.IsNotExist(err) {
			t.Errorf("journal after a complete promotion: %v, want it removed", err)
		}
		// The lock file names every target with its digest.
		var lock bytes.Buffer
		if err := WriteLock(&lock, res); err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(lock.String(), "sha256:"); got != len(w.images) {
			t.Errorf("WriteLock() has %d digests, want %d", got, len(w.images))
		}
		// Promoting again changes nothing.
		res, err = c.Promote(t.Context(), SourcesFromImages(w.images, w.current), PromoteOptions{To: to, Journal: journal})
		if err != nil {
			t.Fatalf("Promote() again = %v", err)
		}
		for _, s := range res.Steps {
			if s.Action != ActionUnchanged || s.State != StateAlready {
				t.Errorf("Promote() again: %s = %s/%s, want unchanged/already", s.Target, s.Action, s.State)
			}
		}
	})

	t.Run("promote multi-arch index whole", func(t *testing.T) {
		c := newClient(t, RegistryOptions{})
		var set []Image
		for _, img := range w.images {
			if w.multiArch[img.ImageName] {
				set = append(set, img)
			}
		}
		if _, err := c.Promote(t.Context(), SourcesFromImages(set, w.hashes[1]), PromoteOptions{To: "multi"}); err != nil {
			t.Fatalf("Promote() = %v", err)
		}
		for _, img := range set {
			ref, _ := img.WithTag("multi").Reference()
			idx, err := remote.Index(ref, remote.WithContext(t.Context()))
			if err != nil {
				t.Fatalf("reading index %s: %v", ref, err)
			}
			m, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			var archs []string
			for _, d := range m.Manifests {
				archs = append(archs, d.Platform.Architecture)
				if _, err := idx.Image(d.Digest); err != nil {
					t.Errorf("index %s child %s: %v", ref, d.Digest, err)
				}
			}
			if diff := cmp.Diff([]string{"amd64", "arm64"}, archs); diff != "" {
				t.Errorf("index %s platforms (-want +got):\n%s", ref, diff)
			}
		}
	})

	t.Run("promote dry run and missing source", func(t *testing.T) {
		c := newClient(t, RegistryOptions{})
		before := digests(t, w.images, passedTag)
		res, err := c.Promote(t.Context(), SourcesFromImages(w.images, w.current), PromoteOptions{To: passedTag, DryRun: true})
		if err != nil {
			t.Fatalf("Promote(dry run) = %v", err)
		}
		for _, s := range res.Steps {
			if s.Action != ActionUpdate || s.Previous == "" || s.State != StatePlanned {
				t.Errorf("Promote(dry run) %s = %s/%s from %q, want a planned update from the old digest", s.Target, s.Action, s.State, s.Previous)
			}
		}
		// To a new tag: the dry run says distribution 2.8 cannot delete it.
		res, err = c.Promote(t.Context(), SourcesFromImages(w.images[:2], w.current), PromoteOptions{To: "dry-new", DryRun: true})
		if err != nil {
			t.Fatalf("Promote(dry run, new tag) = %v", err)
		}
		if got := res.TagDeletion[w.reg.Host]; got != TagDeletionUnsupported {
			t.Errorf("Promote(dry run).TagDeletion[%s] = %q, want %q", w.reg.Host, got, TagDeletionUnsupported)
		}
		// current-tripleo is missing on some images: nothing may change.
		_, err = c.Promote(t.Context(), SourcesFromImages(w.images, movingTag), PromoteOptions{To: passedTag})
		if !errors.Is(err, ErrSourceMissing) {
			t.Fatalf("Promote(from %s) = %v, want ErrSourceMissing", movingTag, err)
		}
		if diff := cmp.Diff(before, digests(t, w.images, passedTag)); diff != "" {
			t.Errorf("targets changed (-before +after):\n%s", diff)
		}
	})

	// A PUT that fails leaves the journal; the same promotion again
	// finishes it, writing only the targets not yet right.
	t.Run("promote resumes after a failed put", func(t *testing.T) {
		for _, failAt := range []int{1, 45, len(w.images)} {
			t.Run(fmt.Sprintf("fail PUT %d", failAt), func(t *testing.T) {
				to := fmt.Sprintf("resume-%d", failAt)
				journal := filepath.Join(t.TempDir(), "promote.journal")
				sources := SourcesFromImages(w.images, w.hashes[3])
				c := newClient(t, RegistryOptions{Retries: -1, Jobs: 1, WrapTransport: failNthManifestPut(failAt)})
				res, err := c.Promote(t.Context(), sources, PromoteOptions{To: to, Journal: journal})
				var perr *PromoteError
				if !errors.As(err, &perr) {
					t.Fatalf("Promote() = %v, want a *PromoteError", err)
				}
				if !errors.Is(err, errInjected) {
					t.Errorf("Promote() = %v, want it to wrap the injected error", err)
				}
				// One job: the targets before the failure are done, the
				// failed one is pending, and so are the others (they are
				// still tried: one PUT's failure is not theirs).
				if got, want := res.Count(StateDone), len(w.images)-1; got != want {
					t.Errorf("Promote() done %d, want %d", got, want)
				}
				if perr.Pending != 1 || perr.ErrorsFile == "" {
					t.Errorf("PromoteError = %+v, want 1 pending and an errors file", perr)
				}
				if _, err := os.Stat(journal); err != nil {
					t.Fatalf("journal after a failed promotion: %v", err)
				}
				log := &requestLog{}
				c = newClient(t, RegistryOptions{WrapTransport: log.wrap})
				res, err = c.Promote(t.Context(), sources, PromoteOptions{To: to, Journal: journal})
				if err != nil {
					t.Fatalf("Promote() again = %v", err)
				}
				if !res.Resumed || res.Count(StateDone) != 1 || res.Count(StateAlready) != len(w.images)-1 {
					t.Errorf("Promote() again: resumed %v, %d done, %d already; want resumed, 1 and %d", res.Resumed, res.Count(StateDone), res.Count(StateAlready), len(w.images)-1)
				}
				if n := log.count(http.MethodPut, "/manifests/"+to); n != 1 {
					t.Errorf("Promote() again sent %d manifest PUTs, want 1 (the failed target only)", n)
				}
				if diff := cmp.Diff(digests(t, w.images, w.hashes[3]), digests(t, w.images, to)); diff != "" {
					t.Errorf("after resuming, %s differs from its source (-source +target):\n%s", to, diff)
				}
				if _, err := os.Stat(journal); !os.IsNotExist(err) {
					t.Errorf("journal after resuming: %v, want it removed", err)
				}
			})
		}
	})

	t.Run("promote rollback", func(t *testing.T) {
		before := digests(t, w.images, passedTag)
		sources := digests(t, w.images, w.current)
		journal := filepath.Join(t.TempDir(), "promote.journal")
		c := newClient(t, RegistryOptions{Retries: -1, Jobs: 1, WrapTransport: failNthManifestPut(45)})
		if _, err := c.Promote(t.Context(), SourcesFromImages(w.images, w.current), PromoteOptions{To: passedTag, Journal: journal}); err == nil {
			t.Fatalf("Promote() with a failing PUT = nil, want an error")
		}
		if diff := cmp.Diff(before, digests(t, w.images, passedTag)); diff == "" {
			t.Fatalf("Promote() changed nothing before failing; the test needs a half-done promotion")
		}
		log := &requestLog{}
		c = newClient(t, RegistryOptions{WrapTransport: log.wrap})
		res, err := c.RollbackJournal(t.Context(), journal)
		if err != nil {
			t.Fatalf("RollbackJournal() = %v", err)
		}
		if len(res.Restored) != len(w.images)-1 || len(res.Unchanged) != 1 {
			t.Errorf("RollbackJournal() restored %d, unchanged %d; want %d and 1", len(res.Restored), len(res.Unchanged), len(w.images)-1)
		}
		if diff := cmp.Diff(before, digests(t, w.images, passedTag)); diff != "" {
			t.Errorf("rollback did not restore every target (-before +after):\n%s", diff)
		}
		if diff := cmp.Diff(sources, digests(t, w.images, w.current)); diff != "" {
			t.Errorf("rollback changed source tags (-before +after):\n%s", diff)
		}
		// Each restored target: HEAD (where is it now), GET the old
		// manifest by digest, PUT it.
		if got, want := len(log.all())-log.count(http.MethodGet, "/v2/"), 1*len(w.images)+2*len(res.Restored); got != want {
			t.Errorf("RollbackJournal() sent %d requests besides /v2/, want %d", got, want)
		}
		if _, err := os.Stat(journal); !os.IsNotExist(err) {
			t.Errorf("journal after rollback: %v, want it removed", err)
		}
	})

	t.Run("promote rollback of created tags names them", func(t *testing.T) {
		const to = "fresh"
		sources := digests(t, w.images, w.current)
		journal := filepath.Join(t.TempDir(), "promote.journal")
		c := newClient(t, RegistryOptions{Retries: -1, Jobs: 1, WrapTransport: failNthManifestPut(30)})
		if _, err := c.Promote(t.Context(), SourcesFromImages(w.images, w.current), PromoteOptions{To: to, Journal: journal}); err == nil {
			t.Fatalf("Promote() with a failing PUT = nil, want an error")
		}
		c = newClient(t, RegistryOptions{})
		res, err := c.RollbackJournal(t.Context(), journal)
		if err != nil {
			t.Fatalf("RollbackJournal() = %v", err)
		}
		// distribution 2.8 cannot delete a tag alone: every created tag is
		// named, with how to remove it; none is "restored" by deleting
		// its manifest (which would take the source tag with it).
		var left []string
		for _, u := range res.Unremovable {
			left = append(left, u.Target)
			if u.Reason != TagDeletionUnsupported || !strings.Contains(u.How, "_manifests/tags/"+to) {
				t.Errorf("Unremovable %s = %s, %q; want unsupported and the tag's directory", u.Target, u.Reason, u.How)
			}
		}
		var written []string
		for img, d := range digests(t, w.images, to) {
			if d != "" {
				written = append(written, strings.Replace(img, ":"+movingTag, ":"+to, 1))
			}
		}
		sort.Strings(left)
		sort.Strings(written)
		if diff := cmp.Diff(written, left); diff != "" {
			t.Errorf("RollbackJournal() unremovable tags (-written +reported):\n%s", diff)
		}
		if diff := cmp.Diff(sources, digests(t, w.images, w.current)); diff != "" {
			t.Errorf("rollback changed source tags (-before +after):\n%s", diff)
		}
	})

	// What discover and promote ask the registry: the version check once
	// per registry (not per repository), and nothing twice that need not be.
	t.Run("requests", func(t *testing.T) {
		pings := func(t *testing.T, log *requestLog) {
			t.Helper()
			// https is tried first, then plain HTTP (loopback).
			if n := log.count(http.MethodGet, "/v2/"); n == 0 || n > 2 {
				t.Errorf("GET /v2/ sent %d times, want 1 or 2 (once per scheme)", n)
			}
		}
		log := &requestLog{}
		c := newClient(t, RegistryOptions{WrapTransport: log.wrap})
		if _, err := c.Discover(t.Context(), w.images, DiscoverOptions{}); err != nil {
			t.Fatalf("Discover() = %v", err)
		}
		pings(t, log)
		seen := map[string]bool{}
		for _, r := range log.all() {
			if seen[r] && r != "GET /v2/" {
				t.Errorf("Discover() sent %s twice", r)
			}
			seen[r] = true
		}
		if got, want := c.Stats().Requests, int64(len(log.all())); got != want {
			t.Errorf("Stats().Requests = %d, want %d (the requests sent)", got, want)
		}

		// With tag_from_label the moving tag's manifest is fetched, once:
		// it has the digest, no HEAD is needed.
		log = &requestLog{}
		c = newClient(t, RegistryOptions{WrapTransport: log.wrap})
		if _, err := c.Discover(t.Context(), w.images, DiscoverOptions{TagFromLabel: testLabel}); err != nil {
			t.Fatalf("Discover(tag_from_label) = %v", err)
		}
		if n := log.count(http.MethodHead, "/manifests/"+movingTag); n != 0 {
			t.Errorf("Discover(tag_from_label) sent HEAD …/%s %d times, want 0", movingTag, n)
		}
		if got, want := log.count(http.MethodGet, "/manifests/"+movingTag), len(w.images); got != want {
			t.Errorf("Discover(tag_from_label) sent GET …/%s %d times, want %d (once per image)", movingTag, got, want)
		}

		log = &requestLog{}
		c = newClient(t, RegistryOptions{WrapTransport: log.wrap})
		const to = "requests"
		if _, err := c.Promote(t.Context(), SourcesFromImages(w.images, w.hashes[2]), PromoteOptions{To: to, Journal: filepath.Join(t.TempDir(), "j")}); err != nil {
			t.Fatalf("Promote() = %v", err)
		}
		pings(t, log)
		// Per image: GET the source, HEAD the target (check), PUT it
		// (its answer's Docker-Content-Digest verifies it).
		for _, want := range []struct {
			method, suffix string
			n              int
		}{
			{http.MethodGet, "/manifests/" + w.hashes[2], len(w.images)},
			{http.MethodHead, "/manifests/" + to, len(w.images)},
			{http.MethodPut, "/manifests/" + to, len(w.images)},
		} {
			if got := log.count(want.method, want.suffix); got != want.n {
				t.Errorf("Promote() sent %s …%s %d times, want %d", want.method, want.suffix, got, want.n)
			}
		}
		if got, want := len(log.all())-log.count(http.MethodGet, "/v2/"), 3*len(w.images); got != want {
			t.Errorf("Promote() sent %d requests besides /v2/, want %d", got, want)
		}
	})

	t.Run("retries 5xx", func(t *testing.T) {
		var failed atomic.Int64
		c := newClient(t, RegistryOptions{WrapTransport: func(next http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(req *http.Request) (*http.Response, error) {
				// Every third HEAD gets a 503 the first time.
				if req.Method == http.MethodHead && failed.Add(1)%3 == 0 {
					return &http.Response{StatusCode: http.StatusServiceUnavailable, Body: http.NoBody, Request: req, Header: http.Header{}}, nil
				}
				return next.RoundTrip(req)
			})
		}})
		res, err := c.Discover(t.Context(), w.images[:20], DiscoverOptions{})
		if err != nil {
			t.Fatalf("Discover() with 503s = %v", err)
		}
		if len(res.Resolved) == 0 {
			t.Errorf("Discover() with 503s resolved nothing")
		}
	})
}

var errInjected = errors.New("injected failure")

// failNthManifestPut fails the nth manifest PUT (counting from 1) once.
func failNthManifestPut(n int) func(http.RoundTripper) http.RoundTripper {
	var count atomic.Int64
	return func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/manifests/") && count.Add(1) == int64(n) {
				return nil, errInjected
			}
			return next.RoundTrip(req)
		})
	}
}

// requestLog records the requests that reach the registry, as "METHOD
// path".
type requestLog struct {
	mu   sync.Mutex
	reqs []string
}

func (l *requestLog) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		l.mu.Lock()
		l.reqs = append(l.reqs, req.Method+" "+req.URL.Path)
		l.mu.Unlock()
		return next.RoundTrip(req)
	})
}

// count returns how many requests had method and a path ending in suffix.
func (l *requestLog) count(method, suffix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.reqs {
		if m, path, _ := strings.Cut(r, " "); m == method && strings.HasSuffix(path, suffix) {
			n++
		}
	}
	return n
}

func (l *requestLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reqs)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func TestRegistryAuth(t *testing.T) {
	w := seedWorldAuth(t)
	host := w.reg.Host
	good := fmt.Sprintf(`{"auths":{%q:{"username":"ci","password":"s3cret"}}}`, host)
	bad := fmt.Sprintf(`{"auths":{%q:{"username":"ci","password":"nope"}}}`, host)
	other := `{"auths":{"other.example:5000":{"username":"ci","password":"s3cret"}}}`
	tests := []struct {
		name     string
		config   string // docker config.json; "" for none
		authFile string // contents of --authfile
		envFile  string // contents of $REGISTRY_AUTH_FILE
		creds    string
		// wantErr are parts of the error; none means success.
		wantErr []string
	}{
		{name: "no credentials", wantErr: []string{"registry " + host, "401", "no credentials sent", "config.json (absent)", "docker login " + host, "--creds", "--authfile"}},
		{name: "wrong password", config: bad, wantErr: []string{"registry " + host, "credentials sent, from ", "config.json", "refused", "docker login " + host}},
		{name: "credentials for another host", config: other, wantErr: []string{"registry " + host, "no credentials sent: none for this registry", "other.example:5000", "docker login " + host}},
		{name: "wrong --creds", config: good, creds: "ci:nope", wantErr: []string{"credentials sent, from --creds"}},
		{name: "wrong REGISTRY_AUTH_FILE", envFile: bad, wantErr: []string{"credentials sent, from REGISTRY_AUTH_FILE="}},
		{name: "docker config", config: good},
		{name: "--creds", creds: "ci:s3cret"},
		{name: "--authfile", authFile: good, config: bad},
		{name: "REGISTRY_AUTH_FILE", envFile: good},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write := func(name, body string) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			if tt.config != "" {
				write("config.json", tt.config)
			}
			opts := RegistryOptions{Retries: -1, Creds: tt.creds}
			if tt.authFile != "" {
				opts.AuthFile = write("auth.json", tt.authFile)
			}
			t.Setenv("REGISTRY_AUTH_FILE", "")
			if tt.envFile != "" {
				t.Setenv("REGISTRY_AUTH_FILE", write("env-auth.json", tt.envFile))
			}
			t.Setenv("DOCKER_CONFIG", dir)
			c, err := NewClient(opts)
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Discover(t.Context(), w.images, DiscoverOptions{})
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("Discover() = %+v, want an auth error", res)
				}
				if KindOf(err) != KindAuth {
					t.Errorf("KindOf(%v) = %s, want auth", err, KindOf(err))
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("Discover() error lacks %q:\n%v", s, err)
					}
				}
				t.Logf("%v", err)
				// Promote says the same, and changes nothing.
				_, perr := c.Promote(t.Context(), SourcesFromImages(w.images, w.current), PromoteOptions{To: "auth-denied"})
				if perr == nil || !strings.Contains(perr.Error(), "nothing was changed") || !strings.Contains(perr.Error(), "registry "+host) {
					t.Errorf("Promote() = %v, want the auth error and nothing changed", perr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Discover() = %v", err)
			}
			if len(res.Resolved) != len(w.images) {
				t.Errorf("Discover() resolved %d, want %d", len(res.Resolved), len(w.images))
			}
			if _, err := c.Promote(t.Context(), SourcesFromImages(w.images, w.current), PromoteOptions{To: "auth-promoted"}); err != nil {
				t.Errorf("Promote() = %v", err)
			}
		})
	}
	if _, err := NewClient(RegistryOptions{AuthFile: filepath.Join(t.TempDir(), "none.json")}); err == nil || !strings.Contains(err.Error(), "--authfile") {
		t.Errorf("NewClient(missing --authfile) = %v, want an error naming --authfile", err)
	}
	if _, err := NewClient(RegistryOptions{Creds: "nocolon"}); err == nil || !strings.Contains(err.Error(), "USER:PASSWORD") {
		t.Errorf("NewClient(--creds nocolon) = %v, want an error naming the format", err)
	}
}

// TestRegistryServerErrors: a 5xx answer's error body is in the message.
// (A real registry answers 500 only when its storage fails: a fake server
// stands in.)
func TestRegistryServerErrors(t *testing.T) {
	for _, tt := range []struct {
		name, contentType, body string
		status                  int
		want                    string
	}{
		{"distribution json", "application/json", `{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":{"reason":"filesystem: no space left on device"}}]}`, 500,
			"500 Internal Server Error: UNKNOWN: unknown error (map[reason:filesystem: no space left on device])"},
		{"proxy html", "text/html", "<html><body>502 Bad Gateway: upstream registry down</body></html>", 502, "upstream registry down"},
		// The source reads; the target's HEAD fails, and its body is
		// fetched with a GET.
		{"head", "application/json", `{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":"s3: SlowDown"}]}`, 503,
			"HEAD manifest (then GET for the error body) " + "HOST/ns/a:x: 503 Service Unavailable: UNKNOWN: unknown error (s3: SlowDown)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v2/" {
					return
				}
				if tt.name == "head" && strings.HasSuffix(r.URL.Path, "/manifests/tested") {
					w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
					fmt.Fprint(w, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`)
					return
				}
				w.Header().Set("Content-Type", tt.contentType)
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			host := strings.TrimPrefix(srv.URL, "http://")
			c := newClient(t, RegistryOptions{Retries: -1})
			_, err := c.Promote(t.Context(), []PromoteSource{{Ref: host + "/ns/a:tested"}}, PromoteOptions{To: "x"})
			if err == nil {
				t.Fatal("Promote() against a failing registry = nil")
			}
			op := "GET manifest " + host + "/ns/a:tested"
			if tt.name == "head" {
				op = ""
			}
			for _, s := range []string{"registry " + host, op, strings.ReplaceAll(tt.want, "HOST", host), "see its log"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Promote() error lacks %q:\n%v", s, err)
				}
			}
			t.Logf("%v", err)
			if KindOf(err) != KindServer {
				t.Errorf("KindOf() = %s, want server", KindOf(err))
			}
		})
	}
}

// seedWorldAuth seeds a few images into a registry that needs basic auth.
func seedWorldAuth(t *testing.T) *world {
	t.Helper()
	reg := testenv.Registry(t, testenv.WithHtpasswd("ci", "s3cret"))
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{"auths":{%q:{"username":"ci","password":"s3cret"}}}`, reg.Host)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	pusher, err := remote.NewPusher(remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		t.Fatal(err)
	}
	w := &world{reg: reg, current: hashTag(0), hashes: []string{hashTag(0), hashTag(1)}, noMoving: map[string]bool{}, multiArch: map[string]bool{}}
	for _, n := range []string{"nova-api", "keystone", "glance-api"} {
		img := Image{ImageName: reg.Host + "/tripleomaster/centos-binary-" + n + ":" + movingTag}
		w.images = append(w.images, img)
		if err := w.seedImage(t.Context(), pusher, 0, img); err != nil {
			t.Fatalf("seeding %s: %v", n, err)
		}
	}
	sort.Slice(w.images, func(i, j int) bool { return w.images[i].ImageName < w.images[j].ImageName })
	return w
}

// TestPingCache: the version check reaches a registry once per scheme; a
// 5xx is not kept.
func TestPingCache(t *testing.T) {
	var hits, conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if hits.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	p := &pingCache{next: srv.Client().Transport}
	ping := func(scheme string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, scheme+"://"+srv.Listener.Addr().String()+"/v2/", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := p.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			if resp.Request != req {
				t.Errorf("ping response's Request is not the request")
			}
		}
		return resp, err
	}
	for i, want := range []int{http.StatusServiceUnavailable, http.StatusUnauthorized, http.StatusUnauthorized, http.StatusUnauthorized} {
		resp, err := ping("http")
		if err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		if resp.StatusCode != want {
			t.Errorf("ping %d: status %d, want %d", i, resp.StatusCode, want)
		}
		if want == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != `Basic realm="test"` {
			t.Errorf("ping %d: WWW-Authenticate %q, want the registry's", i, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if got := hits.Load(); got != 2 {
		t.Errorf("registry pinged %d times, want 2 (the 503, then the kept 401)", got)
	}
	// https to a plain-HTTP server fails the same way every time: asked once.
	before := conns.Load()
	for i := 0; i < 3; i++ {
		if _, err := ping("https"); err == nil {
			t.Fatalf("https ping %d to a plain-HTTP server succeeded", i)
		}
	}
	if n := conns.Load() - before; n != 1 {
		t.Errorf("https pings opened %d connections, want 1", n)
	}
	// Other requests are not touched.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v2/x/tags/list", nil)
	for i := 0; i < 2; i++ {
		resp, err := p.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("tags/list: status %d, want 404 from the server", resp.StatusCode)
		}
	}
}
