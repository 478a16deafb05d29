package imageset

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// pinnedSet discovers w's set (per-image hashes: one image is on another
// hash, three lack the moving tag) and writes and reads back its lock
// file: the sources of a pinned promotion.
func pinnedSet(t testing.TB, w *world) []PromoteSource {
	t.Helper()
	c := newClient(t, RegistryOptions{})
	res, err := c.Discover(t.Context(), w.images, DiscoverOptions{})
	if err != nil {
		t.Fatalf("Discover() = %v", err)
	}
	if len(res.Tags) < 2 {
		t.Fatalf("Discover() tags = %v, want the set on more than one hash", res.Tags)
	}
	lock := filepath.Join(t.TempDir(), "tested.lock")
	f, err := os.Create(lock)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteDiscoverLock(f, res); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	sources, err := ReadLock(lock)
	if err != nil {
		t.Fatalf("ReadLock(discover's lock) = %v", err)
	}
	if len(sources) != len(res.Resolved) {
		t.Fatalf("ReadLock() = %d sources, want %d", len(sources), len(res.Resolved))
	}
	return sources
}

// targetDigests reads every source's target tag back: target -> digest
// ("" if absent).
func targetDigests(t testing.TB, sources []PromoteSource, to string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, s := range sources {
		ref, err := name.NewTag(s.Ref)
		if err != nil {
			t.Fatal(err)
		}
		tgt := ref.Context().Tag(to)
		d, err := remote.Head(tgt, remote.WithContext(t.Context()))
		switch {
		case isNotFound(err):
			out[tgt.String()] = ""
		case err != nil && strings.Contains(err.Error(), "500"):
			// A registry killed while writing a tag can leave it unreadable.
			_, gerr := remote.Get(tgt, remote.WithContext(t.Context()))
			t.Logf("%s is unreadable: %v", tgt, gerr)
			out[tgt.String()] = "unreadable"
		case err != nil:
			t.Fatalf("HEAD %s: %v", tgt, err)
		default:
			out[tgt.String()] = d.Digest.String()
		}
	}
	return out
}

// planned is target -> the digest a pinned promotion gives it.
func planned(sources []PromoteSource, to string) map[string]string {
	out := map[string]string{}
	for _, s := range sources {
		repo, _ := splitTag(s.Ref)
		out[repo+":"+to] = s.Digest
	}
	return out
}

// putLog records the manifest PUTs the registry answered with 2xx.
type putLog struct {
	mu       sync.Mutex
	answered map[string]int // path -> count
	sent     map[string]int
}

func newPutLog() *putLog { return &putLog{answered: map[string]int{}, sent: map[string]int{}} }

func (l *putLog) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		isPut := req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/manifests/")
		if isPut {
			l.mu.Lock()
			l.sent[req.URL.Path]++
			l.mu.Unlock()
		}
		resp, err := next.RoundTrip(req)
		if isPut && err == nil && resp.StatusCode/100 == 2 {
			l.mu.Lock()
			l.answered[req.URL.Path]++
			l.mu.Unlock()
		}
		return resp, err
	})
}

// TestPromoteFaults stops the registry in the middle of a pinned promotion
// of ≥90 images (during the check, during the puts, and between a PUT
// reaching the registry and its answer reaching promote), starts it again,
// and promotes again: every target ends at its planned digest, no target
// whose PUT was answered is written twice, and what each run reports is
// what the registry has.
//
// The same registry then serves [testPromoteCLI].
func TestPromoteFaults(t *testing.T) {
	// Each part gets a registry of its own: a registry killed while it
	// rewrites a manifest's revision link (distribution's filesystem driver
	// does not write it atomically) can leave other tags of that digest
	// answering 500, which is the registry's damage, not promote's.
	t.Run("registry stopped", func(t *testing.T) { testPromoteRegistryStopped(t, seedWorld(t, 12)) })
	t.Run("cli", func(t *testing.T) { testPromoteCLI(t, seedWorld(t, 12)) })
}

