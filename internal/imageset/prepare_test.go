package imageset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubepool/kubepool/internal/testenv"
)

const prepareTemplate = "testdata/prepare/set.yaml.j2"

// seedPrepare starts a source registry holding the images of
// testdata/prepare/set.yaml.j2 under tripleo/...:t1 (the first one an
// index of two platforms) and returns the Source that copies them to dst.
func seedPrepare(t *testing.T, dst string) (*testenv.RegistryServer, Source) {
	t.Helper()
	src := testenv.Registry(t)
	set := Params{"namespace": src.Host + "/tripleo", "name_prefix": "centos-binary-", "tag": "t1"}
	images, err := Source{Template: prepareTemplate, Defaults: "train", Set: set}.Load()
	if err != nil {
		t.Fatal(err)
	}
	for i, img := range images {
		ref, err := name.NewTag(img.ImageName)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			idx, err := random.Index(4096, 2, 2)
			if err != nil {
				t.Fatal(err)
			}
			err = remote.WriteIndex(ref, idx, remote.WithContext(t.Context()))
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		rimg, err := random.Image(64<<10, 3)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, rimg, remote.WithContext(t.Context())); err != nil {
			t.Fatal(err)
		}
	}
	env := writeEnv(t, fmt.Sprintf("parameter_defaults:\n  ContainerImagePrepare:\n  - push_destination: %s\n    set: {namespace: %s/tripleo, tag: t1}\n", dst, src.Host))
	return src, Source{Template: prepareTemplate, Defaults: "train", EnvFiles: []string{env}}
}

// destDigests returns target → digest for what the destination holds
// (missing targets are left out).
func destDigests(t *testing.T, p *Prepared) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, u := range p.Uploads {
		ref, err := name.NewTag(u.Target)
		if err != nil {
			t.Fatal(err)
		}
		d, err := remote.Head(ref, remote.WithContext(t.Context()))
		if err != nil {
			continue
		}
		out[u.Target] = d.Digest.String()
	}
	return out
}

func TestPrepareCopy(t *testing.T) {
	dst := testenv.Registry(t)
	_, s := seedPrepare(t, dst.Host)
	p := prepare(t, s)
	if len(p.Uploads) != 8 {
		t.Fatalf("Uploads = %d, want 8", len(p.Uploads))
	}
	c := newClient(t, RegistryOptions{})
	steps, err := c.Copy(t.Context(), p.Uploads, CopyOptions{})
	if err != nil {
		t.Fatalf("Copy() = %v", err)
	}
	got := destDigests(t, p)
	for _, st := range steps {
		if got[st.Target] != st.Digest || st.Action != ActionCreate {
			t.Errorf("%s: destination has %q (%s), want %s", st.Target, got[st.Target], st.Action, st.Digest)
		}
	}
	// The env file points at the destination, which is insecure (plain HTTP).
	if want := dst.Host + "/tripleo/centos-binary-api:t1"; p.Env["ContainerApiImage"] != want {
		t.Errorf("ContainerApiImage = %v, want %s", p.Env["ContainerApiImage"], want)
	}
	if ins, _ := p.Env["DockerInsecureRegistryAddress"].([]string); len(ins) != 1 || ins[0] != dst.Host {
		t.Errorf("DockerInsecureRegistryAddress = %v, want [%s]", p.Env["DockerInsecureRegistryAddress"], dst.Host)
	}
	// Again: nothing to send.
	c2 := newClient(t, RegistryOptions{})
	steps, err = c2.Copy(t.Context(), p.Uploads, CopyOptions{})
	if err != nil {
		t.Fatalf("second Copy() = %v", err)
	}
	for _, st := range steps {
		if st.Action != ActionUnchanged {
			t.Errorf("second Copy(): %s is %s, want unchanged", st.Target, st.Action)
		}
	}
	if s := c2.Stats(); s.BlobUploads != 0 || s.ManifestPuts != 0 {
		t.Errorf("second Copy() sent %d blob requests and %d manifests, want none", s.BlobUploads, s.ManifestPuts)
	}
}

