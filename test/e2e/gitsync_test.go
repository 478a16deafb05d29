package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubepool/kubepool/internal/gitsync"
	"github.com/kubepool/kubepool/internal/gitsync/gittest"
	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/nodepod"
	"github.com/kubepool/kubepool/internal/podexec"
	"github.com/kubepool/kubepool/internal/testenv"
)

// podOutput runs script (sh -c) with args in the pod and returns stdout.
func podOutput(t *testing.T, ex *podexec.Executor, target podexec.Target, script string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := append([]string{"sh", "-c", script, "sh"}, args...)
	if err := ex.Run(t.Context(), target, cmd, podexec.Options{Stdout: &out}); err != nil {
		t.Fatalf("running %.40q in pod %s: %v", script, target, err)
	}
	return out.String()
}

// compareInPod compares every repo at paths under dest in the pod with the
// source under src: refs, HEAD, index, status and the working tree.
func compareInPod(t *testing.T, ex *podexec.Executor, target podexec.Target, src, dest string, paths []string) {
	t.Helper()
	for _, p := range paths {
		want := gittest.Manifest(t, filepath.Join(src, p))
		got := podOutput(t, ex, target, gittest.ManifestScript, path.Join(dest, p))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("repo %s in pod %s differs from the source (-want +got):\n%s", p, target, diff)
		}
	}
}

// TestGitSync pushes a workspace with branches, tags, merges, other refs
// and a detached HEAD into a pod and compares every repo exactly; then
// re-syncs with no change (nothing sent) and after one commit (only its
// objects sent).
func TestGitSync(t *testing.T) {
	env := testenv.Cluster(t)
	target := machinePod(t, env, "e2e-gitsync")
	ex := newExecutor(t, env, false)
	src := t.TempDir()
	paths := gittest.Workspace(t, src)
	repos, err := gitsync.FindRepos(src)
	if err != nil {
		t.Fatal(err)
	}
	ex.PreferSPDY = true // as kubepool sync does
	const dest = "/work/ws"
	s := &gitsync.Syncer{Exec: ex, Target: target, Dest: dest}

	res, err := s.Sync(t.Context(), repos)
	if err != nil {
		t.Fatalf("Sync = %v", err)
	}
	compareInPod(t, ex, target, src, dest, paths)
	for _, rr := range res.Repos {
		if rr.UpToDate || rr.Objects == 0 {
			t.Errorf("first Sync of %s = %+v, want objects sent", rr.Path, rr)
		}
	}

	res, err = s.Sync(t.Context(), repos)
	if err != nil {
		t.Fatalf("Sync without changes = %v", err)
	}
	if got := res.Bytes(); got != 0 {
		t.Errorf("Sync without changes sent %d bytes, want 0", got)
	}

	// One commit changing one file of 64 KiB: the three new objects, the
	// blob's bytes plus a little.
	blob := make([]byte, 64<<10)
	rng := rand.NewChaCha8([32]byte{6})
	rng.Read(blob)
	gittest.Commit(t, filepath.Join(src, paths[1]), "one more", map[string]string{"data.bin": string(blob)})
	res, err = s.Sync(t.Context(), repos)
	if err != nil {
		t.Fatalf("Sync after one commit = %v", err)
	}
	compareInPod(t, ex, target, src, dest, paths)
	for _, rr := range res.Repos {
		switch {
		case rr.Path != paths[1] && !rr.UpToDate:
			t.Errorf("Sync after one commit in %s touched %s: %+v", paths[1], rr.Path, rr)
		case rr.Path == paths[1] && (rr.Objects != 3 || rr.Bytes > int64(len(blob))+1024):
			t.Errorf("Sync after one commit sent %d objects, %d bytes for %s; want 3 objects, at most %d bytes",
				rr.Objects, rr.Bytes, rr.Path, len(blob)+1024)
		}
	}
}