func testPromoteRegistryStopped(t *testing.T, w *world) {
	sources := pinnedSet(t, w)
	if len(sources) < 90 {
		t.Fatalf("pinned set has %d images, want ≥ 90", len(sources))
	}

	type fault struct {
		name string
		// stopOn says whether to stop the registry before sending req (the
		// nth of its kind); stopAfter stops it after req was answered and
		// drops the answer.
		stopOn, stopAfter func(req *http.Request, n int64) bool
		wantJournal       bool
	}
	isHeadTarget := func(to string) func(req *http.Request, n int64) bool {
		return func(req *http.Request, n int64) bool {
			return req.Method == http.MethodHead && strings.HasSuffix(req.URL.Path, "/manifests/"+to) && n == 60
		}
	}
	isPut := func(at int64) func(req *http.Request, n int64) bool {
		return func(req *http.Request, n int64) bool {
			return req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/manifests/") && n == at
		}
	}
	for i, f := range []fault{
		{name: "during check", wantJournal: false},
		{name: "during puts", stopOn: isPut(40), wantJournal: true},
		{name: "during verify", stopAfter: isPut(70), wantJournal: true},
		{name: "during puts over existing tags", stopOn: isPut(50), wantJournal: true},
	} {
		t.Run(f.name, func(t *testing.T) {
			to := fmt.Sprintf("fault-%d", i)
			if f.name == "during puts over existing tags" {
				to = passedTag
			}
			if f.name == "during check" {
				f.stopOn = isHeadTarget(to)
			}
			before := targetDigests(t, sources, to)
			want := planned(sources, to)
			journal := filepath.Join(t.TempDir(), "promote.journal")

			first := newPutLog()
			var counts sync.Map // kind -> *atomic.Int64
			count := func(req *http.Request) int64 {
				v, _ := counts.LoadOrStore(req.Method, new(atomic.Int64))
				return v.(*atomic.Int64).Add(1)
			}
			var stopped atomic.Bool
			stop := func() {
				if stopped.CompareAndSwap(false, true) {
					w.reg.Stop()
				}
			}
			c := newClient(t, RegistryOptions{Retries: 1, WrapTransport: func(next http.RoundTripper) http.RoundTripper {
				return first.wrap(roundTripFunc(func(req *http.Request) (*http.Response, error) {
					n := count(req)
					if f.stopOn != nil && f.stopOn(req, n) {
						stop()
					}
					resp, err := next.RoundTrip(req)
					if f.stopAfter != nil && f.stopAfter(req, n) && err == nil {
						resp.Body.Close()
						stop()
						return nil, fmt.Errorf("connection lost after the registry answered: %w", errInjected)
					}
					return resp, err
				}))
			}})
			res, err := c.Promote(t.Context(), sources, PromoteOptions{To: to, Journal: journal})
			if err == nil {
				t.Fatalf("Promote() with the registry stopped = nil error")
			}
			if !stopped.Load() {
				t.Fatalf("the registry was never stopped: the fault point was not reached")
			}
			_, statErr := os.Stat(journal)
			if gotJournal := statErr == nil; gotJournal != f.wantJournal {
				t.Fatalf("journal exists: %v, want %v (err %v)", gotJournal, f.wantJournal, err)
			}
			var perr *PromoteError
			if f.wantJournal {
				if !errors.As(err, &perr) {
					t.Fatalf("Promote() = %v, want a *PromoteError", err)
				}
				if len(err.Error()) > 2000 {
					t.Errorf("Promote() error is %d bytes, want a short summary:\n%s", len(err.Error()), err)
				}
				for _, s := range []string{"promotion incomplete", "first: ", "by kind: ", "network", perr.ErrorsFile, journal} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("Promote() error lacks %q:\n%s", s, err)
					}
				}
			} else if !strings.Contains(err.Error(), "nothing was changed") || !strings.Contains(err.Error(), w.reg.Host) {
				t.Errorf("Promote() = %v, want it to say nothing changed and name the registry", err)
			}

			if err := w.reg.Start(); err != nil {
				t.Fatalf("restarting the registry: %v", err)
			}
			after := targetDigests(t, sources, to)
			// Honest: what the first run reports done is what the registry
			// has, and every PUT it reports done was answered.
			if res != nil {
				for _, s := range res.Steps {
					if s.State == StateDone && after[s.Target] != s.Digest {
						t.Errorf("first run reports %s done, but it has %q, want %s", s.Target, after[s.Target], s.Digest)
					}
					if s.State == StatePending && s.Error == "" {
						t.Errorf("first run reports %s pending with no error", s.Target)
					}
				}
				if perr != nil && perr.Pending != res.Count(StatePending) {
					t.Errorf("PromoteError.Pending = %d, steps pending %d", perr.Pending, res.Count(StatePending))
				}
			} else {
				if diff := cmp.Diff(before, after); diff != "" {
					t.Errorf("a failed check changed targets (-before +after):\n%s", diff)
				}
			}

			second := newPutLog()
			c = newClient(t, RegistryOptions{WrapTransport: second.wrap})
			res, err = c.Promote(t.Context(), sources, PromoteOptions{To: to, Journal: journal})
			if err != nil {
				t.Fatalf("Promote() after the restart = %v", err)
			}
			if diff := cmp.Diff(want, targetDigests(t, sources, to)); diff != "" {
				t.Errorf("targets after the second run (-planned +got):\n%s", diff)
			}
			for path := range second.sent {
				if first.answered[path] > 0 {
					t.Errorf("PUT %s sent again, but the first run's was answered", path)
				}
			}
			// No target that was right when the second run began (its
			// first PUT answered, or stored with the answer lost) is
			// written again.
			for path := range second.sent {
				target := w.reg.Host + "/" + strings.TrimPrefix(strings.Replace(path, "/manifests/", ":", 1), "/v2/")
				if after[target] == want[target] {
					t.Errorf("PUT %s sent again, though the target was right", path)
				}
			}
			lost := 0
			for path := range first.sent {
				target := w.reg.Host + "/" + strings.TrimPrefix(strings.Replace(path, "/manifests/", ":", 1), "/v2/")
				if first.answered[path] == 0 && after[target] == want[target] {
					lost++
				}
			}
			t.Logf("first run: %d PUTs sent, %d answered; second run: %d PUTs; %d stored with the answer lost", len(first.sent), len(first.answered), len(second.sent), lost)
			if f.stopAfter != nil && lost == 0 {
				t.Errorf("no PUT was stored with its answer lost; the fault was not injected")
			}
			if f.wantJournal && !res.Resumed {
				t.Errorf("second run did not resume the journal")
			}
			if got := res.Count(StateDone) + res.Count(StateAlready); got != len(sources) {
				t.Errorf("second run: %d done or already, want %d", got, len(sources))
			}
			if _, err := os.Stat(journal); !os.IsNotExist(err) {
				t.Errorf("journal after the second run: %v, want it removed", err)
			}
		})
	}

	// An interrupted promotion over existing tags is undone by a rollback.
	t.Run("rollback after the registry stopped", func(t *testing.T) {
		to := "rollback-me"
		// The targets exist first, at another hash.
		c := newClient(t, RegistryOptions{})
		if _, err := c.Promote(t.Context(), SourcesFromImages(w.images, w.hashes[0]), PromoteOptions{To: to}); err != nil {
			t.Fatal(err)
		}
		before := targetDigests(t, sources, to)
		journal := filepath.Join(t.TempDir(), "promote.journal")
		var puts atomic.Int64
		c = newClient(t, RegistryOptions{Retries: 1, WrapTransport: func(next http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(req *http.Request) (*http.Response, error) {
				if req.Method == http.MethodPut && puts.Add(1) == 45 {
					w.reg.Stop()
				}
				return next.RoundTrip(req)
			})
		}})
		if _, err := c.Promote(t.Context(), sources, PromoteOptions{To: to, Journal: journal}); err == nil {
			t.Fatal("Promote() with the registry stopped = nil error")
		}
		if err := w.reg.Start(); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before, targetDigests(t, sources, to)); diff == "" {
			t.Fatal("nothing changed before the stop; the test needs a half-done promotion")
		}
		res, err := newClient(t, RegistryOptions{}).RollbackJournal(t.Context(), journal)
		if err != nil {
			t.Fatalf("RollbackJournal() = %v", err)
		}
		if len(res.Restored) == 0 || len(res.Unremovable) != 0 {
			t.Errorf("RollbackJournal() = %+v, want restored targets and nothing unremovable", res)
		}
		if diff := cmp.Diff(before, targetDigests(t, sources, to)); diff != "" {
			t.Errorf("after rollback (-before +after):\n%s", diff)
		}
	})
}