// TestPrepareThrottled: a registry answering 429 to every third request
// still gets the whole set, and the backoff is measured. The 429s are made
// up in front of the real registries (they cannot be made to throttle):
// every third request, except inside a blob upload session, whose PATCH and
// PUT cannot be retried alone (their body is spent) — there the first PUT
// of each blob is answered 429 instead, which makes Copy start that image
// again. (Counting those too would put every upload's PUT on a multiple of
// three, for ever: an upload is six requests.)
func TestPrepareThrottled(t *testing.T) {
	dst := testenv.Registry(t)
	_, s := seedPrepare(t, dst.Host)
	p := prepare(t, s)
	meter := &BackoffMeter{}
	var (
		n          atomic.Int64
		mu         sync.Mutex
		throttledP = map[string]bool{}
	)
	tooMany := func(req *http.Request) *http.Response {
		if req.Body != nil {
			req.Body.Close()
		}
		return &http.Response{StatusCode: http.StatusTooManyRequests, Status: "429 Too Many Requests",
			Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: req}
	}
	throttle := func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			inUpload := strings.Contains(req.URL.Path, "/blobs/uploads/") && req.Method != http.MethodPost
			if inUpload {
				if d := req.URL.Query().Get("digest"); req.Method == http.MethodPut && d != "" {
					mu.Lock()
					first := !throttledP[d]
					throttledP[d] = true
					mu.Unlock()
					if first {
						return tooMany(req), nil
					}
				}
				return next.RoundTrip(req)
			}
			if n.Add(1)%3 == 0 {
				return tooMany(req), nil
			}
			return next.RoundTrip(req)
		})
	}
	c := newClient(t, RegistryOptions{WrapTransport: func(rt http.RoundTripper) http.RoundTripper { return meter.Wrap(throttle(rt)) }})
	if _, err := c.Copy(t.Context(), p.Uploads, CopyOptions{OnBackoff: meter.Add}); err != nil {
		t.Fatalf("Copy() = %v", err)
	}
	if got := destDigests(t, p); len(got) != len(p.Uploads) {
		t.Errorf("destination holds %d of %d images", len(got), len(p.Uploads))
	}
	answers, waited := meter.Throttled()
	if answers == 0 || waited <= 0 {
		t.Errorf("Throttled() = %d answers, %v waited; want both > 0", answers, waited)
	}
	t.Logf("429 answers: %d, backing off: %v", answers, waited)
}

// TestPrepareKilled: `kubepool images prepare` killed (SIGKILL) half way
// through the blobs leaves no tag at the destination, and killed half way
// through the tags leaves its journal; either way, run again, it
// completes from the journal (which is then removed), and no blob is
// uploaded twice over the two runs.
func TestPrepareKilled(t *testing.T) {
	for _, tt := range []struct {
		name string
		// at says whether a finished request is the one to kill at.
		at       func(r *http.Request, blobs, tags int) bool
		wantTags bool // some tags are there after the kill
	}{
		{"third blob", func(r *http.Request, blobs, _ int) bool { return blobs == 3 }, false},
		{"second tag", func(r *http.Request, _, tags int) bool { return tags == 2 }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			testPrepareKilled(t, tt.at, tt.wantTags)
		})
	}
}

func testPrepareKilled(t *testing.T, at func(r *http.Request, blobs, tags int) bool, wantTags bool) {
	dst := testenv.Registry(t)
	bin := kubepoolBinary(t)
	// A proxy in front of the destination counts finished blob uploads
	// per digest and tag puts, and kills the running prepare when at says.
	target, _ := url.Parse(dst.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	var (
		mu          sync.Mutex
		uploads     = map[string]int{}
		blobs, tags int
		kill        func()
	)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &statusWriter{ResponseWriter: w}
		rp.ServeHTTP(rw, r)
		if r.Method != http.MethodPut || rw.status != http.StatusCreated {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.Contains(r.URL.Path, "/blobs/uploads/"):
			uploads[r.URL.Query().Get("digest")]++
			blobs++
		case strings.Contains(r.URL.Path, "/manifests/") && !strings.Contains(r.URL.Path, "/manifests/sha256:"):
			tags++
		default:
			return
		}
		if kill != nil && at(r, blobs, tags) {
			kill()
		}
	}))
	t.Cleanup(proxy.Close)
	dstHost := strings.TrimPrefix(proxy.URL, "http://")
	_, s := seedPrepare(t, dstHost)
	p := prepare(t, s)

	dir := t.TempDir()
	journal := filepath.Join(dir, "prepare.journal")
	args := []string{"images", "prepare", "-t", s.Template, "--defaults", "train", "-e", s.EnvFiles[0], "--jobs", "1", "--output-env-file", filepath.Join(dir, "env.yaml")}
	cmd := exec.CommandContext(t.Context(), bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	kill = func() { _ = cmd.Process.Kill() }
	mu.Unlock()
	err := cmd.Wait()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("first prepare ended with %v, want killed", err)
	}
	mu.Lock()
	kill = nil
	mu.Unlock()
	if got := destDigests(t, p); (len(got) != 0) != wantTags || len(got) == len(p.Uploads) {
		t.Errorf("after the kill the destination has %d of %d tags, want some: %v", len(got), len(p.Uploads), wantTags)
	}
	if _, err := os.Stat(journal); err != nil {
		t.Errorf("after the kill: %v, want the journal kept", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("second prepare: %v\n%s", err, out)
	}
	if got := destDigests(t, p); len(got) != len(p.Uploads) {
		t.Errorf("after the rerun the destination holds %d of %d images", len(got), len(p.Uploads))
	}
	if _, err := os.Stat(journal); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after the rerun the journal is still there (%v)", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for d, n := range uploads {
		if n > 1 {
			t.Errorf("blob %s uploaded %d times", d, n)
		}
	}
	if tags < len(p.Uploads) {
		t.Errorf("%d tag puts in all, want at least %d", tags, len(p.Uploads))
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
