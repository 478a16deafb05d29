package e2e

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubepool/kubepool/internal/gitsync"
	"github.com/kubepool/kubepool/internal/gitsync/gittest"
	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/podexec"
	"github.com/kubepool/kubepool/internal/testenv"
)

// The fault tests put their faults in the pod at fixed points, not at
// fixed times: the pod's PATH starts with /hooks, where they install
// one-shot wrappers of tar and git that kill the receiving process at the
// point they were armed for (a file under /hooks arms each, and is
// removed when it fires). Each sync runs under a deadline that only
// guards against a hang; the times are logged.

// faultStall is the fault tests' stall timeout (kubepool sync's default is
// 30 s): short, so that a fault only the stall catches costs seconds.
const faultStall = 5 * time.Second

// hooksScript installs the wrappers. Armed by:
//
//	/hooks/tar.early   tar is killed before it reads anything
//	/hooks/tar.mid     tar is given 1 MiB of its input, and once it
//	                   extracted it, killed (mid-pack)
//	/hooks/tar.block   tar is given 1 MiB, then /hooks/blocked appears and
//	                   nothing more happens (a receiver that stopped
//	                   reading; a pod deleted mid-sync)
//	/hooks/git.reset   the next "git reset" is killed after it checked
//	                   out 2 files (a smudge filter kills it on the 3rd)
const hooksScript = `set -eu
cat >/hooks/tar <<'EOS'
#!/bin/sh
PATH=${PATH#/hooks:}
if [ -f /hooks/tar.early ]; then rm -f /hooks/tar.early; kill -9 $$; fi
for mode in mid block; do
	[ -f /hooks/tar.$mode ] || continue
	rm -f /hooks/tar.$mode
	f=/hooks/fifo.$$
	mkfifo $f
	tar "$@" <$f & pid=$!
	exec 4>$f
	head -c 1048576 >&4
	while kill -0 $pid 2>/dev/null && [ "$(du -sk . | cut -f1)" -lt 900 ]; do sleep 0.05; done
	rm -f $f
	if [ $mode = block ]; then touch /hooks/blocked; exec sleep 3600; fi
	kill -9 $pid
	wait $pid
	exit $?
done
exec tar "$@"
EOS
cat >/hooks/git <<'EOS'
#!/bin/sh
PATH=${PATH#/hooks:}
case " $* " in
*" reset "*)
	if [ -f /hooks/git.reset ]; then
		rm -f /hooks/git.reset
		echo 0 >/hooks/smudged
		exec git -c core.attributesFile=/hooks/attributes -c filter.kpkill.smudge=/hooks/smudge "$@"
	fi ;;
esac
exec git "$@"
EOS
cat >/hooks/smudge <<'EOS'
#!/bin/sh
n=$(($(cat /hooks/smudged) + 1))
echo $n >/hooks/smudged
if [ $n -ge 3 ]; then kill -9 $PPID; exit 1; fi
exec cat
EOS
echo '* filter=kpkill' >/hooks/attributes
chmod +x /hooks/tar /hooks/git /hooks/smudge
`

// faultPod starts a machine pod for fault tests: /hooks first on PATH,
// a read-only volume at /ro and a 6 MiB tmpfs at /small.
func faultPod(t *testing.T, env *testenv.Env, prefix string) podexec.Target {
	t.Helper()
	ctx := context.Background()
	ns := uniqueNS(prefix)
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
	small := resource.MustParse("6Mi")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "machine"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "machine", Image: env.MachineImage, Command: kube.MachineCommand,
				Env: []corev1.EnvVar{{Name: "PATH", Value: "/hooks:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "hooks", MountPath: "/hooks"},
					{Name: "ro", MountPath: "/ro", ReadOnly: true},
					{Name: "small", MountPath: "/small"},
				},
			}},
			Volumes: []corev1.Volume{
				{Name: "hooks", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "ro", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "small", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &small}}},
			},
			AutomountServiceAccountToken:  ptr(false),
			TerminationGracePeriodSeconds: ptr(int64(1)),
		},
	}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating pod %s/machine: %v", ns, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if _, err := kube.WaitForPod(wctx, env.Client, ns, "machine"); err != nil {
		t.Fatalf("WaitForPod(%s/machine) = %v", ns, err)
	}
	target := podexec.Target{Namespace: ns, Pod: "machine", Container: "machine"}
	podOutput(t, newExecutor(t, env, false), target, hooksScript)
	return target
}