// TestPromoteJournalMismatch: a journal of another promotion is not
// applied to this one.
func TestPromoteJournalMismatch(t *testing.T) {
	dir := t.TempDir()
	journal := filepath.Join(dir, "promote.journal")
	j := &Journal{Operation: "promote to x", Entries: []JournalEntry{{Source: "127.0.0.1:1/a@sha256:" + strings.Repeat("0", 64), Target: "127.0.0.1:1/a:x", Digest: "sha256:" + strings.Repeat("0", 64)}}}
	if err := WriteJournal(journal, j); err != nil {
		t.Fatal(err)
	}
	if err := WriteJournal(journal, j); err == nil {
		t.Errorf("WriteJournal() over an existing journal = nil, want an error")
	}
	c := newClient(t, RegistryOptions{})
	_, err := c.Promote(t.Context(), []PromoteSource{{Ref: "127.0.0.1:1/b:y"}}, PromoteOptions{To: "x", Journal: journal})
	if !errors.Is(err, ErrJournalMismatch) {
		t.Errorf("Promote() with another promotion's journal = %v, want ErrJournalMismatch", err)
	}
	_, err = c.Promote(t.Context(), []PromoteSource{{Ref: "127.0.0.1:1/a:y", Digest: "sha256:" + strings.Repeat("1", 64)}}, PromoteOptions{To: "x", Journal: journal})
	if !errors.Is(err, ErrJournalMismatch) {
		t.Errorf("Promote() pinned elsewhere than the journal = %v, want ErrJournalMismatch", err)
	}
	if err := os.WriteFile(journal, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJournal(journal); err == nil || !strings.Contains(err.Error(), journal) {
		t.Errorf("ReadJournal(corrupt) = %v, want an error naming the file", err)
	}
	if _, err := ReadJournal(filepath.Join(dir, "none")); !errors.Is(err, ErrNoJournal) {
		t.Errorf("ReadJournal(missing) = %v, want ErrNoJournal", err)
	}
}

func TestReadLock(t *testing.T) {
	digest := "sha256:" + strings.Repeat("a", 64)
	for _, tt := range []struct {
		name, body, wantErr string
	}{
		{"ok", "images:\n  reg:5000/ns/b:t1: " + digest + "\n  reg:5000/ns/a:t2: " + digest + "\n", ""},
		{"unknown key", "images: {}\nextra: 1\n", ":2: unknown key \"extra\""},
		{"bad digest", "images:\n  reg:5000/ns/a:t: sha256:nothex\n", ":2: digest of reg:5000/ns/a:t"},
		{"bad image", "images:\n  'UPPER/x:t': " + digest + "\n", ":2: image \"UPPER/x:t\""},
		{"repository twice", "images:\n  reg/ns/a:t1: " + digest + "\n  reg/ns/a:t2: " + digest + "\n", ":3: repository reg/ns/a is already pinned on line 2"},
		{"empty", "images: {}\n", "no images"},
		{"not a mapping", "- a\n", "want a mapping"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.lock")
			if err := os.WriteFile(path, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := ReadLock(path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ReadLock() = %v", err)
				}
				refs := []string{got[0].Ref, got[1].Ref}
				if !slices.IsSorted(refs) || got[0].Digest != digest {
					t.Errorf("ReadLock() = %+v, want sorted and pinned", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
				t.Errorf("ReadLock() = %v, want an error naming %s and %q", err, path, tt.wantErr)
			}
		})
	}
}
