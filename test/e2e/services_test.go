package e2e

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/kubepool/kubepool/internal/testenv"
)

// TestServicesByName: what a native container job does with the namespace
// it is given — run a server, put a Service in front of it, and reach it by
// name from another pod — works in the dev cluster (kube-proxy programs the
// ClusterIP, CoreDNS on the node's address names it, the kubelet gives
// pods that resolver). Everything is created with the namespace node's own
// token, as a job would.
func TestServicesByName(t *testing.T) {
	env := testenv.Cluster(t)
	d := newDriver(t, env)
	ns, conn := newNamespaceNode(t, d, "e2e-svc", "0000000031")
	c := tokenClient(t, conn)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	marker := "kubepool-" + randHex(8)
	server := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "web", Image: env.MachineImage,
			Command: []string{"sh", "-c", `mkdir -p /tmp/www && echo "$MARKER" > /tmp/www/index.html && exec python3 -m http.server 8080 --directory /tmp/www`},
			Env:     []corev1.EnvVar{{Name: "MARKER", Value: marker}},
			Ports:   []corev1.ContainerPort{{ContainerPort: 8080}},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
				PeriodSeconds: 1,
			},
		}}},
	}
	if _, err := c.CoreV1().Pods(ns).Create(ctx, server, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the server pod with the node's token: %v", err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := c.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the Service with the node's token: %v", err)
	}

	// The client tries each name until it answers (the server may not be
	// ready yet), within a bound, and prints what it got.
	fetch := `import sys, time, urllib.request
deadline = time.time() + 90
for url in sys.argv[1:]:
    while True:
        try:
            print(url, urllib.request.urlopen(url, timeout=5).read().decode().strip(), flush=True)
            break
        except Exception as e:
            if time.time() > deadline:
                print(url, "FAILED", e, flush=True)
                sys.exit(1)
            time.sleep(0.5)
`
	urls := []string{
		"http://web." + ns + ".svc.cluster.local", // fully qualified
		"http://web", // the namespace's search path
	}
	client := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "client"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "client", Image: env.MachineImage,
				Command: append([]string{"python3", "-c", fetch}, urls...),
			}},
		},
	}
	if _, err := c.CoreV1().Pods(ns).Create(ctx, client, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the client pod: %v", err)
	}
	logs := podRunOutput(t, ctx, env.Client, ns, "client")
	for _, u := range urls {
		if want := u + " " + marker; !strings.Contains(logs, want) {
			t.Errorf("client output lacks %q:\n%s", want, logs)
		}
	}

	// A name that does not exist is answered at once, not after a
	// resolver timeout (nothing beyond this machine is reachable).
	t.Run("unknown name", func(t *testing.T) {
		probe := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "nxdomain"},
			Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{
					Name: "nxdomain", Image: env.MachineImage,
					Command: []string{"python3", "-c", `import socket, time
for name in ("nothing-here." + "` + ns + `" + ".svc.cluster.local", "example.invalid"):
    t0 = time.monotonic()
    try:
        socket.getaddrinfo(name, 80)
        print(name, "RESOLVED")
    except socket.gaierror as e:
        print(name, "NXDOMAIN" if e.errno == socket.EAI_NONAME else e, "%.3f" % (time.monotonic() - t0))
`},
				}},
			},
		}
		if _, err := c.CoreV1().Pods(ns).Create(ctx, probe, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		logs := podRunOutput(t, ctx, env.Client, ns, "nxdomain")
		for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
			var name, verdict string
			var took float64
			if n, _ := fmt.Sscanf(line, "%s %s %f", &name, &verdict, &took); n != 3 || verdict != "NXDOMAIN" {
				t.Errorf("resolving an unknown name: %q, want NXDOMAIN", line)
				continue
			}
			t.Logf("%s: NXDOMAIN in %.3f s", name, took)
		}
	})
}

// podRunOutput waits for a pod to succeed and returns its log; a pod that
// fails fails the test, with its log.
func podRunOutput(t *testing.T, ctx context.Context, c kubernetes.Interface, namespace, pod string) string {
	t.Helper()
	phase := waitPodDone(t, ctx, c, namespace, pod)
	out := podLogs(t, ctx, c, namespace, pod)
	if phase != corev1.PodSucceeded {
		t.Fatalf("pod %s/%s %s; its output:\n%s", namespace, pod, phase, out)
	}
	return out
}

// waitPodDone waits for a pod to succeed or fail, and returns its phase.
func waitPodDone(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string) corev1.PodPhase {
	t.Helper()
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		t.Fatalf("watching pod %s/%s: %v", ns, name, err)
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		if ev.Type == watch.Error {
			break
		}
		if p, ok := ev.Object.(*corev1.Pod); ok && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) {
			return p.Status.Phase
		}
	}
	p, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err == nil && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) {
		return p.Status.Phase
	}
	t.Fatalf("pod %s/%s did not finish: %v (%v)", ns, name, ctx.Err(), err)
	return ""
}

func podLogs(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string) string {
	t.Helper()
	rc, err := cs.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).Stream(ctx)
	if err != nil {
		t.Fatalf("logs of %s/%s: %v", ns, name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("logs of %s/%s: %v", ns, name, err)
	}
	return string(b)
}
