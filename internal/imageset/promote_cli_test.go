package imageset

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// kubepoolBinary builds cmd/kubepool into a temporary directory.
func kubepoolBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kubepool")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/kubepool/kubepool/cmd/kubepool")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building kubepool: %v\n%s", err, out)
	}
	return bin
}

// countingProxy stands between kubepool and the registry: it records the
// manifest PUTs it forwards and which the registry answered, and can kill
// a process or cut the connection at the nth PUT.
type countingProxy struct {
	srv *httptest.Server

	mu       sync.Mutex
	sent     map[string]int
	answered map[string]int

	puts atomic.Int64
	// From the putAt-th PUT on, connections of PUTs are cut; with kill,
	// the process pid is killed (SIGKILL) first.
	putAt atomic.Int64
	kill  atomic.Bool
	pid   atomic.Int64
}

func newCountingProxy(t *testing.T, registry string) *countingProxy {
	t.Helper()
	u, err := url.Parse(registry)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{}
	p.reset(0, false)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // cut connections are the point
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		isPut := r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/")
		if isPut {
			n := p.puts.Add(1)
			if at := p.putAt.Load(); at > 0 && n >= at {
				if pid := p.pid.Load(); pid != 0 && p.kill.Load() && n == at {
					_ = syscall.Kill(int(pid), syscall.SIGKILL)
				}
				// The registry is "gone": the connection drops.
				if hj, ok := w.(http.Hijacker); ok {
					if conn, _, err := hj.Hijack(); err == nil {
						conn.Close()
						return
					}
				}
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			p.mu.Lock()
			p.sent[r.URL.Path]++
			p.mu.Unlock()
		}
		rec := &statusRecorder{ResponseWriter: w}
		rp.ServeHTTP(rec, r)
		if isPut && rec.status/100 == 2 {
			p.mu.Lock()
			p.answered[r.URL.Path]++
			p.mu.Unlock()
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// reset clears the counts; at > 0 arms the fault at the at-th PUT.
func (p *countingProxy) reset(at int64, kill bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent, p.answered = map[string]int{}, map[string]int{}
	p.puts.Store(0)
	p.putAt.Store(at)
	p.kill.Store(kill)
}

func (p *countingProxy) host() string { return strings.TrimPrefix(p.srv.URL, "http://") }

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// testPromoteCLI runs the kubepool binary: discover writes the lock of a
// set tested at per-image hashes, promote --from-lock is killed with
// SIGKILL half-way, and the same command again finishes it without
// writing a target twice; a registry that drops connections gives exit 3,
// an honest count and a short error, and a rerun finishes. Output and exit
// codes are checked at every step.
func testPromoteCLI(t *testing.T, w *world) {
	bin := kubepoolBinary(t)
	proxy := newCountingProxy(t, w.reg.URL())
	dir := t.TempDir()
	run := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), bin, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dir, "REGISTRY_AUTH_FILE=")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		proxy.pid.Store(int64(cmd.Process.Pid))
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			code = ee.ExitCode() // -1 when killed by a signal
		default:
			t.Fatalf("running kubepool %v: %v", args, err)
		}
		return out.String(), errb.String(), code
	}

	lock := filepath.Join(dir, "tested.lock")
	_, stderr, code := run("images", "discover", "-t", abs(t, "testdata/overcloud_containers.2019.yaml.j2"), "--params", abs(t, "testdata/params-2019.yaml"),
		"--set", "namespace="+proxy.host()+"/tripleomaster", "--set", "tag="+movingTag,
		"--include", "^"+regexp.QuoteMeta(proxy.host())+"/", "--lock-file", lock)
	if code != 0 {
		t.Fatalf("discover: exit %d: %s", code, stderr)
	}
	sources, err := ReadLock(lock)
	if err != nil {
		t.Fatal(err)
	}
	if len(sources) < 90 {
		t.Fatalf("discover pinned %d images, want ≥ 90", len(sources))
	}
	total := len(sources)

	promote := func(to string) []string {
		return []string{"images", "promote", "--from-lock", lock, "--to", to, "--lock-file", filepath.Join(dir, to+".lock"), "--retries", "0"}
	}
	check := func(t *testing.T, to string, answeredBefore map[string]int) {
		t.Helper()
		want := planned(sources, to)
		got := map[string]string{}
		for target, d := range targetDigests(t, sources, to) {
			got[target] = d
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("targets (-planned +got):\n%s", diff)
		}
		proxy.mu.Lock()
		defer proxy.mu.Unlock()
		for path := range proxy.sent {
			if answeredBefore[path] > 0 {
				t.Errorf("PUT %s sent again after the first run's was answered", path)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "promote-"+to+".journal")); !os.IsNotExist(err) {
			t.Errorf("journal after a complete promotion: %v, want it removed", err)
		}
		if pinned, err := ReadLock(filepath.Join(dir, to+".lock")); err != nil || len(pinned) != total {
			t.Errorf("promote --lock-file: %d images, %v; want %d", len(pinned), err, total)
		}
	}

	t.Run("kill -9", func(t *testing.T) {
		const to = "killed"
		proxy.reset(int64(total/2), true)
		stdout, stderr, code := run(promote(to)...)
		if code != -1 {
			t.Fatalf("promote was not killed: exit %d\n%s\n%s", code, stdout, stderr)
		}
		journal := filepath.Join(dir, "promote-"+to+".journal")
		if _, err := os.Stat(journal); err != nil {
			t.Fatalf("journal after kill -9: %v", err)
		}
		proxy.mu.Lock()
		first := proxy.answered
		proxy.mu.Unlock()
		if len(first) == 0 || len(first) >= total {
			t.Fatalf("first run: %d PUTs answered, want some but not all", len(first))
		}
		proxy.reset(0, false)
		stdout, stderr, code = run(promote(to)...)
		if code != 0 {
			t.Fatalf("promote again: exit %d\n%s\n%s", code, stdout, stderr)
		}
		// Already right: the PUTs answered before the kill, and any the
		// registry stored while its answer was lost with the process.
		m := regexp.MustCompile(`promoted (\d+) of (\d+): (\d+) written, (\d+) already at their digest \(resumed from the journal\)`).FindStringSubmatch(stdout)
		if m == nil {
			t.Fatalf("promote again: stdout lacks the summary:\n%s", lastLines(stdout, 3))
		}
		var n, of, written, already int
		fmt.Sscan(m[1]+" "+m[2]+" "+m[3]+" "+m[4], &n, &of, &written, &already)
		if n != total || of != total || written+already != total || already < len(first) {
			t.Errorf("promote again: %q, want %d of %d with at least %d already", m[0], total, total, len(first))
		}
		check(t, to, first)
	})

	t.Run("registry drops connections", func(t *testing.T) {
		const to = "dropped"
		proxy.reset(int64(total/2), false)
		stdout, stderr, code := run(append(promote(to), "--jobs", "1")...)
		if code != 3 {
			t.Fatalf("promote with connections dropped: exit %d, want 3\n%s\n%s", code, lastLines(stdout, 3), stderr)
		}
		proxy.mu.Lock()
		first := proxy.answered
		proxy.mu.Unlock()
		done := len(first)
		wantLine := fmt.Sprintf("promoted %d of %d; %d pending; rerun to finish (journal: %s)", done, total, total-done, filepath.Join(dir, "promote-"+to+".journal"))
		if !strings.Contains(stdout, wantLine) {
			t.Errorf("stdout lacks %q:\n%s", wantLine, lastLines(stdout, 3))
		}
		t.Logf("stdout ends:\n%s\nstderr:\n%s", lastLines(stdout, 2), stderr)
		if len(stderr) > 1500 {
			t.Errorf("stderr is %d bytes, want a short summary:\n%s", len(stderr), stderr)
		}
		for _, s := range []string{"promotion incomplete", fmt.Sprintf("%d of %d targets", done, total), "first: ", "by kind: ", "network", "every error in " + filepath.Join(dir, "promote-"+to+".journal.errors")} {
			if !strings.Contains(stderr, s) {
				t.Errorf("stderr lacks %q:\n%s", s, stderr)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, to+".lock")); !os.IsNotExist(err) {
			t.Errorf("lock file written by an incomplete promotion: %v", err)
		}
		errs, err := os.ReadFile(filepath.Join(dir, "promote-"+to+".journal.errors"))
		if err != nil || bytes.Count(errs, []byte("\n")) != total-done {
			t.Errorf("errors file: %d lines, %v; want %d", bytes.Count(errs, []byte("\n")), err, total-done)
		}
		proxy.reset(0, false)
		stdout, stderr, code = run(promote(to)...)
		if code != 0 {
			t.Fatalf("promote again: exit %d\n%s\n%s", code, stdout, stderr)
		}
		check(t, to, first)
	})

	t.Run("dry run and rollback", func(t *testing.T) {
		const to = "cli-rollback"
		proxy.reset(0, false)
		stdout, stderr, code := run(append(promote(to), "--dry-run")...)
		if code != 0 {
			t.Fatalf("promote --dry-run: exit %d\n%s", code, stderr)
		}
		wantLine := fmt.Sprintf("tag deletion on %s: unsupported: a rollback cannot remove the new tags", proxy.host())
		if !strings.Contains(stdout, fmt.Sprintf("plan (dry run): %d images, %d to create", total, total)) || !strings.Contains(stdout, wantLine) {
			t.Errorf("promote --dry-run: stdout lacks the plan or %q:\n%s", wantLine, lastLines(stdout, 3))
		}
		proxy.reset(int64(total/2), false)
		if _, stderr, code = run(append(promote(to), "--jobs", "1")...); code != 3 {
			t.Fatalf("promote with connections dropped: exit %d, want 3\n%s", code, stderr)
		}
		proxy.mu.Lock()
		written := len(proxy.answered)
		proxy.mu.Unlock()
		proxy.reset(0, false)
		stdout, stderr, code = run(append(promote(to), "--rollback")...)
		if code != 0 {
			t.Fatalf("promote --rollback: exit %d\n%s\n%s", code, stdout, stderr)
		}
		for _, s := range []string{
			fmt.Sprintf("rolled back: 0 restored, 0 new tags removed, %d unchanged, %d new tags left", total-written, written),
			"deletes manifests by digest only", "_manifests/tags/" + to,
		} {
			if !strings.Contains(stdout, s) {
				t.Errorf("promote --rollback: stdout lacks %q:\n%s", s, lastLines(stdout, 3))
			}
		}
		if got := strings.Count(stdout, "left\t"); got != written {
			t.Errorf("promote --rollback names %d tags left, want %d", got, written)
		}
		if _, err := os.Stat(filepath.Join(dir, "promote-"+to+".journal")); !os.IsNotExist(err) {
			t.Errorf("journal after rollback: %v, want it removed", err)
		}
	})
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