// faultWorkspace is the test workspace with a 4 MiB file of random bytes
// committed to its first repo, so that its pack is the first and largest
// of a stream.
func faultWorkspace(t *testing.T) (src string, repos []gitsync.Repo, paths []string) {
	t.Helper()
	src = t.TempDir()
	paths = gittest.Workspace(t, src)
	big := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{9}).Read(big)
	gittest.Commit(t, filepath.Join(src, paths[0]), "big", map[string]string{"big.bin": string(big)})
	repos, err := gitsync.FindRepos(src)
	if err != nil {
		t.Fatal(err)
	}
	return src, repos, paths
}

// timedSync runs one Sync (or Check) under a deadline that only catches a
// hang, and logs how long it took.
func timedSync(t *testing.T, s *gitsync.Syncer, repos []gitsync.Repo, what string, check bool) (*gitsync.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	var res *gitsync.Result
	var err error
	if check {
		res, err = s.Check(ctx, repos)
	} else {
		res, err = s.Sync(ctx, repos)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s: still running after 3 minutes (hang): %v", what, err)
	}
	t.Logf("%s: %v in %v", what, err, time.Since(start).Round(time.Millisecond))
	return res, err
}

// repoError is the *RepoError for repo p in err (a join of them).
func repoError(err error, p string) *gitsync.RepoError {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	for _, e := range errs {
		var re *gitsync.RepoError
		if errors.As(e, &re) && re.Path == p {
			return re
		}
	}
	return nil
}

func repoResult(t *testing.T, res *gitsync.Result, p string) gitsync.RepoResult {
	t.Helper()
	if res != nil {
		for _, rr := range res.Repos {
			if rr.Path == p {
				return rr
			}
		}
	}
	t.Fatalf("no result for repo %s", p)
	return gitsync.RepoResult{}
}

var protocols = []struct {
	name       string
	preferSPDY bool
}{{"spdy", true}, {"websocket", false}}

