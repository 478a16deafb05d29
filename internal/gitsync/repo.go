package gitsync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Repo is one repository of a workspace.
type Repo struct {
	// Path is where the repo is relative to the workspace root,
	// slash-separated (e.g. "src/opendev.org/zuul/zuul"). It is also where
	// the repo goes relative to the destination in the pod.
	Path string
	// Dir is the repo's working tree on this machine.
	Dir string
}

// ErrNotRepo is matched by errors about a directory that is not a git
// working tree.
var ErrNotRepo = errors.New("not a git repository")

// maxDepth bounds how deep FindRepos looks for repos under a workspace root
// (Zuul's src/<host>/<org>/<project> is 4 deep).
const maxDepth = 6

// FindRepos returns the repos of the workspace at root, sorted by Path.
// With no paths it finds every directory under root, up to 6 levels deep,
// that has a .git (a directory or a file), without descending into repos.
// Otherwise it returns exactly the repos at paths, relative to root, and
// fails naming any path that is not a repo.
func FindRepos(root string, paths ...string) ([]Repo, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("reading workspace %s: %w", root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("reading workspace %s: not a directory", root)
	}
	var repos []Repo
	if len(paths) > 0 {
		for _, p := range paths {
			rel, err := cleanRelPath(filepath.ToSlash(p))
			if err != nil {
				return nil, err
			}
			dir := filepath.Join(root, filepath.FromSlash(rel))
			if !isRepo(dir) {
				return nil, fmt.Errorf("repo %s: %s: %w (want a directory with a .git under the workspace root)", p, dir, ErrNotRepo)
			}
			repos = append(repos, Repo{Path: rel, Dir: dir})
		}
	} else {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				return nil
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			if rel == "." {
				if isRepo(p) {
					return fmt.Errorf("workspace %s is itself a git repository: pass the directory that contains the repos, or name repos as arguments", root)
				}
				return nil
			}
			if d.Name() == ".git" {
				return fs.SkipDir
			}
			if isRepo(p) {
				repos = append(repos, Repo{Path: filepath.ToSlash(rel), Dir: p})
				return fs.SkipDir
			}
			if strings.Count(filepath.ToSlash(rel), "/")+1 >= maxDepth {
				return fs.SkipDir
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("finding repos in %s: %w", root, err)
		}
		if len(repos) == 0 {
			return nil, fmt.Errorf("finding repos in %s: none found (want directories with a .git, such as src/<host>/<project>)", root)
		}
	}
	slices.SortFunc(repos, func(a, b Repo) int { return strings.Compare(a.Path, b.Path) })
	for i := 1; i < len(repos); i++ {
		if repos[i].Path == repos[i-1].Path {
			return nil, fmt.Errorf("repo %s named twice", repos[i].Path)
		}
	}
	return repos, nil
}

func isRepo(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, ".git"))
	return err == nil
}

// cleanRelPath checks that p is a relative path that stays inside the
// workspace and can travel through a line-based protocol.
func cleanRelPath(p string) (string, error) {
	c := path.Clean(p)
	if p == "" || path.IsAbs(c) || c == "." || c == ".." || strings.HasPrefix(c, "../") || strings.ContainsAny(c, "\n\r\x00") {
		return "", fmt.Errorf("repo path %q: want a relative path inside the workspace", p)
	}
	return c, nil
}

// ref is one ref and the object it points at.
type ref struct {
	Name string
	OID  string
}

// state is what a repo's refs and HEAD are. Head is "ref: <refname>" for a
// branch (as in .git/HEAD) or an object id for a detached HEAD; "" when
// there is no repo.
type state struct {
	Head string
	Refs []ref // sorted by Name
}

// digest identifies s; the pod keeps the digest of the state it was last
// fully synced to (refs, HEAD, and the working tree checked out).
func (s state) digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "v1\nhead %s\n", s.Head)
	for _, r := range s.Refs {
		fmt.Fprintf(h, "%s %s\n", r.OID, r.Name)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (s state) equal(o state) bool {
	return s.Head == o.Head && slices.Equal(s.Refs, o.Refs)
}

// GitError is a git command on this machine that failed.
type GitError struct {
	Dir    string
	Args   []string
	Stderr string
	Err    error
}

func (e *GitError) Error() string {
	msg := fmt.Sprintf("running git %s in %s: %v", strings.Join(e.Args, " "), e.Dir, e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

func (e *GitError) Unwrap() error { return e.Err }

// git runs git in dir and returns its stdout.
func git(ctx context.Context, dir string, stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &GitError{Dir: dir, Args: args, Stderr: stderr.String(), Err: err}
	}
	return stdout.Bytes(), nil
}

// localState reads the refs and HEAD of the repo in dir.
func localState(ctx context.Context, dir string) (state, error) {
	out, err := git(ctx, dir, nil, "for-each-ref", "--format=%(objectname) %(refname)")
	if err != nil {
		if !isRepo(dir) {
			return state{}, fmt.Errorf("%s: %w", dir, ErrNotRepo)
		}
		return state{}, err
	}
	var s state
	for line := range strings.Lines(string(out)) {
		oid, name, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		if !ok {
			return state{}, fmt.Errorf("reading refs of %s: unexpected line %q", dir, line)
		}
		s.Refs = append(s.Refs, ref{Name: name, OID: oid})
	}
	slices.SortFunc(s.Refs, func(a, b ref) int { return strings.Compare(a.Name, b.Name) })
	if b, err := os.ReadFile(filepath.Join(dir, ".git", "HEAD")); err == nil && validHead(string(b)) {
		// The common case, read without starting git.
		s.Head = strings.TrimSpace(string(b))
	} else if out, err := git(ctx, dir, nil, "symbolic-ref", "-q", "HEAD"); err == nil {
		s.Head = "ref: " + strings.TrimSpace(string(out))
	} else if out, err := git(ctx, dir, nil, "rev-parse", "-q", "--verify", "HEAD"); err == nil {
		s.Head = strings.TrimSpace(string(out))
	} else {
		return state{}, fmt.Errorf("reading HEAD of %s: %w", dir, err)
	}
	return s, nil
}

// validHead reports whether h, the contents of a HEAD file, is a symbolic
// ref to a ref under refs/ or an object id.
func validHead(h string) bool {
	h = strings.TrimSuffix(h, "\n")
	if name, ok := strings.CutPrefix(h, "ref: "); ok {
		return strings.HasPrefix(name, "refs/") && !strings.ContainsAny(name, " \n")
	}
	if len(h) != 40 {
		return false
	}
	for _, c := range h {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// existing returns the oids that exist in the repo in dir.
func existing(ctx context.Context, dir string, oids []string) (map[string]bool, error) {
	have := map[string]bool{}
	if len(oids) == 0 {
		return have, nil
	}
	out, err := git(ctx, dir, []byte(strings.Join(oids, "\n")+"\n"), "cat-file", "--batch-check=%(objectname) %(objecttype)")
	if err != nil {
		return nil, err
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 2 && f[1] != "missing" {
			have[f[0]] = true
		}
	}
	return have, nil
}
