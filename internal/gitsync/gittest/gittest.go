// Package gittest builds git workspaces for tests of package gitsync and
// describes repos in a form two copies can be compared by: refs, HEAD,
// index and every file of the working tree with its content hash.
package gittest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Env is the environment of the git commands run here: no user or system
// configuration, fixed identities and dates, so that object ids are the
// same on every run.
func Env() []string {
	return append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.org", "GIT_AUTHOR_DATE=1700000000 +0000",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.org", "GIT_COMMITTER_DATE=1700000000 +0000",
	)
}

// Git runs git in dir and returns its trimmed stdout.
func Git(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = Env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("git %s in %s: %v: %s", strings.Join(args, " "), dir, err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// Write writes files (path relative to dir → content) in dir.
func Write(tb testing.TB, dir string, files map[string]string) {
	tb.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// Commit writes files in the repo dir and commits them (and anything else
// changed) with message msg. It returns the commit id.
func Commit(tb testing.TB, dir, msg string, files map[string]string) string {
	tb.Helper()
	Write(tb, dir, files)
	Git(tb, dir, "add", "-A")
	Git(tb, dir, "commit", "-q", "--allow-empty", "-m", msg)
	return Git(tb, dir, "rev-parse", "HEAD")
}

// Workspace makes a Zuul-layout workspace under root and returns the repo
// paths, relative to root. Between them the repos have several branches,
// merges, lightweight and annotated tags, refs outside heads and tags, an
// executable file, a symlink, a .gitignore, a detached HEAD, and a branch other than the default checked out.
func Workspace(tb testing.TB, root string) []string {
	tb.Helper()
	app := filepath.Join(root, "src/example.org/org/app")
	lib := filepath.Join(root, "src/example.org/org/lib")
	tool := filepath.Join(root, "src/git.example.com/tool")
	for _, d := range []string{app, lib, tool} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
		Git(tb, d, "init", "-q", "-b", "main")
	}

	// app: main with a merged feature branch, tags, a Zuul ref.
	Commit(tb, app, "initial", map[string]string{"README": "app\n", "src/main.go": "package main\n", ".gitignore": "*.o\n"})
	Git(tb, app, "tag", "v1.0")
	Git(tb, app, "checkout", "-q", "-b", "feature")
	Commit(tb, app, "feature work", map[string]string{"src/feature.go": "package main // feature\n"})
	Git(tb, app, "checkout", "-q", "main")
	Commit(tb, app, "main work", map[string]string{"docs/guide.md": "# guide\n"})
	Git(tb, app, "merge", "-q", "--no-ff", "-m", "Merge feature", "feature")
	Git(tb, app, "tag", "-a", "-m", "release 2.0", "v2.0")
	Git(tb, app, "update-ref", "refs/zuul/main/Z1234", "HEAD")
	Git(tb, app, "update-ref", "refs/remotes/origin/main", "HEAD~1")

	// lib: detached HEAD at an annotated tag, an executable and a symlink.
	Write(tb, lib, map[string]string{"lib.py": "x = 1\n"})
	if err := os.WriteFile(filepath.Join(lib, "run.sh"), []byte("#!/bin/sh\necho run\n"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.Symlink("lib.py", filepath.Join(lib, "link.py")); err != nil {
		tb.Fatal(err)
	}
	Commit(tb, lib, "lib initial", nil)
	Commit(tb, lib, "lib second", map[string]string{"lib.py": "x = 2\n"})
	Git(tb, lib, "tag", "-a", "-m", "one", "v0.1", "HEAD~1")
	Commit(tb, lib, "lib third", map[string]string{"lib.py": "x = 3\n"})
	Git(tb, lib, "checkout", "-q", "--detach", "v0.1")

	// tool: a stable branch checked out, main ahead of it.
	Commit(tb, tool, "tool initial", map[string]string{"tool.c": "int main(){}\n"})
	Git(tb, tool, "branch", "stable/1")
	Commit(tb, tool, "tool next", map[string]string{"tool.c": "int main(){return 0;}\n"})
	Git(tb, tool, "checkout", "-q", "stable/1")

	return []string{"src/example.org/org/app", "src/example.org/org/lib", "src/git.example.com/tool"}
}

// TreeScript prints every path of the working tree of "$1" but .git, with
// its type, executable bit and content hash. It needs only sh, find, sort,
// cut and sha1sum, so it also runs in containers without git.
const TreeScript = "set -eu\ncd \"$1\"\n" + treeBody

const treeBody = `find . -path ./.git -prune -o -print | LC_ALL=C sort | while IFS= read -r f; do
	if [ -L "$f" ]; then echo "l $f -> $(readlink "$f")"
	elif [ -d "$f" ]; then echo "d $f"
	elif [ -x "$f" ]; then echo "x $f $(sha1sum <"$f" | cut -d' ' -f1)"
	else echo "f $f $(sha1sum <"$f" | cut -d' ' -f1)"
	fi
done
`

// ManifestScript prints a description of the repo at "$1" that two copies
// of a repo are compared by: its refs, HEAD (as .git/HEAD has it), its index,
// git status (which must be empty: nothing modified, untracked or ignored),
// and the working tree as TreeScript prints it.
const ManifestScript = `set -eu
cd "$1"
echo "# refs"; git for-each-ref --format='%(objectname) %(refname)'
echo "# HEAD"; cat .git/HEAD
echo "# index"; git ls-files -s
echo "# status"; git status --porcelain --ignored --untracked-files=all
echo "# tree"
` + treeBody

// Manifest runs ManifestScript on the repo in dir on this machine.
func Manifest(tb testing.TB, dir string) string {
	tb.Helper()
	return run(tb, ManifestScript, dir)
}

// Tree runs TreeScript on the repo in dir on this machine.
func Tree(tb testing.TB, dir string) string {
	tb.Helper()
	return run(tb, TreeScript, dir)
}

func run(tb testing.TB, script, dir string) string {
	tb.Helper()
	cmd := exec.Command("sh", "-c", script, "manifest", dir)
	cmd.Env = Env()
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("describing repo %s: %v", dir, err)
	}
	return string(out)
}