// TestGitSyncCut cuts the exec connection in the middle of a pack, over
// WebSocket and over SPDY. With one attempt, Sync fails naming the repo and
// the repo in the pod has none of the new refs; with retries it ends exact.
func TestGitSyncCut(t *testing.T) {
	env := testenv.Cluster(t)
	target := machinePod(t, env, "e2e-gitsync-cut")
	src := t.TempDir()
	paths := gittest.Workspace(t, src)
	big := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{7}).Read(big)
	gittest.Commit(t, filepath.Join(src, paths[0]), "big", map[string]string{"big.bin": string(big)})
	repos, err := gitsync.FindRepos(src, paths[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, proto := range []struct {
		name       string
		preferSPDY bool
	}{{"websocket", false}, {"spdy", true}} {
		t.Run(proto.name, func(t *testing.T) {
			ex := newExecutor(t, env, false)
			ex.PreferSPDY = proto.preferSPDY
			dest := "/work/" + proto.name

			stop, err := ex.CutStreams(1<<20, 1)
			if err != nil {
				t.Fatal(err)
			}
			s := &gitsync.Syncer{Exec: ex, Target: target, Dest: dest, Attempts: 1}
			_, err = s.Sync(t.Context(), repos)
			stop()
			var re *gitsync.RepoError
			if !errors.As(err, &re) || re.Path != paths[0] {
				t.Fatalf("Sync with a cut stream and 1 attempt = %v, want a *RepoError for %s", err, paths[0])
			}
			t.Logf("cut push failed as expected: %v", err)
			refs := podOutput(t, ex, target, `cd "$1" 2>/dev/null || exit 0; git for-each-ref; cat .git/kubepool-synced 2>/dev/null || true`, path.Join(dest, paths[0]))
			if refs != "" {
				t.Errorf("after a cut first push the pod's repo has refs or a sync marker:\n%s\nwant none", refs)
			}

			stop, err = ex.CutStreams(1<<20, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			s.Attempts = 3
			res, err := s.Sync(t.Context(), repos)
			if err != nil {
				t.Fatalf("Sync with one cut stream and 3 attempts = %v", err)
			}
			if got := res.Repos[0].Attempts; got != 2 {
				t.Errorf("Sync with one cut stream took %d attempts, want 2", got)
			}
			compareInPod(t, ex, target, src, dest, paths[:1])
		})
	}
}

// TestGitSyncErrors: a pod that does not exist and a container without git
// are errors that say so.
func TestGitSyncErrors(t *testing.T) {
	env := testenv.Cluster(t)
	target := machinePod(t, env, "e2e-gitsync-err")
	ex := newExecutor(t, env, false)
	src := t.TempDir()
	gittest.Workspace(t, src)
	repos, err := gitsync.FindRepos(src)
	if err != nil {
		t.Fatal(err)
	}

	missing := podexec.Target{Namespace: target.Namespace, Pod: "no-such-pod"}
	_, err = (&gitsync.Syncer{Exec: ex, Target: missing}).Sync(t.Context(), repos)
	if !errors.Is(err, podexec.ErrNotFound) || !strings.Contains(err.Error(), "no-such-pod") {
		t.Errorf("Sync into a missing pod = %v, want ErrNotFound naming the pod", err)
	}
	t.Logf("missing pod: %v", err)
}

// nogitImage pushes the machine image minus git (a whiteout layer) to the
// dev cluster's registry and returns its reference.
func nogitImage(t *testing.T, env *testenv.Env) string {
	t.Helper()
	base, err := crane.Pull(env.MachineImage, crane.Insecure)
	if err != nil {
		t.Fatalf("pulling %s: %v", env.MachineImage, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, wh := range []string{"usr/bin/.wh.git", "usr/lib/.wh.git-core"} {
		if err := tw.WriteHeader(&tar.Header{Name: wh, Mode: 0o644, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		t.Fatal(err)
	}
	ref := env.Registry + "/kubepool/e2e-nogit:latest"
	if err := crane.Push(img, ref, crane.Insecure); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	return ref
}

// TestGitSyncSidecar runs a pod whose main container's image has no git,
// with a git sidecar (nodepod.AddGitSidecar): syncing into the main container
// fails with ErrNoGit; syncing into the sidecar works, and the main
// container sees the same working trees.
func TestGitSyncSidecar(t *testing.T) {
	env := testenv.Cluster(t)
	image := nogitImage(t, env)
	ctx := t.Context()
	ns := uniqueNS("e2e-gitsync-sidecar")
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", ns, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := (&kube.Driver{Client: env.Client}).Delete(ctx, ns, true); err != nil {
			t.Errorf("deleting namespace %s: %v", ns, err)
		}
	})
	const mount = "/home/zuul/src"
	spec := corev1.PodSpec{
		Containers:                    []corev1.Container{{Name: "main", Image: image, Command: kube.MachineCommand}},
		AutomountServiceAccountToken:  ptr(false),
		TerminationGracePeriodSeconds: ptr(int64(5)),
	}
	if err := nodepod.AddGitSidecar(&spec, nodepod.GitSidecar{Image: env.MachineImage, MountPath: mount, Command: kube.MachineCommand}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "machine"}, Spec: spec}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating pod: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if _, err := kube.WaitForPod(wctx, env.Client, ns, "machine"); err != nil {
		t.Fatalf("WaitForPod(%s/machine) = %v", ns, err)
	}
	ex := newExecutor(t, env, false)
	main := podexec.Target{Namespace: ns, Pod: "machine", Container: "main"}
	sidecar := podexec.Target{Namespace: ns, Pod: "machine", Container: nodepod.GitContainer}

	src := t.TempDir()
	paths := gittest.Workspace(t, src)
	repos, err := gitsync.FindRepos(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&gitsync.Syncer{Exec: ex, Target: main, Dest: mount}).Sync(ctx, repos); !errors.Is(err, gitsync.ErrNoGit) {
		t.Fatalf("Sync into the main container (no git) = %v, want ErrNoGit", err)
	}
	if _, err := (&gitsync.Syncer{Exec: ex, Target: sidecar, Dest: mount}).Sync(ctx, repos); err != nil {
		t.Fatalf("Sync into the git sidecar = %v", err)
	}
	compareInPod(t, ex, sidecar, src, mount, paths)
	for _, p := range paths {
		want := gittest.Tree(t, filepath.Join(src, p))
		got := podOutput(t, ex, main, gittest.TreeScript, path.Join(mount, p))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("working tree of %s as the main container sees it differs (-want +got):\n%s", p, diff)
		}
	}
}

// kubepoolBinary builds cmd/kubepool into a temporary directory.
func kubepoolBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kubepool")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/kubepool/kubepool/cmd/kubepool")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building kubepool: %v\n%s", err, out)
	}
	return bin
}

