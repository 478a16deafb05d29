package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kubepool/kubepool/internal/registrytoken"
	"github.com/kubepool/kubepool/internal/testenv"
)

// BenchmarkBuildsetLaunch compares, on one launcher whose provider has a
// buildset-registry, the cold launch of a node whose request carries a
// buildset (a registry credential in ZooKeeper, its Secret, the default
// service account's imagePullSecrets, for pods the mounted config) with a
// plain one (a request without build_set_uuid), from writing the request to
// seeing it fulfilled. Samples alternate plain and buildset, each once the
// previous node's namespace is gone.
func BenchmarkBuildsetLaunch(b *testing.B) {
	for _, bc := range []struct {
		label string
		pairs int
	}{{"namespace", 30}, {"pod", 10}} {
		b.Run(bc.label, func(b *testing.B) {
			be := startBuildsetLauncher(b, 0)
			ctx, cancel := context.WithTimeout(b.Context(), 20*time.Minute)
			defer cancel()
			for b.Loop() {
				var plain, withBuildset []time.Duration
				for i := range 2 * bc.pairs {
					data := map[string]any{"job_name": "bench"}
					if i%2 == 1 {
						data["build_set_uuid"] = randHex(16)
					}
					start := time.Now()
					id := be.zuul.Submit([]string{bc.label}, 100, map[string]any{"requestor_data": data})
					req := be.zuul.WaitRequest(ctx, id)
					took := time.Since(start)
					if req["state"] != "fulfilled" {
						b.Fatalf("request %s = %v, want fulfilled", id, req["state"])
					}
					if i%2 == 1 {
						withBuildset = append(withBuildset, took)
					} else {
						plain = append(plain, took)
					}
					nodes, ret := be.zuul.AcceptNodes(id, req)
					ret()
					be.waitGone(b, req["nodes"].([]any)[0].(string), nodes[0]["external_id"].(string))
				}
				reportPair(b, "plain", plain)
				reportPair(b, "buildset", withBuildset)
			}
		})
	}
}

// reportPair reports the p50 and p99 of took as <name>-p50-ms, <name>-p99-ms.
func reportPair(b *testing.B, name string, took []time.Duration) {
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(took[len(took)/2]), name+"-p50-ms")
	b.ReportMetric(ms(took[len(took)*99/100]), name+"-p99-ms")
}

// BenchmarkBuildsetPull compares a kubelet pull of a 100 MB image (one
// layer of random bytes) from a buildset repository, with the namespace's
// buildset credentials (a token from the launcher's endpoint), against the
// same size from a public repository of the same registry (an anonymous
// token from the same endpoint). Every sample is a fresh image, so that
// containerd has none of its blobs; it is timed from the pod's creation to
// its container having started. Samples alternate; the images are removed
// from containerd afterwards.
func BenchmarkBuildsetPull(b *testing.B) {
	const size, pairs = 100 << 20, 5
	be := startBuildsetLauncher(b, 0)
	ctx, cancel := context.WithTimeout(b.Context(), 20*time.Minute)
	defer cancel()
	bs := randHex(16)
	id := be.zuul.Submit([]string{"namespace"}, 100, map[string]any{"requestor_data": map[string]any{"build_set_uuid": bs}})
	req := be.zuul.WaitRequest(ctx, id)
	if req["state"] != "fulfilled" {
		b.Fatalf("request %s = %v", id, req["state"])
	}
	nodes, ret := be.zuul.AcceptNodes(id, req)
	defer ret()
	ns := nodes[0]["external_id"].(string)
	client := be.env.Client // who creates the pods does not matter here
	creds := namespaceCredentials(b, client, ns, be.reg.Host)
	push := func(repo string, auth authn.Authenticator) string {
		img, err := random.Image(size, 1)
		if err != nil {
			b.Fatal(err)
		}
		ref := fmt.Sprintf("%s/%s:%s", be.reg.Host, repo, randHex(4))
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			b.Fatal(err)
		}
		if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithAuth(auth)); err != nil {
			b.Fatalf("pushing %s: %v", ref, err)
		}
		return ref
	}
	for b.Loop() {
		var private, public []time.Duration
		for i := range 2 * pairs {
			var ref string
			if i%2 == 0 {
				ref = push("buildsets/"+bs+"/big", &creds)
			} else {
				repo := "base/big"
				tok, err := be.issuer.Issue("kubepool", []registrytoken.Access{{Type: "repository", Name: repo, Actions: []string{"pull", "push"}}})
				if err != nil {
					b.Fatal(err)
				}
				ref = push(repo, &authn.Bearer{Token: tok.Token})
			}
			took := timePull(b, ctx, client, ns, fmt.Sprintf("pull-%d", i), ref)
			if i%2 == 0 {
				private = append(private, took)
			} else {
				public = append(public, took)
			}
		}
		reportPair(b, "buildset", private)
		reportPair(b, "public", public)
	}
}

// timePull creates a pod running image and returns how long until its
// container started; the pod is deleted.
func timePull(b *testing.B, ctx context.Context, c kubernetes.Interface, ns, name, image string) time.Duration {
	b.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			// The image has no shell or binary: the container fails to
			// start after the pull, which is what is timed.
			Containers: []corev1.Container{{Name: "c", Image: image, Command: []string{"/nothing"}}},
		},
	}
	start := time.Now()
	if _, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.CoreV1().Pods(ns).Delete(context.WithoutCancel(ctx), name, metav1.DeleteOptions{}) }()
	var took time.Duration
	err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, s := range p.Status.ContainerStatuses {
			if w := s.State.Waiting; w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff") {
				return false, fmt.Errorf("pulling %s: %s", image, w.Message)
			}
			if s.ImageID != "" || s.State.Terminated != nil || s.State.Running != nil ||
				(s.State.Waiting != nil && s.State.Waiting.Reason != "ContainerCreating") {
				took = time.Since(start)
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		b.Fatalf("waiting for pod %s/%s to pull %s: %v", ns, name, image, err)
	}
	return took
}

// containerdSocket reads the dev cluster's containerd socket from its
// config.
func containerdSocket(env *testenv.Env) (string, error) {
	raw, err := os.ReadFile(filepath.Join(env.StateDir, "containerd.toml"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && strings.TrimSpace(k) == "address" {
			return strings.Trim(strings.TrimSpace(v), `"`), nil
		}
	}
	return "", fmt.Errorf("no containerd address in %s", filepath.Join(env.StateDir, "containerd.toml"))
}

// removeImages removes from the dev cluster's containerd the images the
// kubelet pulled from the test's registry host (tags and digests): the
// test's own, which no one else can have pulled.
func removeImages(tb testing.TB, env *testenv.Env, host string) {
	sock, err := containerdSocket(env)
	if err != nil {
		tb.Logf("not removing the test's images: %v", err)
		return
	}
	out, err := exec.Command("ctr", "--address", sock, "-n", "k8s.io", "images", "ls", "-q").Output()
	if err != nil {
		tb.Logf("not removing the test's images: ctr images ls: %v", err)
		return
	}
	var refs []string
	for _, r := range strings.Fields(string(out)) {
		if strings.HasPrefix(r, host+"/") {
			refs = append(refs, r)
		}
	}
	if len(refs) == 0 {
		return
	}
	if out, err := exec.Command("ctr", append([]string{"--address", sock, "-n", "k8s.io", "images", "rm"}, refs...)...).CombinedOutput(); err != nil {
		tb.Logf("removing the test's images: %v: %s", err, out)
	}
}
