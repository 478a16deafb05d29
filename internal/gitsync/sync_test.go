package gitsync_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubepool/kubepool/internal/gitsync"
	"github.com/kubepool/kubepool/internal/gitsync/gittest"
	"github.com/kubepool/kubepool/internal/podexec"
)

// localRunner runs the pod side of a sync on this machine: the same
// scripts, with the real sh and git, with a directory standing in for the
// pod. It reports a non-zero exit the way podexec does.
type localRunner struct {
	// cutAfter, when > 0, makes the next cuts runs see stdin end after
	// that many bytes and fail like a broken stream.
	cutAfter int64
	cuts     int
	// env is added to the environment of the next runs.
	env []string
}

func (l *localRunner) Run(ctx context.Context, t podexec.Target, cmd []string, o podexec.Options) error {
	c := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
	c.Env = append(gittest.Env(), l.env...)
	stdin := o.Stdin
	cut := false
	if l.cuts > 0 && stdin != nil {
		l.cuts--
		cut = true
		stdin = io.LimitReader(stdin, l.cutAfter)
	}
	c.Stdin, c.Stdout = stdin, o.Stdout
	var stderr strings.Builder
	c.Stderr = &stderr
	err := c.Run()
	if cut {
		return fmt.Errorf("cut by the test: %w", podexec.ErrStream)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &podexec.ExecError{Target: t, Command: cmd, ExitCode: ee.ExitCode(), Stderr: stderr.String()}
	}
	return err
}

var target = podexec.Target{Namespace: "local", Pod: "dir"}

func syncer(r gitsync.Runner, dest string) *gitsync.Syncer {
	return &gitsync.Syncer{Exec: r, Target: target, Dest: dest, Parallel: 2}
}

func compareWorkspaces(t *testing.T, src, dest string, paths []string) {
	t.Helper()
	for _, p := range paths {
		want := gittest.Manifest(t, filepath.Join(src, p))
		got := gittest.Manifest(t, filepath.Join(dest, p))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("repo %s in the destination differs from the source (-want +got):\n%s", p, diff)
		}
	}
}

func TestSyncLocal(t *testing.T) {
	src, dest := t.TempDir(), t.TempDir()
	paths := gittest.Workspace(t, src)
	repos, err := gitsync.FindRepos(src)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(repos); got != len(paths) {
		t.Fatalf("FindRepos(%s) found %d repos, want %d", src, got, len(paths))
	}
	s := syncer(&localRunner{}, dest)

	res, err := s.Sync(t.Context(), repos)
	if err != nil {
		t.Fatalf("first Sync = %v", err)
	}
	compareWorkspaces(t, src, dest, paths)
	for _, rr := range res.Repos {
		if rr.UpToDate || rr.Objects == 0 || rr.Attempts != 1 {
			t.Errorf("first Sync of %s = %+v, want objects sent in one attempt", rr.Path, rr)
		}
	}

	// No change: nothing sent.
	res, err = s.Sync(t.Context(), repos)
	if err != nil {
		t.Fatalf("Sync without changes = %v", err)
	}
	for _, rr := range res.Repos {
		if !rr.UpToDate || rr.Bytes != 0 {
			t.Errorf("Sync without changes of %s = %+v, want up to date", rr.Path, rr)
		}
	}

	// One new commit on the checked-out branch of one repo: only its three
	// new objects (commit, root tree, blob) travel.
	app := filepath.Join(src, paths[0])
	gittest.Commit(t, app, "one more", map[string]string{"README": "app, changed\n"})
	res, err = s.Sync(t.Context(), repos)
	if err != nil {
		t.Fatalf("Sync after one commit = %v", err)
	}
	compareWorkspaces(t, src, dest, paths)
	for _, rr := range res.Repos {
		if rr.Path == paths[0] {
			if rr.Objects != 3 {
				t.Errorf("Sync after one commit sent %d objects for %s, want 3", rr.Objects, rr.Path)
			}
		} else if !rr.UpToDate {
			t.Errorf("Sync after one commit touched %s: %+v", rr.Path, rr)
		}
	}

	// Refs deleted, HEAD moved to a detached commit, a file left behind in
	// the destination's tree: all follow the source.
	gittest.Git(t, app, "tag", "-d", "v1.0")
	gittest.Git(t, app, "branch", "-D", "feature")
	gittest.Git(t, app, "checkout", "-q", "--detach", "HEAD~1")
	gittest.Write(t, filepath.Join(dest, paths[0]), map[string]string{"stray.txt": "left behind\n"})
	if _, err := s.Sync(t.Context(), repos); err != nil {
		t.Fatalf("Sync after deleting refs = %v", err)
	}
	compareWorkspaces(t, src, dest, paths)
}

