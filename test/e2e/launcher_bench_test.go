package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apimachinery/pkg/watch"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

// benchSamples is how many requests each latency figure is taken over.
const benchSamples = 50

func reportLatency(b *testing.B, took []time.Duration) {
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[len(took)*99/100]), "p99-ms")
	b.ReportMetric(ms(took[0]), "min-ms")
}

// BenchmarkLauncherFulfil measures what Zuul waits for, from writing a
// request for one pod node to seeing it fulfilled:
//
//   - bare-pod: the baseline, the label's pod (benchPodSpec) created in an
//     existing namespace until it is Ready (seen by watch), with nothing of
//     kubepool's;
//   - cold-without-policy: cold as it was before safe nodes, without the
//     namespace's Pod Security labels, quota and network policy
//     (kube.Driver.WithoutPolicy): what they cost;
//   - cold: every node launched (namespace with its Pod Security labels,
//     service account, role and binding, network policy, pod to Ready,
//     quota, bound token, ZooKeeper records);
//   - warm: min-ready 2, a ready node handed out.
//
// Nodes are returned between samples, and each sample starts once the
// previous one's pod (bare-pod) or namespace (cold) is gone, or, for warm,
// once the pool is refilled.
func BenchmarkLauncherFulfil(b *testing.B) {
	b.Run("bare-pod", func(b *testing.B) {
		le := startLauncher(b, 0) // the same environment as the others
		target := machinePod(b, le.env, "bench-bare")
		for b.Loop() {
			var took []time.Duration
			for range benchSamples {
				name := "p" + randHex(3)
				pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: benchPodSpec(le.env)}
				start := time.Now()
				if _, err := le.env.Client.CoreV1().Pods(target.Namespace).Create(b.Context(), pod, metav1.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
				if _, err := kube.WaitForPod(b.Context(), le.env.Client, target.Namespace, name); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
				if err := le.env.Client.CoreV1().Pods(target.Namespace).Delete(b.Context(), name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
					b.Fatal(err)
				}
				waitPodGone(b, le.env.Client, target.Namespace, name)
			}
			reportLatency(b, took)
		}
	})
	for _, bc := range []struct {
		name          string
		minReady      int
		withoutPolicy bool
	}{{"cold-without-policy", 0, true}, {"cold", 0, false}, {"warm", 2, false}} {
		b.Run(bc.name, func(b *testing.B) {
			benchWithoutPolicy = bc.withoutPolicy
			le := startLauncher(b, bc.minReady)
			benchWithoutPolicy = false
			ctx, cancel := context.WithTimeout(b.Context(), 20*time.Minute)
			defer cancel()
			for b.Loop() {
				var took []time.Duration
				for range benchSamples {
					le.waitReady(b, ctx, bc.minReady)
					start := time.Now()
					id := le.zuul.Submit([]string{"pod"}, 100, nil)
					req := le.zuul.WaitRequest(ctx, id)
					took = append(took, time.Since(start))
					if req["state"] != "fulfilled" {
						b.Fatalf("request %s = %v, want fulfilled", id, req["state"])
					}
					nodes, ret := le.zuul.AcceptNodes(id, req)
					ret()
					if bc.minReady == 0 {
						// Each sample starts on an idle cluster, as the
						// baseline's does: the previous node's namespace
						// is gone, not being torn down beside the launch.
						for i, n := range nodes {
							le.waitGone(b, req["nodes"].([]any)[i].(string), n["external_id"].(string))
						}
					}
				}
				reportLatency(b, took)
			}
		})
	}
}

// benchWithoutPolicy makes the next launcher's drivers leave out what a
// node's namespace enforces (kube.Driver.WithoutPolicy), for the cost of
// it in BenchmarkLauncherFulfil.
var benchWithoutPolicy bool

// waitPodGone waits, by watch, until pod namespace/name no longer exists.
func waitPodGone(tb testing.TB, client kubernetes.Interface, namespace, name string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), time.Minute)
	defer cancel()
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	for {
		list, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			tb.Fatalf("listing pod %s/%s: %v", namespace, name, err)
		}
		if len(list.Items) == 0 {
			return
		}
		w, err := client.CoreV1().Pods(namespace).Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: list.ResourceVersion})
		if err != nil {
			tb.Fatalf("watching pod %s/%s: %v", namespace, name, err)
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Deleted {
				w.Stop()
				return
			}
		}
		if ctx.Err() != nil {
			tb.Fatalf("pod %s/%s still exists: %v", namespace, name, ctx.Err())
		}
	}
}