// TestGitRemote pushes with git itself through "kubepool git-remote" as an
// ext:: remote, in the form zuul-jobs uses with kubectl, and fetches back.
// Then "kubepool sync" pushes the workspace with the same flags.
func TestGitRemote(t *testing.T) {
	env := testenv.Cluster(t)
	target := machinePod(t, env, "e2e-git-remote")
	ex := newExecutor(t, env, false)
	bin := kubepoolBinary(t)
	src := t.TempDir()
	paths := gittest.Workspace(t, src)
	repo := filepath.Join(src, paths[0])
	podOutput(t, ex, target, `git init -q --bare /work/remote.git`)

	remote := fmt.Sprintf("ext::%s git-remote --kubeconfig %s -n %s exec -i %s -- %%S /work/remote.git", bin, env.Kubeconfig, target.Namespace, target.Pod)
	gittest.Git(t, repo, "-c", "protocol.ext.allow=always", "push", "--quiet", "--mirror", remote)
	got := podOutput(t, ex, target, `git -C /work/remote.git for-each-ref --format='%(objectname) %(refname)'`)
	want := gittest.Git(t, repo, "for-each-ref", "--format=%(objectname) %(refname)") + "\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("refs pushed through git-remote (-want +got):\n%s", diff)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	gittest.Git(t, src, "-c", "protocol.ext.allow=always", "clone", "--quiet", "--mirror", remote, clone)
	if got := gittest.Git(t, clone, "for-each-ref", "--format=%(objectname) %(refname)") + "\n"; got != want {
		t.Errorf("refs fetched back through git-remote = %q, want %q", got, want)
	}

	cmd := exec.Command(bin, "sync", "--kubeconfig", env.Kubeconfig, "-n", target.Namespace, "--pod", target.Pod, "--src", src, "--dest", "/work/ws")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubepool sync: %v\n%s", err, out)
	}
	t.Logf("kubepool sync:\n%s", out)
	compareInPod(t, ex, target, src, "/work/ws", paths)

	// A tree dirtied in the pod: --check and --no-clean report it and exit
	// 1, changing nothing; a plain sync (no ref changed) cleans it. The
	// table goes to stdout, nothing else does (no progress in a pipe).
	sync := func(extra ...string) (string, error) {
		args := append([]string{"sync", "--kubeconfig", env.Kubeconfig, "-n", target.Namespace, "--pod", target.Pod, "--src", src, "--dest", "/work/ws"}, extra...)
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		t.Logf("kubepool %s: %v\nstdout:\n%sstderr:\n%s", strings.Join(extra, " "), err, stdout.String(), stderr.String())
		return stdout.String(), err
	}
	if _, err := sync("--check"); err != nil {
		t.Errorf("kubepool sync --check after a sync: %v, want exit status 0", err)
	}
	app := path.Join("/work/ws", paths[0])
	podOutput(t, ex, target, `cd "$1" && echo edited >README && rm docs/guide.md && echo new >new.txt`, app)
	for _, flag := range []string{"--check", "--no-clean"} {
		out, err := sync(flag)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, "FAILED (dirty)") {
			t.Errorf("kubepool sync %s over a dirty tree: %v, want exit status 1 and the repo FAILED (dirty)", flag, err)
		}
	}
	if got := podOutput(t, ex, target, `cat "$1/README"`, app); got != "edited\n" {
		t.Errorf("README after --check and --no-clean = %q, want the edit kept", got)
	}
	table, err := sync()
	if err != nil || !strings.Contains(table, "tree cleaned") || !strings.Contains(table, fmt.Sprintf("%d of %d repos verified", len(paths), len(paths))) {
		t.Errorf("kubepool sync over a dirty tree: %v, want the tree cleaned and every repo verified", err)
	}
	compareInPod(t, ex, target, src, "/work/ws", paths)
}
