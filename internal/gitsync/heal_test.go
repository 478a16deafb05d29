package gitsync_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/gitsync"
	"github.com/kubepool/kubepool/internal/gitsync/gittest"
)

// syncedWorkspace makes a workspace, syncs it into a local destination
// and returns the source, the destination, the repos and their paths.
func syncedWorkspace(t *testing.T) (src, dest string, repos []gitsync.Repo, paths []string) {
	t.Helper()
	src, dest = t.TempDir(), t.TempDir()
	paths = gittest.Workspace(t, src)
	repos, err := gitsync.FindRepos(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := syncer(&localRunner{}, dest).Sync(t.Context(), repos); err != nil {
		t.Fatalf("first Sync = %v", err)
	}
	return src, dest, repos, paths
}

func resultOf(t *testing.T, res *gitsync.Result, path string) gitsync.RepoResult {
	t.Helper()
	for _, rr := range res.Repos {
		if rr.Path == path {
			return rr
		}
	}
	t.Fatalf("no result for %s in %+v", path, res)
	return gitsync.RepoResult{}
}

// A tree changed in the destination (a file edited, one deleted, one
// added, one ignored) makes a no-change sync reset and clean it; with
// NoClean, the sync fails that repo with a *DirtyError and leaves it.
func TestSyncDirtyTree(t *testing.T) {
	src, dest, repos, paths := syncedWorkspace(t)
	app := filepath.Join(dest, paths[0])
	dirty := func() {
		gittest.Write(t, app, map[string]string{"README": "edited\n", "new.txt": "added\n", "x.o": "ignored\n"})
		if err := os.Remove(filepath.Join(app, "docs/guide.md")); err != nil {
			t.Fatal(err)
		}
	}

	dirty()
	s := syncer(&localRunner{}, dest)
	s.NoClean = true
	res, err := s.Sync(t.Context(), repos)
	var de *gitsync.DirtyError
	if !errors.As(err, &de) || de.Path != paths[0] {
		t.Fatalf("Sync with NoClean over a dirty tree = %v, want a *DirtyError for %s", err, paths[0])
	}
	if rr := resultOf(t, res, paths[0]); rr.State != gitsync.StateDirty {
		t.Errorf("state of the dirty repo = %q, want %q", rr.State, gitsync.StateDirty)
	}
	if b, err := os.ReadFile(filepath.Join(app, "README")); err != nil || string(b) != "edited\n" {
		t.Errorf("README after a NoClean sync = %q, %v; want the edit kept", b, err)
	}
	if _, err := s.Check(t.Context(), repos); !errors.As(err, new(*gitsync.CheckError)) {
		t.Errorf("Check over a dirty tree = %v, want a *CheckError", err)
	}

	s.NoClean = false
	res, err = s.Sync(t.Context(), repos)
	if err != nil {
		t.Fatalf("Sync over a dirty tree = %v", err)
	}
	if rr := resultOf(t, res, paths[0]); !rr.Cleaned || rr.UpToDate || rr.State != gitsync.StateVerified || rr.Bytes != 0 {
		t.Errorf("Sync over a dirty tree: %+v, want cleaned, verified, nothing sent", rr)
	}
	compareWorkspaces(t, src, dest, paths)
	if _, err := s.Check(t.Context(), repos); err != nil {
		t.Errorf("Check after the sync = %v", err)
	}
}

// A checkout killed half way (its index.lock left, files missing, the
// sync marker gone) is healed by the next sync, with no manual step; a
// lock that a live kubepool checkout holds, or one kubepool did not take,
// is left alone.
func TestSyncHealsKilledCheckout(t *testing.T) {
	src, dest, repos, paths := syncedWorkspace(t)
	app := filepath.Join(dest, paths[0])
	// The shell of a kubepool checkout that is gone: a process that ran
	// and was reaped.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	gittest.Write(t, app, map[string]string{
		".git/index.lock":        "",
		".git/kubepool-checkout": strconv.Itoa(dead.Process.Pid) + "\n",
	})
	for _, f := range []string{".git/kubepool-synced", "README", "src/main.go"} {
		if err := os.Remove(filepath.Join(app, f)); err != nil {
			t.Fatal(err)
		}
	}
	s := syncer(&localRunner{}, dest)
	res, err := s.Check(t.Context(), repos)
	if rr := resultOf(t, res, paths[0]); !errors.As(err, new(*gitsync.CheckError)) || rr.State != gitsync.StatePartial {
		t.Errorf("Check of a killed checkout = %v, %+v; want a *CheckError, state partial", err, rr)
	}
	res, err = s.Sync(t.Context(), repos)
	if err != nil {
		t.Fatalf("Sync after a killed checkout = %v", err)
	}
	if rr := resultOf(t, res, paths[0]); !rr.WasPartial || rr.State != gitsync.StateVerified {
		t.Errorf("Sync after a killed checkout: %+v, want it reported partial and verified", rr)
	}
	compareWorkspaces(t, src, dest, paths)
	if _, err := os.Stat(filepath.Join(app, ".git/index.lock")); !os.IsNotExist(err) {
		t.Errorf("index.lock after the sync: %v, want it gone", err)
	}

	// A lock without kubepool's mark is someone else's: the sync fails
	// that repo with git's own message and removes nothing.
	gittest.Write(t, app, map[string]string{".git/index.lock": ""})
	os.Remove(filepath.Join(app, ".git/kubepool-synced"))
	_, err = s.Sync(t.Context(), repos)
	var se *gitsync.ScriptError
	if !errors.As(err, &se) || !strings.Contains(se.Message, "index.lock") || strings.Contains(err.Error(), "set -eu") {
		t.Errorf("Sync over a foreign index.lock = %v, want a *ScriptError with git's message about index.lock and no script", err)
	}
	if _, err := os.Stat(filepath.Join(app, ".git/index.lock")); err != nil {
		t.Errorf("a foreign index.lock was removed: %v", err)
	}
}