// benchPodSpec is the pod that launcherConfig's "pod" label makes, as a
// bare pod: the same image, command and resources. The resources matter: a
// CPU limit of 100m throttles the container's start-up (runc and the shell
// run inside the limited cgroup), which costs 100-300 ms on this VM; a
// baseline without it would charge that to kubepool.
func benchPodSpec(env *testenv.Env) corev1.PodSpec {
	rl := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	return corev1.PodSpec{
		Containers: []corev1.Container{{
			Name: "pod", Image: env.MachineImage, ImagePullPolicy: corev1.PullIfNotPresent, Command: kube.MachineCommand,
			Resources: corev1.ResourceRequirements{Requests: rl, Limits: rl},
		}},
		RestartPolicy:                 corev1.RestartPolicyNever,
		AutomountServiceAccountToken:  ptr(false),
		TerminationGracePeriodSeconds: ptr(int64(5)),
	}
}

// BenchmarkLauncherBurst writes 100 namespace requests at once and
// measures until the last is fulfilled (requests/s), against the baseline of
// the same 100 namespace nodes made straight through the Kubernetes driver,
// 100 at a time: what the API server allows.
func BenchmarkLauncherBurst(b *testing.B) {
	const burst = 100
	b.Run("driver", func(b *testing.B) {
		env := testenv.Cluster(b)
		provider := "bench-" + randHex(3)
		// The launcher's client settings (no client-side rate limit), so
		// that the baseline is what the API server allows.
		cfg := rest.CopyConfig(env.RESTConfig)
		cfg.QPS, cfg.Burst = 0, 0
		d, err := kube.NewDriver(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			// Wait until they are gone: the launcher's burst comes next
			// and must not share the cluster with 100 namespace deletions.
			owned, _ := d.List(context.Background(), provider)
			var wg sync.WaitGroup
			for _, o := range owned {
				wg.Go(func() { _ = d.Delete(context.Background(), o.Namespace, true) })
			}
			wg.Wait()
		})
		for b.Loop() {
			cpu0 := env.ReadCPU()
			start := time.Now()
			var wg sync.WaitGroup
			errs := make([]error, burst)
			for i := range burst {
				wg.Go(func() {
					ns := kube.DNSLabel(fmt.Sprintf("bench-drv-%s-%d", randHex(2), i))
					_, errs[i] = d.Create(b.Context(), kube.Resource{Kind: kube.KindNamespace, Owner: kube.Owner{Provider: provider, NodeID: "x"}, Namespace: ns})
				})
			}
			wg.Wait()
			took := time.Since(start)
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(burst/took.Seconds(), "nodes/s")
			reportCPU(b, env.ReadCPU().Since(cpu0))
		}
	})
	for _, bc := range []struct {
		name string
		api  func() kubernetes.Interface
	}{
		{"launcher", nil},
		// kubepool's own ceiling: the same launcher, requests and ZooKeeper,
		// with an in-memory Kubernetes API (client-go's fake clientset)
		// that costs next to nothing.
		{"launcher-in-memory-api", inMemoryAPI},
	} {
		b.Run(bc.name, func(b *testing.B) { benchLauncherBurst(b, burst, bc.api) })
	}
}

// inMemoryAPI is a Kubernetes API in memory (client-go's fake clientset)
// that also answers TokenRequests.
func inMemoryAPI() kubernetes.Interface {
	// Not NewClientset: it tracks managed fields, at a CPU cost greater
	// than the launcher's own.
	c := fake.NewSimpleClientset()
	c.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		return true, &authenticationv1.TokenRequest{Status: authenticationv1.TokenRequestStatus{
			Token: "in-memory", ExpirationTimestamp: metav1.NewTime(time.Now().Add(time.Hour)),
		}}, nil
	})
	// What the quota controller does: count a new quota (nothing used).
	c.PrependReactor("create", "resourcequotas", func(a k8stesting.Action) (bool, runtime.Object, error) {
		q := a.(k8stesting.CreateAction).GetObject().(*corev1.ResourceQuota)
		q.Status.Hard = q.Spec.Hard.DeepCopy()
		return false, nil, nil
	})
	c.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{Major: "1", Minor: "36", GitVersion: "v1.36.3"}
	return c
}

// benchLauncherBurst is BenchmarkLauncherBurst's launcher side: n namespace
// requests written at once, until the last is fulfilled.
func benchLauncherBurst(b *testing.B, burst int, api func() kubernetes.Interface) {
	le := startLauncherDrivers(b, func(env *testenv.Env, servers, provider string) string {
		return launcherConfig(env, servers, provider, 0)
	}, nil, api)
	ctx, cancel := context.WithTimeout(b.Context(), 20*time.Minute)
	defer cancel()
	for b.Loop() {
		cpu0 := le.env.ReadCPU()
		start := time.Now()
		ids := make([]string, burst)
		for i := range ids {
			ids[i] = le.zuul.Submit([]string{"namespace"}, 100, nil)
		}
		for _, id := range ids {
			if req := le.zuul.WaitRequest(ctx, id); req["state"] != "fulfilled" {
				b.Fatalf("request %s = %v, want fulfilled", id, req["state"])
			}
		}
		took := time.Since(start)
		b.ReportMetric(float64(burst)/took.Seconds(), "nodes/s")
		reportCPU(b, le.env.ReadCPU().Since(cpu0))
	}
}