// TestGitSyncFaults kills the pod's receiving process early, mid-pack and
// during a checkout, over SPDY and WebSocket: each sync ends verified (the
// killed repo on its second attempt) or, with one attempt, in a failure
// that a Check and the next sync report as partial, and that sync repairs.
func TestGitSyncFaults(t *testing.T) {
	env := testenv.Cluster(t)
	target := faultPod(t, env, "e2e-gitsync-fault")
	src, repos, paths := faultWorkspace(t)
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			ex := newExecutor(t, env, false)
			ex.PreferSPDY = proto.preferSPDY
			arm := func(hook string) { podOutput(t, ex, target, `touch "/hooks/$1"`, hook) }
			syncer := func(dest string, attempts int) *gitsync.Syncer {
				return &gitsync.Syncer{Exec: ex, Target: target, Dest: dest, Attempts: attempts, Streams: 1, StallTimeout: faultStall}
			}

			for _, tt := range []struct{ name, hook string }{
				{"kill-tar-early", "tar.early"},
				{"kill-tar-mid-pack", "tar.mid"},
				{"kill-checkout", "git.reset"},
				{"stall-tar-mid-pack", "tar.block"}, // ended by the stall timeout
			} {
				t.Run(tt.name, func(t *testing.T) {
					dest := "/work/" + proto.name + "-" + tt.name
					arm(tt.hook)
					res, err := timedSync(t, syncer(dest, 3), repos, tt.name+", 3 attempts", false)
					if err != nil {
						t.Fatalf("Sync with %s and 3 attempts = %v", tt.name, err)
					}
					if rr := repoResult(t, res, paths[0]); rr.Attempts != 2 || rr.State != gitsync.StateVerified {
						t.Errorf("%s: %+v, want verified on the 2nd attempt", paths[0], rr)
					}
					compareInPod(t, ex, target, src, dest, paths)
				})
			}

			// One attempt: the failure names the repo and the pod, is
			// left marked, and heals on the next sync.
			t.Run("kill-tar-mid-pack-once", func(t *testing.T) {
				dest := "/work/" + proto.name + "-once"
				arm("tar.mid")
				_, err := timedSync(t, syncer(dest, 1), repos, "mid-pack kill, 1 attempt", false)
				if re := repoError(err, paths[0]); re == nil || !strings.Contains(re.Error(), target.Pod) {
					t.Fatalf("Sync with a mid-pack kill and 1 attempt = %v, want a *RepoError for %s naming the pod", err, paths[0])
				}
				if strings.Contains(err.Error(), "set -u") {
					t.Errorf("the error carries the pod script: %v", err)
				}
				_, err = timedSync(t, syncer(dest, 1), repos, "check after", true)
				var ce *gitsync.CheckError
				if !errors.As(err, &ce) || ce.Repos[paths[0]] != gitsync.StatePartial {
					t.Errorf("Check after the failed sync = %v, want %s partial", err, paths[0])
				}
				res, err := timedSync(t, syncer(dest, 1), repos, "next sync", false)
				if err != nil {
					t.Fatalf("next Sync = %v", err)
				}
				if rr := repoResult(t, res, paths[0]); !rr.WasPartial || rr.State != gitsync.StateVerified {
					t.Errorf("next Sync of %s: %+v, want reported partial and verified", paths[0], rr)
				}
				compareInPod(t, ex, target, src, dest, paths)
			})

			// A receiver that stays but reads no more, with one attempt:
			// the stall timeout ends it with a typed error that names
			// the repo and the pod and says what was seen.
			t.Run("stall-tar-once", func(t *testing.T) {
				dest := "/work/" + proto.name + "-stall-once"
				arm("tar.block")
				_, err := timedSync(t, syncer(dest, 1), repos, "stalled receiver, 1 attempt", false)
				re := repoError(err, paths[0])
				var se *podexec.StallError
				if re == nil || !errors.As(err, &se) || !strings.Contains(re.Error(), target.Pod) || !strings.Contains(re.Error(), "no progress for") {
					t.Fatalf("Sync into a stalled receiver with 1 attempt = %v, want a *RepoError for %s wrapping a *podexec.StallError, naming the pod", err, paths[0])
				}
				if se.Sent < 1<<20 {
					t.Errorf("StallError after %d bytes sent, want at least the 1 MiB the receiver took", se.Sent)
				}
			})

			// A checkout killed with no attempt left: the next sync heals
			// the lock it left, without a manual step.
			t.Run("kill-checkout-once", func(t *testing.T) {
				dest := "/work/" + proto.name + "-checkout-once"
				arm("git.reset")
				if _, err := timedSync(t, syncer(dest, 1), repos, "checkout kill, 1 attempt", false); err == nil {
					t.Fatal("Sync with a killed checkout and 1 attempt succeeded")
				}
				lock := podOutput(t, ex, target, `ls "$1"/*/.git/index.lock "$1"/*/*/*/*/.git/index.lock 2>/dev/null || true`, dest)
				if lock == "" {
					t.Errorf("no index.lock left by the killed checkout: the fault did not happen as planned")
				}
				if _, err := timedSync(t, syncer(dest, 1), repos, "next sync", false); err != nil {
					t.Fatalf("Sync after a killed checkout = %v", err)
				}
				compareInPod(t, ex, target, src, dest, paths)
			})

			t.Run("destinations", func(t *testing.T) {
				for _, tt := range []struct{ dest, want string }{
					{"/proc/kubepool-test", ""},
					{"/etc/hostname", ""},
					{"/ro/ws", "Read-only file system"},
				} {
					_, err := timedSync(t, syncer(tt.dest, 3), repos, "sync into "+tt.dest, false)
					var de *gitsync.DestError
					if !errors.As(err, &de) || de.Path != tt.dest || !strings.Contains(de.Message, tt.want) || de.Message == "" {
						t.Errorf("Sync into %s = %v, want a *DestError naming it with the pod's message", tt.dest, err)
					}
				}
			})

			t.Run("disk-full", func(t *testing.T) {
				if kb := strings.TrimSpace(podOutput(t, ex, target, `df -k /small | awk 'NR==2 {print $2}'`)); kb == "" || len(kb) > 4 {
					t.Skipf("/small is %s KiB: this kubelet does not size memory emptyDirs by their sizeLimit", kb)
				}
				dest := "/small/" + proto.name
				res, err := timedSync(t, syncer(dest, 3), repos, "sync into a 6 MiB tmpfs", false)
				// Which repo runs out of room depends on the order the pod
				// wrote them in: one of them must say so, and not be verified.
				full := ""
				for _, p := range paths {
					if re := repoError(err, p); re != nil && (strings.Contains(re.Error(), "No space left on device") || strings.Contains(re.Error(), "bytes arrived")) {
						full = p
						break
					}
				}
				if full == "" {
					t.Fatalf("Sync into a full disk = %v, want a *RepoError saying the disk is full", err)
				}
				rr := repoResult(t, res, full)
				if rr.State == gitsync.StateVerified {
					t.Errorf("%s on a full disk: %+v, want it failed", full, rr)
				}
				t.Logf("%s on a full disk: %d attempts, state %s", full, rr.Attempts, rr.State)
				podOutput(t, ex, target, `rm -rf "$1"`, dest)
			})
		})
	}
}

