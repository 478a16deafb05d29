// Package gitsynctest is gitsync's conformance suite: the scenarios a sync
// must get right, written once and run against every runner — the pod side
// run on this machine (package gitsync's tests) and a real pod over exec
// (the e2e tests). The destination is read back through the runner itself
// (gittest.ManifestScript), so a scenario does not know where it runs.
package gitsynctest

import (
	"bytes"
	"errors"
	"path"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubepool/kubepool/internal/gitsync"
	"github.com/kubepool/kubepool/internal/gitsync/gittest"
	"github.com/kubepool/kubepool/internal/podexec"
)

// Env is where the suite syncs to.
type Env struct {
	// Runner runs the pod side; Target is the container it runs in.
	Runner gitsync.Runner
	Target podexec.Target
	// Dest returns a fresh, empty workspace root in the target for one
	// scenario (absolute).
	Dest func(t *testing.T) string
	// Adjust, if set, changes each Syncer before use (exec protocol,
	// parallelism).
	Adjust func(*gitsync.Syncer)
}

// Run runs every scenario against env, each as a subtest.
func Run(t *testing.T, env Env) {
	for _, sc := range []struct {
		name string
		run  func(t *testing.T, env Env)
	}{
		{"IncrementalSync", incrementalSync},
		{"RefsFollowSource", refsFollowSource},
		{"DirtyTree", dirtyTree},
	} {
		t.Run(sc.name, func(t *testing.T) { sc.run(t, env) })
	}
}

// workspace is a source workspace and a syncer into a fresh destination.
type workspace struct {
	env   Env
	src   string
	dest  string
	paths []string
	repos []gitsync.Repo
	s     *gitsync.Syncer
}

func newWorkspace(t *testing.T, env Env) *workspace {
	t.Helper()
	w := &workspace{env: env, src: t.TempDir(), dest: env.Dest(t)}
	w.paths = gittest.Workspace(t, w.src)
	repos, err := gitsync.FindRepos(w.src)
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != len(w.paths) {
		t.Fatalf("FindRepos(%s) found %d repos, want %d", w.src, len(repos), len(w.paths))
	}
	w.repos = repos
	w.s = &gitsync.Syncer{Exec: env.Runner, Target: env.Target, Dest: w.dest, Parallel: 2}
	if env.Adjust != nil {
		env.Adjust(w.s)
	}
	return w
}

// shell runs script (sh -c, "$1" is dir) in the target.
func (w *workspace) shell(t *testing.T, script, dir string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := []string{"sh", "-c", script, "sh", dir}
	if err := w.env.Runner.Run(t.Context(), w.env.Target, cmd, podexec.Options{Stdout: &out}); err != nil {
		t.Fatalf("running %.40q in %s: %v", script, w.env.Target, err)
	}
	return out.String()
}

// destRepo is the path of repo p in the target.
func (w *workspace) destRepo(p string) string { return path.Join(w.dest, p) }

// compare fails unless every repo in the target is its source: refs, HEAD,
// index, a clean status and the working tree.
func (w *workspace) compare(t *testing.T) {
	t.Helper()
	for _, p := range w.paths {
		want := gittest.Manifest(t, filepath.Join(w.src, p))
		got := w.shell(t, gittest.ManifestScript, w.destRepo(p))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("repo %s in %s differs from the source (-want +got):\n%s", p, w.env.Target, diff)
		}
	}
}

func (w *workspace) sync(t *testing.T, what string) *gitsync.Result {
	t.Helper()
	res, err := w.s.Sync(t.Context(), w.repos)
	if err != nil {
		t.Fatalf("%s: Sync = %v", what, err)
	}
	return res
}

func resultOf(t *testing.T, res *gitsync.Result, p string) gitsync.RepoResult {
	t.Helper()
	for _, rr := range res.Repos {
		if rr.Path == p {
			return rr
		}
	}
	t.Fatalf("no result for %s in %+v", p, res)
	return gitsync.RepoResult{}
}