// Pack files left arriving by an interrupted sync mark the repo partial
// for Check and the next Sync, which repairs it.
func TestSyncReportsPartial(t *testing.T) {
	src, dest, repos, paths := syncedWorkspace(t)
	lib := filepath.Join(dest, paths[1])
	gittest.Write(t, lib, map[string]string{".git/objects/pack/kubepool-incoming/pack-x.pack": "PACK"})
	// And a repo whose first stream never completed: only its incoming
	// files exist.
	if err := os.RemoveAll(filepath.Join(dest, paths[2])); err != nil {
		t.Fatal(err)
	}
	gittest.Write(t, filepath.Join(dest, paths[2]), map[string]string{".git/objects/pack/kubepool-incoming/kubepool-meta": "tar"})

	s := syncer(&localRunner{}, dest)
	res, err := s.Check(t.Context(), repos)
	var ce *gitsync.CheckError
	if !errors.As(err, &ce) || ce.Repos[paths[1]] != gitsync.StatePartial || ce.Repos[paths[2]] != gitsync.StatePartial || len(ce.Repos) != 2 {
		t.Fatalf("Check = %v, want %s and %s partial", err, paths[1], paths[2])
	}
	if rr := resultOf(t, res, paths[0]); rr.State != gitsync.StateVerified {
		t.Errorf("Check of an intact repo: %+v, want verified", rr)
	}
	res, err = s.Sync(t.Context(), repos)
	if err != nil {
		t.Fatalf("Sync = %v", err)
	}
	for _, p := range paths[1:] {
		if rr := resultOf(t, res, p); !rr.WasPartial || rr.State != gitsync.StateVerified {
			t.Errorf("Sync of %s: %+v, want reported partial, then verified", p, rr)
		}
	}
	compareWorkspaces(t, src, dest, paths)
	if _, err := s.Check(t.Context(), repos); err != nil {
		t.Errorf("Check after the repair = %v", err)
	}
}