// TestGitSyncPodDeleted deletes the pod while a sync streams into it, over
// SPDY and WebSocket: the sync fails naming the pod, within a bounded time.
func TestGitSyncPodDeleted(t *testing.T) {
	env := testenv.Cluster(t)
	_, repos, _ := faultWorkspace(t)
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			target := faultPod(t, env, "e2e-gitsync-del")
			ex := newExecutor(t, env, false)
			ex.PreferSPDY = proto.preferSPDY
			podOutput(t, ex, target, `touch /hooks/tar.block`)
			s := &gitsync.Syncer{Exec: ex, Target: target, Dest: "/work/ws", Attempts: 3, Streams: 1, StallTimeout: faultStall}
			errc := make(chan error, 1)
			start := time.Now()
			go func() {
				_, err := s.Sync(t.Context(), repos)
				errc <- err
			}()
			// Wait for the stream to block in the pod, then delete it.
			waitInPod(t, ex, target, `test -f /hooks/blocked`)
			if err := env.Client.CoreV1().Pods(target.Namespace).Delete(t.Context(), target.Pod, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
				t.Fatal(err)
			}
			deleted := time.Now()
			select {
			case err := <-errc:
				t.Logf("sync into a deleted pod: %v, %v after the delete (%v in all)", err, time.Since(deleted).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
				if err == nil || !strings.Contains(err.Error(), target.Pod) {
					t.Errorf("Sync into a pod deleted mid-stream = %v, want an error naming the pod", err)
				}
			case <-time.After(3 * time.Minute):
				t.Fatal("Sync into a pod deleted mid-stream still running after 3 minutes (hang)")
			}
		})
	}
}

// waitInPod runs script in the pod until it succeeds.
func waitInPod(t *testing.T, ex *podexec.Executor, target podexec.Target, script string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		if err := ex.Run(ctx, target, []string{"sh", "-c", script}, podexec.Options{}); err == nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("waiting in pod %s for %q: %v", target, script, ctx.Err())
}

// endlessReader is stdin that never ends.
type endlessReader struct{}

func (endlessReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestExecCommandStopsReading feeds an endless stdin, over SPDY and
// WebSocket, to a command that reads 1 KiB of it and then either exits
// ("exits") or stays but reads no more ("stays", a receiver that stopped):
// Run returns within the stall timeout (plus the exit grace), with the
// command's exit code when the status arrives, a *NoStatusError with its
// last words when the runtime holds the status back, or a *StallError when
// nothing moves. A stalled receiver must be a *StallError.
func TestExecCommandStopsReading(t *testing.T) {
	env := testenv.Cluster(t)
	target := machinePod(t, env, "e2e-exec-stops")
	for _, proto := range protocols {
		for _, tt := range []struct{ name, script string }{
			{"exits", "head -c 1024 >/dev/null; echo receiver gone >&2; exit 3"},
			{"stays", "head -c 1024 >/dev/null; echo receiver stopped >&2; exec sleep 600"},
		} {
			t.Run(proto.name+"/"+tt.name, func(t *testing.T) {
				ex := newExecutor(t, env, proto.preferSPDY) // spdy: SPDY only
				ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
				defer cancel()
				start := time.Now()
				err := ex.Run(ctx, target, []string{"sh", "-c", tt.script}, podexec.Options{Stdin: endlessReader{}, StallTimeout: 5 * time.Second})
				if ctx.Err() != nil {
					t.Fatalf("Run still waiting after 3 minutes (hang): %v", err)
				}
				t.Logf("%s/%s: %v after %v", proto.name, tt.name, err, time.Since(start).Round(time.Millisecond))
				if err == nil || !strings.Contains(err.Error(), target.Pod) {
					t.Errorf("Run = %v, want an error naming the pod", err)
				}
				var ee *podexec.ExecError
				var ns *podexec.NoStatusError
				var se *podexec.StallError
				switch {
				case errors.As(err, &se):
					if se.Sent < 1024 {
						t.Errorf("StallError after %d bytes of stdin, want at least the 1 KiB the command read", se.Sent)
					}
				case tt.name == "stays":
					t.Errorf("Run of a command that stopped reading = %v, want a *StallError", err)
				case errors.As(err, &ee):
					if ee.ExitCode != 3 {
						t.Errorf("exit code = %d, want 3", ee.ExitCode)
					}
				case errors.As(err, &ns):
					if !ns.StdinLeft || !strings.Contains(ns.Stderr, "receiver gone") {
						t.Errorf("NoStatusError = %+v, want stdin left and the command's stderr", ns)
					}
				default:
					t.Errorf("Run of a command that exits early = %v, want an *ExecError, *NoStatusError or *StallError", err)
				}
			})
		}
	}
}