// incrementalSync: a first sync sends objects and ends exact; a sync
// without changes sends nothing; after one commit only its three objects
// travel.
func incrementalSync(t *testing.T, env Env) {
	w := newWorkspace(t, env)
	res := w.sync(t, "first sync")
	w.compare(t)
	for _, rr := range res.Repos {
		if rr.UpToDate || rr.Objects == 0 || rr.State != gitsync.StateVerified {
			t.Errorf("first sync of %s = %+v, want objects sent and verified", rr.Path, rr)
		}
	}
	res = w.sync(t, "sync without changes")
	for _, rr := range res.Repos {
		if !rr.UpToDate || rr.Bytes != 0 {
			t.Errorf("sync without changes of %s = %+v, want up to date, nothing sent", rr.Path, rr)
		}
	}
	gittest.Commit(t, filepath.Join(w.src, w.paths[0]), "one more", map[string]string{"README": "app, changed\n"})
	res = w.sync(t, "sync after one commit")
	w.compare(t)
	for _, rr := range res.Repos {
		switch {
		case rr.Path == w.paths[0] && rr.Objects != 3:
			t.Errorf("sync after one commit sent %d objects for %s, want 3", rr.Objects, rr.Path)
		case rr.Path != w.paths[0] && !rr.UpToDate:
			t.Errorf("sync after one commit in %s touched %s: %+v", w.paths[0], rr.Path, rr)
		}
	}
}

// refsFollowSource: refs deleted in the source, HEAD detached, a stray
// file in the destination's tree: after a sync the destination is the
// source again.
func refsFollowSource(t *testing.T, env Env) {
	w := newWorkspace(t, env)
	w.sync(t, "first sync")
	app := filepath.Join(w.src, w.paths[0])
	gittest.Git(t, app, "tag", "-d", "v1.0")
	gittest.Git(t, app, "branch", "-D", "feature")
	gittest.Git(t, app, "checkout", "-q", "--detach", "HEAD~1")
	w.shell(t, `printf 'left behind\n' > "$1/stray.txt"`, w.destRepo(w.paths[0]))
	w.sync(t, "sync after deleting refs")
	w.compare(t)
}

// dirtyTree: a working tree changed in the destination fails a NoClean
// sync and Check, changing nothing; a sync resets and cleans it without
// sending anything.
func dirtyTree(t *testing.T, env Env) {
	w := newWorkspace(t, env)
	w.sync(t, "first sync")
	dest := w.destRepo(w.paths[0])
	w.shell(t, `printf 'edited\n' > "$1/README" && printf 'added\n' > "$1/new.txt"`, dest)

	w.s.NoClean = true
	res, err := w.s.Sync(t.Context(), w.repos)
	if _, ok := errors.AsType[*gitsync.DirtyError](err); !ok {
		t.Fatalf("NoClean sync over a dirty tree = %v, want a *DirtyError", err)
	}
	if rr := resultOf(t, res, w.paths[0]); rr.State != gitsync.StateDirty {
		t.Errorf("state of the dirty repo = %q, want %q", rr.State, gitsync.StateDirty)
	}
	if got := w.shell(t, `cat "$1/README"`, dest); got != "edited\n" {
		t.Errorf("README after a NoClean sync = %q, want the edit kept", got)
	}
	if _, err := w.s.Check(t.Context(), w.repos); !errors.As(err, new(*gitsync.CheckError)) {
		t.Errorf("Check over a dirty tree = %v, want a *CheckError", err)
	}

	w.s.NoClean = false
	res = w.sync(t, "sync over a dirty tree")
	if rr := resultOf(t, res, w.paths[0]); !rr.Cleaned || rr.State != gitsync.StateVerified || rr.Bytes != 0 {
		t.Errorf("sync over a dirty tree: %+v, want cleaned, verified, nothing sent", rr)
	}
	w.compare(t)
	if _, err := w.s.Check(t.Context(), w.repos); err != nil {
		t.Errorf("Check after the sync = %v", err)
	}
}