// A stream cut in the middle of a pack is retried; the final state is
// exact, and with no attempts left the error says so and the repo keeps
// its previous refs.
func TestSyncLocalCut(t *testing.T) {
	src, dest := t.TempDir(), t.TempDir()
	paths := gittest.Workspace(t, src)
	big := make([]byte, 256<<10)
	for i := range big {
		big[i] = byte(i*7 + i/251)
	}
	gittest.Commit(t, filepath.Join(src, paths[0]), "big", map[string]string{"big.bin": string(big)})
	repos, err := gitsync.FindRepos(src, paths[0])
	if err != nil {
		t.Fatal(err)
	}

	cutting := &cutPushes{localRunner: &localRunner{cutAfter: 4 << 10}, n: 1}
	s := syncer(cutting, dest)
	s.Attempts = 1
	_, err = s.Sync(t.Context(), repos)
	var re *gitsync.RepoError
	if !errors.As(err, &re) || !errors.Is(err, podexec.ErrStream) {
		t.Fatalf("Sync with a cut stream and 1 attempt = %v, want a *RepoError matching ErrStream", err)
	}
	// No refs: no repo at all (the stream was cut before it was set up),
	// or one without refs.
	if _, err := os.Stat(filepath.Join(dest, paths[0], ".git", "HEAD")); err == nil {
		if out, err := exec.Command("git", "-C", filepath.Join(dest, paths[0]), "for-each-ref").Output(); err != nil || len(out) != 0 {
			t.Errorf("refs after a cut first push = %q (%v), want none", out, err)
		}
	}

	cutting.n = 1
	s.Attempts = 3
	res, err := s.Sync(t.Context(), repos)
	if err != nil {
		t.Fatalf("Sync with one cut stream and 3 attempts = %v", err)
	}
	if got := res.Repos[0].Attempts; got != 2 {
		t.Errorf("attempts = %d, want 2", got)
	}
	compareWorkspaces(t, src, dest, paths[:1])
}

// cutPushes cuts the next n pushes (runs of the scripts that receive packs).
type cutPushes struct {
	*localRunner
	n int
}

func (c *cutPushes) Run(ctx context.Context, t podexec.Target, cmd []string, o podexec.Options) error {
	if c.n > 0 && strings.Contains(cmd[2], "update-ref --no-deref --stdin") {
		c.n--
		c.cuts = 1
	}
	return c.localRunner.Run(ctx, t, cmd, o)
}

func TestFindReposErrors(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "src/h/notrepo"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		root  string
		paths []string
		want  string
	}{
		{filepath.Join(root, "missing"), nil, "no such file"},
		{root, nil, "none found"},
		{root, []string{"src/h/notrepo"}, "not a git repository"},
		{root, []string{"../x"}, "want a relative path"},
	} {
		_, err := gitsync.FindRepos(tt.root, tt.paths...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("FindRepos(%q, %q) = %v, want an error containing %q", tt.root, tt.paths, err, tt.want)
		}
	}
	if _, err := gitsync.FindRepos(root, "src/h/notrepo"); !errors.Is(err, gitsync.ErrNotRepo) {
		t.Errorf("FindRepos(not a repo) = %v, want ErrNotRepo", err)
	}
}

func TestSyncNoGit(t *testing.T) {
	src := t.TempDir()
	paths := gittest.Workspace(t, src)
	repos, err := gitsync.FindRepos(src, paths[0])
	if err != nil {
		t.Fatal(err)
	}
	noGit := runnerFunc(func(ctx context.Context, t podexec.Target, cmd []string, o podexec.Options) error {
		c := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
		c.Env = []string{"PATH=/nonexistent"}
		c.Path = "/bin/sh"
		var stderr strings.Builder
		c.Stdin, c.Stdout, c.Stderr = o.Stdin, o.Stdout, &stderr
		err := c.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return &podexec.ExecError{Target: t, Command: cmd, ExitCode: ee.ExitCode(), Stderr: stderr.String()}
		}
		return err
	})
	_, err = syncer(noGit, t.TempDir()).Sync(t.Context(), repos)
	if !errors.Is(err, gitsync.ErrNoGit) {
		t.Errorf("Sync into a container without git = %v, want ErrNoGit", err)
	}
}

type runnerFunc func(ctx context.Context, t podexec.Target, cmd []string, o podexec.Options) error

func (f runnerFunc) Run(ctx context.Context, t podexec.Target, cmd []string, o podexec.Options) error {
	return f(ctx, t, cmd, o)
}