// A repo with an empty .git fails alone; the others sync.
func TestSyncEmptyGitDir(t *testing.T) {
	src, dest := t.TempDir(), t.TempDir()
	paths := gittest.Workspace(t, src)
	if err := os.MkdirAll(filepath.Join(src, "src/broken/.git"), 0o755); err != nil {
		t.Fatal(err)
	}
	paths = paths[:1]
	repos, err := gitsync.FindRepos(src, paths[0], "src/broken")
	if err != nil {
		t.Fatal(err)
	}
	res, err := syncer(&localRunner{}, dest).Sync(t.Context(), repos)
	var re *gitsync.RepoError
	if !errors.As(err, &re) || re.Path != "src/broken" {
		t.Fatalf("Sync with an empty .git = %v, want a *RepoError for src/broken", err)
	}
	if rr := resultOf(t, res, "src/broken"); rr.State == gitsync.StateVerified || rr.Error == "" {
		t.Errorf("result of the broken repo: %+v", rr)
	}
	compareWorkspaces(t, src, dest, paths)
}

// A destination that cannot be created is an error naming it, with the
// pod's message, at once and without retries.
func TestSyncBadDestination(t *testing.T) {
	src := t.TempDir()
	paths := gittest.Workspace(t, src)
	repos, err := gitsync.FindRepos(src, paths[0])
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dest := range []string{file, filepath.Join(file, "sub")} {
		start := time.Now()
		_, err := syncer(&localRunner{}, dest).Sync(t.Context(), repos)
		var de *gitsync.DestError
		if !errors.As(err, &de) || de.Path != dest || de.Message == "" {
			t.Errorf("Sync into %s = %v, want a *DestError naming it with a message", dest, err)
		}
		t.Logf("%s: %v (%v)", dest, err, time.Since(start))
	}
}

// A git reset really killed half way (by a smudge filter that kills it on
// its third file, once), with no attempt left: the sync fails that repo
// in git's words, and the next one heals it.
func TestSyncKilledResetHeals(t *testing.T) {
	src, dest := t.TempDir(), t.TempDir()
	paths := gittest.Workspace(t, src)
	repos, err := gitsync.FindRepos(src, paths[0])
	if err != nil {
		t.Fatal(err)
	}
	hooks := t.TempDir()
	armed := filepath.Join(hooks, "armed")
	gittest.Write(t, hooks, map[string]string{
		"attributes": "* filter=kpkill\n",
		"smudged":    "0\n",
		"armed":      "",
	})
	smudge := filepath.Join(hooks, "smudge")
	script := "#!/bin/sh\nn=$(($(cat " + hooks + "/smudged) + 1))\necho $n >" + hooks + "/smudged\n" +
		"if [ $n -ge 3 ] && [ -f " + armed + " ]; then rm -f " + armed + "; kill -9 $PPID; exit 1; fi\nexec cat\n"
	if err := os.WriteFile(smudge, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &localRunner{env: []string{
		"GIT_CONFIG_COUNT=2",
		"GIT_CONFIG_KEY_0=core.attributesFile", "GIT_CONFIG_VALUE_0=" + filepath.Join(hooks, "attributes"),
		"GIT_CONFIG_KEY_1=filter.kpkill.smudge", "GIT_CONFIG_VALUE_1=" + smudge,
	}}
	s := syncer(r, dest)
	s.Attempts = 1
	_, err = s.Sync(t.Context(), repos)
	if _, serr := os.Stat(armed); serr == nil {
		t.Fatalf("the checkout was not killed (Sync = %v)", err)
	}
	var re *gitsync.RepoError
	if !errors.As(err, &re) || strings.Contains(err.Error(), "set -eu") {
		t.Fatalf("Sync with a killed checkout = %v, want a *RepoError without the script", err)
	}
	t.Logf("killed checkout: %v", err)
	if _, err := os.Stat(filepath.Join(dest, paths[0], ".git/index.lock")); err != nil {
		t.Fatalf("no index.lock after the killed checkout: %v", err)
	}
	r.env = nil
	res, err := s.Sync(t.Context(), repos)
	if err != nil {
		t.Fatalf("Sync after a killed checkout = %v", err)
	}
	if rr := res.Repos[0]; !rr.WasPartial || rr.State != gitsync.StateVerified {
		t.Errorf("Sync after a killed checkout: %+v, want reported partial, verified", rr)
	}
	compareWorkspaces(t, src, dest, paths[:1])
}
