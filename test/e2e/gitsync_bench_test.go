package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kubepool/kubepool/internal/gitsync"
	"github.com/kubepool/kubepool/internal/gitsync/gittest"
	"github.com/kubepool/kubepool/internal/podexec"
	"github.com/kubepool/kubepool/internal/testenv"
)

// The benchmark corpus: benchRepos repos, each with benchCommits commits
// on main over benchFiles files of benchFileSize incompressible bytes (the
// first commit writes them all, each later one rewrites benchChanged), a
// stable branch, a tag every 10 commits, and main checked out. About 340 MB
// of packs and 85 MB of working trees in all.
const (
	benchCorpusVersion = "v1"
	benchRepos         = 20
	benchCommits       = 30
	benchFiles         = 40
	benchChanged       = 4
	benchFileSize      = 104 << 10
)

// benchCorpus returns the workspace root of the benchmark corpus, built
// with git fast-import on first use and cached under
// $XDG_CACHE_HOME/kubepool/bench (default ~/.cache/kubepool/bench).
func benchCorpus(b *testing.B) string {
	b.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		b.Fatal(err)
	}
	root := filepath.Join(cache, "kubepool", "bench", "gitsync-"+benchCorpusVersion)
	done := filepath.Join(root, ".complete")
	if _, err := os.Stat(done); err == nil {
		return root
	}
	start := time.Now()
	if err := os.RemoveAll(root); err != nil {
		b.Fatal(err)
	}
	var g errgroup.Group
	g.SetLimit(2)
	for i := range benchRepos {
		g.Go(func() error { return benchRepo(filepath.Join(root, benchRepoPath(i)), i) })
	}
	if err := g.Wait(); err != nil {
		b.Fatalf("generating the benchmark corpus: %v", err)
	}
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated the benchmark corpus in %s in %v", root, time.Since(start).Round(time.Millisecond))
	return root
}

func benchRepoPath(i int) string {
	return fmt.Sprintf("src/opendev.org/bench/project-%02d", i)
}

// benchRepo makes repo number i in dir with git fast-import.
func benchRepo(dir string, i int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	run := func(stdin io.Reader, args ...string) error {
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env, cmd.Stdin = dir, gittest.Env(), stdin
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s in %s: %v: %s", strings.Join(args, " "), dir, err, out)
		}
		return nil
	}
	if err := run(nil, "init", "-q", "-b", "main"); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriterSize(pw, 1<<20)
		rng := rand.New(rand.NewChaCha8([32]byte{byte(i), 'k', 'p'}))
		blob := make([]byte, benchFileSize)
		mark := 0
		for c := range benchCommits {
			files := make([]int, 0, benchFiles)
			if c == 0 {
				for f := range benchFiles {
					files = append(files, f)
				}
			} else {
				for range benchChanged {
					files = append(files, rng.IntN(benchFiles))
				}
			}
			var mods strings.Builder
			for _, f := range files {
				for j := 0; j < len(blob); j += 8 {
					v := rng.Uint64()
					for k := 0; k < 8 && j+k < len(blob); k++ {
						blob[j+k] = byte(v >> (8 * k))
					}
				}
				mark++
				fmt.Fprintf(w, "blob\nmark :%d\ndata %d\n", mark, len(blob))
				w.Write(blob)
				w.WriteString("\n")
				fmt.Fprintf(&mods, "M 100644 :%d dir%d/file%02d.bin\n", mark, f%5, f)
			}
			mark++
			msg := fmt.Sprintf("commit %d of project %d\n", c, i)
			fmt.Fprintf(w, "commit refs/heads/main\nmark :%d\ncommitter Bench <bench@example.org> %d +0000\ndata %d\n%s", mark, 1700000000+c*60, len(msg), msg)
			if c > 0 {
				fmt.Fprintf(w, "from :%d\n", mark-len(files)-1)
			}
			w.WriteString(mods.String())
			w.WriteString("\n")
			if c%10 == 9 {
				fmt.Fprintf(w, "reset refs/tags/v%d\nfrom :%d\n\n", c/10+1, mark)
			}
			if c == benchCommits/2 {
				fmt.Fprintf(w, "reset refs/heads/stable\nfrom :%d\n\n", mark)
			}
		}
		pw.CloseWithError(w.Flush())
	}()
	if err := run(pr, "-c", "pack.compression=1", "fast-import", "--quiet"); err != nil {
		return err
	}
	return run(nil, "checkout", "-q", "-f", "main")
}