// reportCPU reports where the machine's CPU time went during a run: the
// API server and etcd, ZooKeeper, and this process (the launcher or the
// driver, and the Zuul stand-in).
func reportCPU(b *testing.B, used testenv.CPU) {
	b.ReportMetric((used["kube-apiserver"] + used["etcd"]).Seconds(), "apiserver+etcd-cpu-s")
	b.ReportMetric(used["zookeeper"].Seconds(), "zk-cpu-s")
	b.ReportMetric(used["self"].Seconds(), "self-cpu-s")
}

// waitReady waits until n unallocated ready nodes exist.
func (le *launcherEnv) waitReady(tb testing.TB, ctx context.Context, n int) {
	tb.Helper()
	for {
		nodes, err := le.zk.ListNodes(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		ready := 0
		for _, nd := range nodes {
			if nd.State == zk.NodeReady && nd.AllocatedTo == "" && !nd.Locked {
				ready++
			}
		}
		if ready >= n {
			return
		}
		select {
		case <-le.nodesCh():
		case <-ctx.Done():
			tb.Fatalf("waiting for %d ready nodes: %d ready: %v", n, ready, ctx.Err())
		}
	}
}

// BenchmarkLauncherQuotaChurn writes 50 namespace requests at once against
// a pool with max-servers 10, with a Zuul stand-in that uses each node the
// moment its request is fulfilled and returns it at once (a job that takes
// no time): the pool serves the burst in waves of 10, each wave waiting for
// the quota the previous one frees. It reports nodes/s until the last
// request is fulfilled and the requests' latency (written → fulfilled),
// against the same burst and stand-in with no max-servers, in the same run.
func BenchmarkLauncherQuotaChurn(b *testing.B) {
	const burst = 50
	for _, bc := range []struct {
		name       string
		maxServers string
	}{{"max-servers-10", "max-servers: 10"}, {"unlimited", ""}} {
		b.Run(bc.name, func(b *testing.B) {
			le := startLauncherWith(b, func(env *testenv.Env, servers, provider string) string {
				return zkServersYAML(servers) + fmt.Sprintf(`
labels:
  - name: namespace
providers:
  - name: %s
    driver: kubernetes
    context: kubepool-dev
    pools:
      - name: main
        %s
        labels:
          - name: namespace
            type: namespace
`, provider, bc.maxServers)
			}, nil)
			ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
			defer cancel()
			zkc, err := zk.Connect(ctx, le.servers, zk.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer zkc.Close()
			changed := zkc.WatchRequests(ctx)
			for b.Loop() {
				cpu0 := le.env.ReadCPU()
				start := time.Now()
				pending := map[string]bool{}
				for range burst {
					pending[le.zuul.Submit([]string{"namespace"}, 100, nil)] = true
				}
				var took []time.Duration
				// Nodes counting against the quota at once, as seen at each
				// request change: every record but those in state deleted
				// (their pods are gone; the record goes next).
				most := 0
				for len(pending) > 0 {
					select {
					case <-changed:
					case <-ctx.Done():
						b.Fatalf("%d requests not fulfilled: %v", len(pending), ctx.Err())
					}
					nodes, err := zkc.ListNodes(ctx)
					if err != nil {
						b.Fatal(err)
					}
					most = max(most, len(slices.DeleteFunc(nodes, func(n *zk.Node) bool { return n.State == zk.NodeDeleted })))
					reqs, err := zkc.ListRequests(ctx)
					if err != nil {
						b.Fatal(err)
					}
					for _, r := range reqs {
						if !pending[r.ID] || (r.State != zk.RequestFulfilled && r.State != zk.RequestFailed) {
							continue
						}
						if r.State == zk.RequestFailed {
							b.Fatalf("request %s failed", r.ID)
						}
						took = append(took, time.Since(start))
						delete(pending, r.ID)
						req, _, err := le.zuul.GetJSON(zuulRequestRoot + "/" + r.ID)
						if err != nil {
							b.Fatal(err)
						}
						_, ret := le.zuul.AcceptNodes(r.ID, req)
						ret()
					}
				}
				all := time.Since(start)
				if bc.maxServers != "" && most > 10 {
					b.Errorf("%d nodes at once, want at most max-servers 10", most)
				}
				b.ReportMetric(float64(most), "max-nodes")
				b.ReportMetric(burst/all.Seconds(), "nodes/s")
				reportLatency(b, took)
				reportCPU(b, le.env.ReadCPU().Since(cpu0))
			}
			// The next run starts on a cluster that is not deleting this
			// one's namespaces.
			waitNothingLeft(b, ctx, le.env, zkc, le.provider)
		})
	}
}