// kubectlPath is the dev cluster's kubectl ($KUBECTL overrides).
func kubectlPath(b *testing.B) string {
	if p := os.Getenv("KUBECTL"); p != "" {
		return p
	}
	p := "/root/.cache/kubepool/k8s/v1.36.3/kubectl"
	if _, err := os.Stat(p); err != nil {
		b.Skipf("no kubectl at %s (set KUBECTL)", p)
	}
	return p
}

// BenchmarkGitSync compares, in one run and one pod, four ways of getting
// the corpus's repos (with checked-out working trees) into a pod:
//
//	zuul:     git init in the pod, git push --mirror over
//	          ext::kubectl exec -i, 10 in parallel, then checkout in the pod
//	          (zuul-jobs' mirror-workspace-git-repos)
//	cp:       kubectl cp of the workspace, working trees and .git
//	raw:      the pack files kubepool sends, streamed through one exec into
//	          cat >/dev/null: the exec channel's limit (over WebSocket, as
//	          kubectl does, and over SPDY; the faster one is the limit)
//	kubepool: gitsync.Syncer over an Executor that prefers SPDY, as
//	          kubepool sync runs it, ending with every repo verified
//
// then kubepool's re-sync with no change and after one new commit.
// Run with: make bench, or
//
//	KUBEPOOL_E2E=1 go test ./test/e2e/ -run '^$' -bench GitSync -benchtime 1x
func BenchmarkGitSync(b *testing.B) {
	env := testenv.Cluster(b)
	kubectl := kubectlPath(b)
	root := benchCorpus(b)
	repos, err := gitsync.FindRepos(root)
	if err != nil {
		b.Fatal(err)
	}
	target := machinePod(b, env, "bench-gitsync")
	ex := newExecutor(b, env, false)
	ctx := context.Background()

	// What a first sync sends (each repo's pack and index files), in
	// memory, for the raw baseline.
	var packs [][]byte
	var packBytes, treeBytes int64
	for _, r := range repos {
		files, err := filepath.Glob(filepath.Join(r.Dir, ".git/objects/pack/pack-*"))
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range files {
			if !strings.HasSuffix(f, ".pack") && !strings.HasSuffix(f, ".idx") {
				continue
			}
			p, err := os.ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			packs = append(packs, p)
			packBytes += int64(len(p))
		}
		filepath.WalkDir(r.Dir, func(p string, d os.DirEntry, err error) error {
			if d.IsDir() && d.Name() == ".git" {
				return filepath.SkipDir
			}
			if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
				treeBytes += fi.Size()
			}
			return nil
		})
	}
	if len(repos) < 20 || packBytes < 300e6 {
		b.Fatalf("corpus has %d repos and %d pack bytes, want at least 20 and 300 MB", len(repos), packBytes)
	}
	b.Logf("corpus: %d repos, %.0f MB of packs, %.0f MB of working trees", len(repos), float64(packBytes)/1e6, float64(treeBytes)/1e6)

	inPod := func(script string, args ...string) {
		b.Helper()
		var stderr bytes.Buffer
		if err := ex.Run(ctx, target, append([]string{"sh", "-c", script, "sh"}, args...), podexec.Options{Stderr: &stderr}); err != nil {
			b.Fatalf("running %.60q in the pod: %v", script, err)
		}
	}
	timed := func(name string, f func()) time.Duration {
		b.Helper()
		inPod(`sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; true`)
		start := time.Now()
		f()
		d := time.Since(start)
		b.ReportMetric(d.Seconds(), name+"-s")
		b.Logf("%-32s %8.2f s", name, d.Seconds())
		return d
	}

	for range b.N {
		inPod(`rm -rf /bench && mkdir -p /bench`)
		rawStream := func(ex *podexec.Executor) {
			rs := make([]io.Reader, len(packs))
			for i, p := range packs {
				rs[i] = bytes.NewReader(p)
			}
			if err := ex.Run(ctx, target, []string{"sh", "-c", "cat >/dev/null"}, podexec.Options{Stdin: io.MultiReader(rs...)}); err != nil {
				b.Fatalf("streaming the packs: %v", err)
			}
		}
		rawWS := timed("raw-websocket", func() { rawStream(ex) })
		spdy := newExecutor(b, env, true)
		raw := timed("raw-spdy", func() { rawStream(spdy) })
		raw = min(raw, rawWS)

		// As kubepool sync runs it: SPDY first (see podexec.PreferSPDY).
		kpex := newExecutor(b, env, false)
		kpex.PreferSPDY = true
		s := &gitsync.Syncer{Exec: kpex, Target: target, Dest: "/bench/kubepool"}
		var res *gitsync.Result
		kp := timed("kubepool", func() {
			if res, err = s.Sync(ctx, repos); err != nil {
				b.Fatalf("kubepool sync: %v", err)
			}
		})
		b.ReportMetric(float64(res.Bytes())/1e6, "kubepool-MB")

		// The same over WebSocket (v5), for the choice of transport.
		wsex := newExecutor(b, env, false)
		wsSyncer := &gitsync.Syncer{Exec: wsex, Target: target, Dest: "/bench/kubepool-ws"}
		timed("kubepool-websocket", func() {
			if _, err := wsSyncer.Sync(ctx, repos); err != nil {
				b.Fatalf("kubepool sync over WebSocket: %v", err)
			}
		})
		inPod(`rm -rf /bench/kubepool-ws`)

		cp := timed("kubectl-cp", func() {
			cmd := exec.Command(kubectl, "--kubeconfig", env.Kubeconfig, "-n", target.Namespace, "cp", "-c", target.Container, root+"/src", target.Pod+":/bench/cp")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("kubectl cp: %v: %s", err, out)
			}
		})

		zuul := timed("zuul", func() {
			var dests []string
			for _, r := range repos {
				dests = append(dests, path.Join("/bench/zuul", r.Path))
			}
			inPod(`for d; do git init -q "$d" && git -C "$d" config receive.denyCurrentBranch ignore || exit 1; done`, dests...)
			var g errgroup.Group
			g.SetLimit(10)
			for i, r := range repos {
				g.Go(func() error {
					remote := fmt.Sprintf("ext::%s --kubeconfig %s -n %s exec -i %s -- %%S %s", kubectl, env.Kubeconfig, target.Namespace, target.Pod, dests[i])
					var err error
					for range 3 { // as zuul-jobs: up to 3 tries
						cmd := exec.Command("git", "-c", "protocol.ext.allow=always", "push", "--quiet", "--mirror", remote)
						cmd.Dir = r.Dir
						var out []byte
						if out, err = cmd.CombinedOutput(); err == nil {
							return nil
						}
						err = fmt.Errorf("git push --mirror %s: %v: %s", r.Path, err, out)
					}
					return err
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
			inPod(`for d; do git -C "$d" checkout -q -f main && git -C "$d" clean -q -d -f -x || exit 1; done`, dests...)
		})

		resync := timed("resync-nochange", func() {
			if res, err = s.Sync(ctx, repos); err != nil || res.Bytes() != 0 {
				b.Fatalf("re-sync: %v (%d bytes sent)", err, res.Bytes())
			}
		})

		one := repos[len(repos)/2]
		gittest.Commit(b, one.Dir, "one more", map[string]string{"dir0/new.txt": "one more commit\n"})
		b.Cleanup(func() { gittest.Git(b, one.Dir, "reset", "-q", "--hard", "HEAD~1") })
		oneCommit := timed("resync-onecommit", func() {
			if res, err = s.Sync(ctx, repos); err != nil {
				b.Fatalf("re-sync after one commit: %v", err)
			}
		})
		b.Logf("one-commit re-sync sent %d bytes, %d objects", res.Bytes(), res.Objects())

		b.Logf("kubepool vs zuul %.1fx (goal >= 5x), vs kubectl cp %.1fx (goal >= 1.5x), vs the faster raw %.2fx (goal <= 2x); re-sync %v, one commit %v (goals < 1 s)",
			zuul.Seconds()/kp.Seconds(), cp.Seconds()/kp.Seconds(), kp.Seconds()/raw.Seconds(), resync.Round(time.Millisecond), oneCommit.Round(time.Millisecond))
	}
}
