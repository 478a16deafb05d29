package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kubepool/kubepool/internal/buildset"
	"github.com/kubepool/kubepool/internal/imageset"
	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/launcher"
	"github.com/kubepool/kubepool/internal/registrytoken"
	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/web"
	"github.com/kubepool/kubepool/internal/zk"
)

// buildsetEnv is a launcher whose provider has a buildset-registry: a
// token-auth registry (Debian's docker-registry) started for the test,
// whose realm is the launcher's own HTTP listener.
type buildsetEnv struct {
	*launcherEnv
	reg      *testenv.RegistryServer
	tokenURL string
	issuer   *registrytoken.Issuer
}

// buildsetTTL is the test's buildset ttl: short, so that the test sees a
// buildset end.
const buildsetTTL = 4 * time.Second

// buildsetFiles are a token key and certificate, and a promoter's
// password file, written for the test.
type buildsetFiles struct{ key, cert, promoterPassword string }

// buildsetPromoter is the test's promotion identity (buildset-registry
// promoters) and its password.
const buildsetPromoter, buildsetPromoterPassword = "release-bot", "e2e-promoter-password"

const buildsetService, buildsetIssuer = "kubepool-e2e-registry", "kubepool-e2e"

func newBuildsetFiles(t testing.TB) buildsetFiles {
	t.Helper()
	keyPEM, certPEM, err := registrytoken.GenerateKey("kubepool e2e buildsets", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := buildsetFiles{key: filepath.Join(dir, "token.key"), cert: filepath.Join(dir, "token.crt"), promoterPassword: filepath.Join(dir, "promoter.password")}
	for name, b := range map[string][]byte{f.key: keyPEM, f.cert: certPEM, f.promoterPassword: []byte(buildsetPromoterPassword + "\n")} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// buildsetRegistry starts the token-auth registry whose realm is the token
// endpoint of provider on a launcher listening on port. The realm names the
// launcher by host name (containerd and go-containerregistry reach it from
// this machine; go-containerregistry refuses private IP literals).
func buildsetRegistry(t testing.TB, f buildsetFiles, port int, provider string) (*testenv.RegistryServer, string) {
	t.Helper()
	tokenURL := fmt.Sprintf("http://localhost:%d%s", port, launcher.TokenPath(provider))
	reg := testenv.Registry(t, testenv.WithTokenAuth(testenv.TokenAuth{Realm: tokenURL, Service: buildsetService, Issuer: buildsetIssuer, RootCertBundle: f.cert}))
	return reg, tokenURL
}

// buildsetLauncherConfig is the launcher config of the buildset tests.
func buildsetLauncherConfig(env *testenv.Env, servers, provider string, reg *testenv.RegistryServer, f buildsetFiles, ttl time.Duration, warm int) string {
	return zkServersYAML(servers) + fmt.Sprintf(`
labels:
  - name: namespace
  - name: pod
  - name: shared
  - name: warm
    min-ready: %d
providers:
  - name: %s
    driver: kubernetes
    context: kubepool-dev
    boot-timeout: 120
    buildset-registry:
      url: %s
      repository-prefix: buildsets/
      public-repositories: [base/*]
      ttl: %d
      token-key: %s
      token-certificate: %s
      service: %s
      issuer: %s
      promoters:
        - {username: %s, password-file: %s}
    pools:
      - name: main
        labels:
          - {name: namespace, type: namespace}
          - {name: pod, type: pod, image: %s, cpu: 100m, memory: 64Mi}
          - {name: shared, type: namespace, buildset-shared: true}
          - {name: warm, type: namespace}
`, warm, provider, reg.URL(), int(ttl/time.Second), f.key, f.cert, buildsetService, buildsetIssuer, buildsetPromoter, f.promoterPassword, env.MachineImage)
}

func startBuildsetLauncher(t testing.TB, warm int) *buildsetEnv {
	t.Helper()
	f := newBuildsetFiles(t)
	// The launcher's listener first: it is the registry's realm.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	be := &buildsetEnv{}
	le := startLauncherWith(t, func(env *testenv.Env, servers, p string) string {
		be.reg, be.tokenURL = buildsetRegistry(t, f, port, p)
		allowPlainHTTP(t, env, be.reg.Host)
		t.Cleanup(func() { removeImages(t, env, be.reg.Host) })
		return buildsetLauncherConfig(env, servers, p, be.reg, f, buildsetTTL, warm)
	}, nil)
	be.launcherEnv = le
	srv := &web.Server{Source: le.l, Routes: le.l.Routes()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serving the launcher's HTTP: %v", err)
		}
	})
	be.issuer, err = registrytoken.LoadIssuer(buildsetIssuer, buildsetService, f.key, f.cert)
	if err != nil {
		t.Fatal(err)
	}
	return be
}

// allowPlainHTTP lets the dev cluster's containerd pull from the plain-HTTP
// registry at host: a hosts.toml in the certs.d directory its CRI config
// names (read at every pull; containerd is not restarted), removed when the
// test ends. hack/devcluster writes the same for its own registry.
func allowPlainHTTP(t testing.TB, env *testenv.Env, host string) {
	t.Helper()
	dir := filepath.Join(env.StateDir, "certs.d", host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	hosts := fmt.Sprintf("server = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+host, "http://"+host)
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
}

// buildsetRequest submits a request for label with buildset bs and waits
// for it; it returns the node and the function that returns it.
func (be *buildsetEnv) buildsetRequest(t *testing.T, ctx context.Context, label, bs string) (string, map[string]any, func()) {
	t.Helper()
	id := be.zuul.Submit([]string{label}, 100, map[string]any{"requestor_data": map[string]any{"build_set_uuid": bs, "job_name": "e2e-buildset"}})
	req := be.zuul.WaitRequest(ctx, id)
	if req["state"] != "fulfilled" {
		t.Fatalf("request %s (buildset %s) = %v, want fulfilled", id, bs, req)
	}
	nodes, ret := be.zuul.AcceptNodes(id, req)
	return req["nodes"].([]any)[0].(string), nodes[0], ret
}

// namespaceCredentials reads, with the node's own token, the registry
// credentials in its namespace.
func namespaceCredentials(t testing.TB, c kubernetes.Interface, namespace, registryHost string) authn.Basic {
	t.Helper()
	s, err := c.CoreV1().Secrets(namespace).Get(t.Context(), kube.RegistrySecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading the registry secret of %s with the node's token: %v", namespace, err)
	}
	if s.Type != corev1.SecretTypeDockerConfigJson {
		t.Errorf("registry secret type %s, want %s", s.Type, corev1.SecretTypeDockerConfigJson)
	}
	var cfg struct {
		Auths map[string]struct{ Username, Password string } `json:"auths"`
	}
	if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
		t.Fatalf("decoding the registry secret: %v", err)
	}
	a, ok := cfg.Auths[registryHost]
	if !ok || a.Username == "" || a.Password == "" {
		t.Fatalf("registry secret auths = %v, want credentials for %s", cfg.Auths, registryHost)
	}
	return authn.Basic{Username: a.Username, Password: a.Password}
}

// wantRefused checks that err is a 401 or 403 from the registry or its
// token endpoint.
func wantRefused(t *testing.T, what string, err error) {
	t.Helper()
	var terr *transport.Error
	if !errors.As(err, &terr) || (terr.StatusCode != http.StatusUnauthorized && terr.StatusCode != http.StatusForbidden) {
		t.Errorf("%s: %v, want 401 or 403 from the registry", what, err)
	}
}

// TestBuildsetRegistry: a namespace node of buildset B gets credentials for
// B's repositories; with them alone an image built in Go (the machine image
// plus a marker layer) is pushed to B's repository; a pod in another
// namespace node of B that names no image pull secret runs it; a node of
// buildset C can pull neither with its pods nor with its credentials; a pod
// node of B carries the docker config and KUBEPOOL_BUILDSET_REGISTRY; once
// B's nodes are used and the ttl has passed, B's tags are gone and its
// credentials get 401.
func TestBuildsetRegistry(t *testing.T) {
	be := startBuildsetLauncher(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	b, c := randHex(16), randHex(16)
	host := be.reg.Host

	parentID, parent, returnParent := be.buildsetRequest(t, ctx, "namespace", b)
	if dd, _ := parent["driver_data"].(map[string]any); dd["buildset"] != b {
		t.Errorf("node %s driver_data = %v, want buildset %s", parentID, parent["driver_data"], b)
	}
	parentNS := parent["external_id"].(string)
	parentClient := nodeClient(t, parent)
	creds := namespaceCredentials(t, parentClient, parentNS, host)
	if sa, err := be.env.Client.CoreV1().ServiceAccounts(parentNS).Get(ctx, kube.DefaultServiceAccount, metav1.GetOptions{}); err != nil ||
		len(sa.ImagePullSecrets) == 0 || sa.ImagePullSecrets[0].Name != kube.RegistrySecretName {
		t.Errorf("default service account of %s: %v, %v; want image pull secret %s", parentNS, sa, err, kube.RegistrySecretName)
	}

	// Build: the machine image plus a layer with a marker file, pushed with
	// the namespace's credentials only.
	base, err := crane.Pull(be.env.MachineImage, crane.Insecure, crane.WithContext(ctx))
	if err != nil {
		t.Fatalf("pulling the machine image: %v", err)
	}
	marker, err := crane.Layer(map[string][]byte{"kubepool-buildset-marker": []byte(b + "\n")})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, marker)
	if err != nil {
		t.Fatal(err)
	}
	appRef := fmt.Sprintf("%s/buildsets/%s/app:1", host, b)
	ref, err := name.ParseReference(appRef, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithAuth(&creds)); err != nil {
		t.Fatalf("pushing %s with buildset %s's credentials: %v", appRef, b, err)
	}

	// Promotion out of the buildset: the promoter's credentials give pull on
	// B's repository and push on the release one, so every blob is mounted
	// within the registry and none is uploaded; the release tag ends at the
	// digest B built.
	t.Run("promote", func(t *testing.T) {
		built, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		pc, err := imageset.NewClient(imageset.RegistryOptions{Creds: buildsetPromoter + ":" + buildsetPromoterPassword, Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		res, err := pc.Promote(ctx, []imageset.PromoteSource{{Ref: appRef, Digest: built.String()}},
			imageset.PromoteOptions{To: "v1", Destination: host + "/release", Journal: filepath.Join(t.TempDir(), "promote.journal")})
		if err != nil {
			t.Fatalf("promoting %s to %s/release with the promoter's credentials: %v", appRef, host, err)
		}
		if st := pc.Stats(); st.BlobUploadBytes != 0 {
			t.Errorf("promotion uploaded %d blob bytes, want 0 (cross-repository mounts)", st.BlobUploadBytes)
		}
		target, _ := name.ParseReference(host+"/release/app:v1", name.Insecure)
		d, err := remote.Head(target, remote.WithContext(ctx),
			remote.WithAuth(&authn.Basic{Username: buildsetPromoter, Password: buildsetPromoterPassword}))
		if err != nil || d.Digest != built {
			t.Fatalf("%s after the promotion: %v, %v; want %s", target, d, err, built)
		}
		t.Logf("promoted %s to %s (%d steps) with 0 blob bytes uploaded", appRef, target, len(res.Steps))
		// B's own credentials cannot write the release repository.
		rel, _ := name.ParseReference(host+"/release/app:from-buildset", name.Insecure)
		if err := remote.Write(rel, img, remote.WithContext(ctx), remote.WithAuth(&creds)); err == nil {
			t.Errorf("buildset %s's credentials pushed to %s, want refused", b, rel)
		}
	})

	// A child of B: its pods pull the image with no configuration.
	_, child, returnChild := be.buildsetRequest(t, ctx, "namespace", b)
	childNS := child["external_id"].(string)
	childClient := nodeClient(t, child)
	pod := markerPod(appRef)
	if _, err := childClient.CoreV1().Pods(childNS).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating a pod with %s in %s with the node's token: %v", appRef, childNS, err)
	}
	if out := podRunOutput(t, ctx, be.env.Client, childNS, pod.Name); strings.TrimSpace(out) != b {
		t.Errorf("marker read in the pod of buildset %s's child = %q, want %q", b, out, b)
	}

	// The image serves in the child's namespace behind a Service; a pod in
	// the parent's namespace (B's too) reaches it by its DNS name.
	if !clusterDNS(t, ctx, be.env) {
		t.Fatal("the dev cluster's kubelet gives pods no cluster DNS: it was started by an older hack/devcluster (make cluster-down cluster-up)")
	}
	serveAndFetch(t, ctx, be.env.Client, childClient, parentClient, childNS, parentNS, appRef, b)

	// Buildset C: its pods cannot pull B's image, its credentials get
	// nothing of B's or of repositories outside the public ones.
	_, other, returnOther := be.buildsetRequest(t, ctx, "namespace", c)
	otherNS := other["external_id"].(string)
	otherClient := nodeClient(t, other)
	if _, err := otherClient.CoreV1().Pods(otherNS).Create(ctx, markerPod(appRef), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	reason := waitPullFailure(t, ctx, be.env.Client, otherNS, "marker")
	if !strings.Contains(reason, "401") && !strings.Contains(reason, "403") && !strings.Contains(strings.ToLower(reason), "unauthorized") && !strings.Contains(strings.ToLower(reason), "denied") {
		t.Errorf("pull of %s by buildset %s failed with %q, want the registry's refusal", appRef, c, reason)
	}
	otherCreds := namespaceCredentials(t, otherClient, otherNS, host)
	_, err = remote.Get(ref, remote.WithContext(ctx), remote.WithAuth(&otherCreds))
	wantRefused(t, "pulling B's image with C's credentials", err)
	release, _ := name.ParseReference(host+"/release/app:1", name.Insecure)
	err = remote.Write(release, img, remote.WithContext(ctx), remote.WithAuth(&otherCreds))
	wantRefused(t, "pushing to a release repository with C's credentials", err)

	// A pod node of B gets the docker config and where to push.
	_, podNode, returnPod := be.buildsetRequest(t, ctx, "pod", b)
	cp := podNode["connection_port"].(map[string]any)
	p, err := be.env.Client.CoreV1().Pods(cp["namespace"].(string)).Get(ctx, cp["pod"].(string), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range p.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if want := host + "/buildsets/" + b; env[buildset.EnvRegistry] != want || env["DOCKER_CONFIG"] == "" || env["REGISTRY_AUTH_FILE"] == "" {
		t.Errorf("pod node environment = %v, want %s=%s, DOCKER_CONFIG and REGISTRY_AUTH_FILE", env, buildset.EnvRegistry, want)
	}
	// What a build tool in the pod finds: the config.json at
	// $REGISTRY_AUTH_FILE, whose credentials push to
	// $KUBEPOOL_BUILDSET_REGISTRY.
	out, err := exec.CommandContext(ctx, be.env.Kubectl, "--kubeconfig", be.env.Kubeconfig, "exec", "-n", p.Namespace, p.Name, "--",
		"sh", "-c", `echo "$KUBEPOOL_BUILDSET_REGISTRY"; cat "$REGISTRY_AUTH_FILE"`).Output()
	if err != nil {
		t.Fatalf("reading the registry config in pod %s/%s: %v", p.Namespace, p.Name, err)
	}
	where, config, _ := strings.Cut(string(out), "\n")
	var podCfg struct {
		Auths map[string]struct{ Username, Password string } `json:"auths"`
	}
	if err := json.Unmarshal([]byte(config), &podCfg); err != nil {
		t.Fatalf("config.json in the pod: %v\n%s", err, config)
	}
	podCreds := authn.Basic{Username: podCfg.Auths[host].Username, Password: podCfg.Auths[host].Password}
	toolRef, err := name.ParseReference(strings.TrimSpace(where)+"/tool:1", name.Insecure)
	if err != nil {
		t.Fatalf("KUBEPOOL_BUILDSET_REGISTRY in the pod = %q: %v", where, err)
	}
	if err := remote.Write(toolRef, img, remote.WithContext(ctx), remote.WithAuth(&podCreds)); err != nil {
		t.Errorf("pushing to %s with the pod's config.json credentials: %v", toolRef, err)
	}

	// Lifetime: C's node goes (C ends too); B's nodes go; a ttl later B's
	// tags are gone and its credentials get 401 from the token endpoint.
	returnOther()
	returnPod()
	returnChild()
	if status, challenge := tokenStatus(t, ctx, be.tokenURL, creds, "repository:buildsets/"+b+"/app:pull"); status != http.StatusOK {
		t.Errorf("token request with B's credentials while B has a node = %d (%s), want 200", status, challenge)
	}
	returnParent()
	be.waitGone(t, parentID, parentNS)
	registry := &buildset.Registry{URL: be.reg.URL(), Issuer: be.issuer}
	err = wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		tags, err := registry.Tags(ctx, "buildsets/"+b+"/app")
		return err == nil && len(tags) == 0, nil
	})
	if err != nil {
		t.Fatalf("buildset %s's tags still there after its last node and the ttl: %v", b, err)
	}
	status, challenge := tokenStatus(t, ctx, be.tokenURL, creds, "repository:buildsets/"+b+"/app:pull")
	if status != http.StatusUnauthorized || !strings.HasPrefix(challenge, "Basic realm=") {
		t.Errorf("token request with ended buildset %s's credentials = %d, WWW-Authenticate %q; want 401 with a Basic challenge", b, status, challenge)
	}
	_, err = remote.Get(ref, remote.WithContext(ctx), remote.WithAuth(&creds))
	wantRefused(t, "pulling with an ended buildset's credentials", err)
}

// markerPod runs image and prints the marker file.
func markerPod(image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "marker"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "marker", Image: image, Command: []string{"cat", "/kubepool-buildset-marker"},
				Resources: corev1.ResourceRequirements{},
			}},
		},
	}
}

// waitPullFailure waits until container of pod fails to pull its image and
// returns the kubelet's message.
func waitPullFailure(t *testing.T, ctx context.Context, c kubernetes.Interface, namespace, pod string) string {
	t.Helper()
	var msg string
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(namespace).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, s := range p.Status.ContainerStatuses {
			if w := s.State.Waiting; w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff") && w.Message != "" {
				msg = w.Reason + ": " + w.Message
				return true, nil
			}
			if s.State.Running != nil || s.State.Terminated != nil {
				return false, fmt.Errorf("pod %s/%s ran: it pulled an image it may not", namespace, pod)
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("waiting for the pull of pod %s/%s to fail: %v", namespace, pod, err)
	}
	t.Logf("pull refused: %s", msg)
	return msg
}

// tokenStatus asks the token endpoint for scope with creds and returns the
// status and the WWW-Authenticate header.
func tokenStatus(t *testing.T, ctx context.Context, url string, creds authn.Basic, scope string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"?scope="+scope, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(creds.Username, creds.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

// TestBuildsetSharedNamespace: on a buildset-shared label, a parent and a
// child of buildset B get the same namespace, each with a record and token
// of its own; another buildset gets another one; the namespace survives the
// parent's return while the child holds it and goes with the child. The
// namespaces are labelled with their buildset and admit each other's
// traffic by NetworkPolicy.
func TestBuildsetSharedNamespace(t *testing.T) {
	be := startBuildsetLauncher(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	b, d := randHex(16), randHex(16)

	parentID, parent, returnParent := be.buildsetRequest(t, ctx, "shared", b)
	childID, child, returnChild := be.buildsetRequest(t, ctx, "shared", b)
	_, other, returnOther := be.buildsetRequest(t, ctx, "shared", d)
	ns := parent["external_id"].(string)
	if child["external_id"] != ns {
		t.Fatalf("child of buildset %s got namespace %v, want the parent's %s", b, child["external_id"], ns)
	}
	if other["external_id"] == ns {
		t.Fatalf("buildset %s got buildset %s's namespace %s", d, b, ns)
	}
	parentToken := parent["connection_port"].(map[string]any)["token"]
	if childToken := child["connection_port"].(map[string]any)["token"]; childToken == parentToken || childToken == "" {
		t.Errorf("child's token is the parent's (or empty), want one of its own")
	}
	if dd, _ := child["driver_data"].(map[string]any); dd["shared_with"] != parentID {
		t.Errorf("child driver_data = %v, want shared_with %s", child["driver_data"], parentID)
	}

	// The buildset's namespaces admit each other.
	nsObj, err := be.env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if nsObj.Labels[kube.LabelBuildset] != b {
		t.Errorf("namespace %s labels = %v, want %s=%s", ns, nsObj.Labels, kube.LabelBuildset, b)
	}
	np, err := be.env.Client.NetworkingV1().NetworkPolicies(ns).Get(ctx, kube.PolicyName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	admitted := false
	for _, peer := range np.Spec.Ingress[0].From {
		if peer.NamespaceSelector != nil && peer.NamespaceSelector.MatchLabels[kube.LabelBuildset] == b {
			admitted = true
		}
	}
	if !admitted {
		t.Errorf("network policy of %s admits %+v, want the namespaces of buildset %s too", ns, np.Spec.Ingress, b)
	}

	// The parent goes, the namespace stays for the child, whose token still
	// works.
	returnParent()
	be.waitGone(t, parentID, "")
	childClient := nodeClient(t, child)
	if _, err := childClient.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("child's token in shared namespace %s after the parent went: %v", ns, err)
	}
	if _, err := be.env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		t.Fatalf("shared namespace %s went with the parent while the child holds it", ns)
	}
	// The parent's own token ended with it.
	parentClient := nodeClient(t, parent)
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	err = wait.PollUntilContextCancel(rctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := parentClient.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return apierrors.IsUnauthorized(err), nil
	})
	if err != nil {
		t.Errorf("the used parent's token still works in shared namespace %s: %v", ns, err)
	}
	// With the child, it goes.
	returnChild()
	returnOther()
	be.waitGone(t, childID, ns)
}

// TestBuildsetWarmNamespace: a warm (min-ready) namespace node handed to a
// request of buildset B gets B's label, NetworkPolicy peer and registry
// credentials in its service accounts, as a node launched for B does.
func TestBuildsetWarmNamespace(t *testing.T) {
	be := startBuildsetLauncher(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	// Wait for the warm node.
	var warmID string
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		nodes, err := be.zk.ListNodeRecords(ctx)
		if err != nil {
			return false, err
		}
		for _, n := range nodes {
			if n.State == "ready" && n.AllocatedTo == "" {
				warmID = n.ID
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("waiting for a warm node: %v", err)
	}
	b := randHex(16)
	id, node, ret := be.buildsetRequest(t, ctx, "warm", b)
	defer ret()
	if id != warmID {
		t.Fatalf("request got node %s, want the warm node %s", id, warmID)
	}
	ns := node["external_id"].(string)
	owned, err := be.env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created := owned.CreationTimestamp.Time; owned.Labels[kube.LabelBuildset] != b {
		t.Errorf("warm node %s's namespace %s (created %v) labels = %v, want %s=%s", id, ns, created, owned.Labels, kube.LabelBuildset, b)
	}
	if dd, _ := node["driver_data"].(map[string]any); dd["buildset"] != b {
		t.Errorf("warm node %s driver_data = %v, want buildset %s", id, node["driver_data"], b)
	}
	creds := namespaceCredentials(t, nodeClient(t, node), ns, be.reg.Host)
	if status, _ := tokenStatus(t, ctx, be.tokenURL, creds, "repository:buildsets/"+b+"/app:push,pull"); status != http.StatusOK {
		t.Errorf("token with the warm node's credentials = %d, want 200", status)
	}
	for _, sa := range []string{kube.ServiceAccountName, kube.DefaultServiceAccount} {
		obj, err := be.env.Client.CoreV1().ServiceAccounts(ns).Get(ctx, sa, metav1.GetOptions{})
		if err != nil || len(obj.ImagePullSecrets) == 0 || obj.ImagePullSecrets[len(obj.ImagePullSecrets)-1].Name != kube.RegistrySecretName {
			t.Errorf("service account %s/%s = %v, %v; want image pull secret %s", ns, sa, obj, err, kube.RegistrySecretName)
		}
	}
	np, err := be.env.Client.NetworkingV1().NetworkPolicies(ns).Get(ctx, kube.PolicyName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if from := np.Spec.Ingress[0].From; len(from) < 2 || from[len(from)-1].NamespaceSelector == nil {
		t.Errorf("warm node's network policy ingress = %+v, want buildset %s's namespaces admitted", np.Spec.Ingress, b)
	}
}

// TestBuildsetLifetimeKill: B's last node is used; the launcher process is
// SIGKILLed before the ttl has passed and another is started in its place:
// B's tags still go once the ttl has passed, and B's credentials get 401
// from the new launcher's token endpoint.
func TestBuildsetLifetimeKill(t *testing.T) {
	env := testenv.Cluster(t)
	bin := kubepoolBinary(t)
	provider := "e2e-" + randHex(3)
	servers := env.ZooKeeper + "/kubepool-e2e-" + randHex(4)
	f := newBuildsetFiles(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // the launcher processes listen there
	reg, tokenURL := buildsetRegistry(t, f, port, provider)
	const ttl = 10 * time.Second
	cfg := filepath.Join(t.TempDir(), "nodepool.yaml")
	if err := os.WriteFile(cfg, []byte(buildsetLauncherConfig(env, servers, provider, reg, f, ttl, 0)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	zkc, err := zk.Connect(ctx, servers, zk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer zkc.Close()
	t.Cleanup(func() {
		d, err := kube.NewDriver(env.RESTConfig)
		if err != nil {
			return
		}
		owned, _ := d.List(context.Background(), provider)
		for _, o := range owned {
			_ = d.Delete(context.Background(), o.Namespace, false)
		}
	})
	z := newZuul(t, servers)
	a := startLauncherProcess(t, bin, cfg, env.Kubeconfig, "launcher-a", "--listen", listen)

	b := randHex(16)
	id := z.Submit([]string{"namespace"}, 100, map[string]any{"requestor_data": map[string]any{"build_set_uuid": b}})
	req := z.WaitRequest(ctx, id)
	if req["state"] != "fulfilled" {
		t.Fatalf("request %s = %v, want fulfilled", id, req)
	}
	nodes, ret := z.AcceptNodes(id, req)
	nodeID := req["nodes"].([]any)[0].(string)
	ns := nodes[0]["external_id"].(string)
	creds := namespaceCredentials(t, nodeClient(t, nodes[0]), ns, reg.Host)
	ref, err := name.ParseReference(reg.Host+"/buildsets/"+b+"/app:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := crane.Image(map[string][]byte{"marker": []byte(b)})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithAuth(&creds)); err != nil {
		t.Fatalf("pushing with buildset %s's credentials through launcher a's token endpoint: %v", b, err)
	}

	// The last node goes; launcher a dies before the ttl has passed.
	nodesChanged := zkc.WatchNodes(ctx)
	ret()
	for {
		if _, err := zkc.GetNode(ctx, nodeID); errors.Is(err, zk.ErrNoNode) {
			break
		}
		select {
		case <-nodesChanged:
		case <-ctx.Done():
			t.Fatalf("node %s not deleted: %v", nodeID, ctx.Err())
		}
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.done
	registry := &buildset.Registry{URL: reg.URL()}
	registry.Issuer, err = registrytoken.LoadIssuer(buildsetIssuer, buildsetService, f.key, f.cert)
	if err != nil {
		t.Fatal(err)
	}
	if tags, err := registry.Tags(ctx, "buildsets/"+b+"/app"); err != nil || len(tags) != 1 {
		t.Fatalf("tags of buildset %s right after its last node went = %v, %v; want [1] (the ttl is %v)", b, tags, err, ttl)
	}

	// Another launcher finishes the job.
	startLauncherProcess(t, bin, cfg, env.Kubeconfig, "launcher-b", "--listen", listen)
	err = wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		tags, err := registry.Tags(ctx, "buildsets/"+b+"/app")
		return err == nil && len(tags) == 0, nil
	})
	if err != nil {
		t.Fatalf("buildset %s's tags still there with launcher b: %v", b, err)
	}
	err = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		status, _ := tokenStatusErr(ctx, tokenURL, creds, "repository:buildsets/"+b+"/app:pull")
		return status == http.StatusUnauthorized, nil
	})
	if err != nil {
		t.Errorf("buildset %s's credentials at launcher b's token endpoint: want 401: %v", b, err)
	}
}

// tokenStatusErr is tokenStatus for use in a poll: connection errors (the
// launcher not listening yet) are status 0.
func tokenStatusErr(ctx context.Context, url string, creds authn.Basic, scope string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"?scope="+scope, nil)
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth(creds.Username, creds.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// clusterDNS reports whether the dev cluster's kubelet gives pods a cluster
// DNS resolver (its configz has clusterDNS).
func clusterDNS(t *testing.T, ctx context.Context, env *testenv.Env) bool {
	t.Helper()
	raw, err := env.Client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", env.Node, "proxy", "configz").DoRaw(ctx)
	if err != nil {
		t.Logf("reading the kubelet's configz: %v", err)
		return false
	}
	var cfg struct {
		KubeletConfig struct {
			ClusterDNS []string `json:"clusterDNS"`
		} `json:"kubeletconfig"`
	}
	return json.Unmarshal(raw, &cfg) == nil && len(cfg.KubeletConfig.ClusterDNS) > 0
}

// serveAndFetch runs image as a web server in namespace server behind a
// Service "app", fetches the marker from a pod in namespace client by the
// Service's DNS name, and checks it is marker.
func serveAndFetch(t *testing.T, ctx context.Context, admin, serverClient, clientClient kubernetes.Interface, serverNS, clientNS, appRef, marker string) {
	t.Helper()
	server := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: map[string]string{"app": "app"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: appRef,
			Command: []string{"python3", "-m", "http.server", "8080", "--directory", "/"},
			Ports:   []corev1.ContainerPort{{ContainerPort: 8080}},
		}}},
	}
	if _, err := serverClient.CoreV1().Pods(serverNS).Create(ctx, server, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the server pod: %v", err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "app"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	if _, err := serverClient.CoreV1().Services(serverNS).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the Service: %v", err)
	}
	url := "http://app." + serverNS + ".svc.cluster.local/kubepool-buildset-marker"
	fetch := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "fetch"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "fetch", Image: appRef,
				Command: []string{"python3", "-c", `import sys, time, urllib.request
deadline = time.time() + 90
while True:
    try:
        print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip(), flush=True)
        break
    except Exception as e:
        if time.time() > deadline:
            print("FAILED", e, flush=True)
            sys.exit(1)
        time.sleep(0.5)
`, url},
			}},
		},
	}
	if _, err := clientClient.CoreV1().Pods(clientNS).Create(ctx, fetch, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the client pod in %s: %v", clientNS, err)
	}
	if out := podRunOutput(t, ctx, admin, clientNS, "fetch"); strings.TrimSpace(out) != marker {
		t.Errorf("%s from namespace %s = %q, want %q", url, clientNS, out, marker)
	}

}

// TestBuildsetGrantExistingAccounts: GrantBuildset on a namespace whose
// default service account exists already with a pull secret of its own (the
// service-account controller made it, a job added one) adds the registry
// Secret beside it, in both service accounts; a second grant replaces the
// Secret and adds nothing twice.
func TestBuildsetGrantExistingAccounts(t *testing.T) {
	env := testenv.Cluster(t)
	d := newDriver(t, env)
	ns, _ := newNamespaceNode(t, d, "e2e-grant", "0000000077")
	ctx := t.Context()
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := env.Client.CoreV1().ServiceAccounts(ns).Get(ctx, kube.DefaultServiceAccount, metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("the default service account of %s never came: %v", ns, err)
	}
	sa, err := env.Client.CoreV1().ServiceAccounts(ns).Get(ctx, kube.DefaultServiceAccount, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sa.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "jobs-own"}}
	if _, err := env.Client.CoreV1().ServiceAccounts(ns).Update(ctx, sa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	access := &kube.BuildsetAccess{ID: "b1", DockerConfig: []byte(`{"auths":{}}`)}
	if err := d.GrantBuildset(ctx, ns, kube.KindNamespace, access); err != nil {
		t.Fatalf("GrantBuildset = %v", err)
	}
	// Again, as a hand-out after one that did not finish would: the
	// Secret is replaced, nothing is added twice.
	access2 := &kube.BuildsetAccess{ID: "b1", DockerConfig: []byte(`{"auths":{"second":{}}}`)}
	if err := d.GrantBuildset(ctx, ns, kube.KindNamespace, access2); err != nil {
		t.Errorf("second GrantBuildset = %v", err)
	}
	if s, err := env.Client.CoreV1().Secrets(ns).Get(ctx, kube.RegistrySecretName, metav1.GetOptions{}); err != nil || string(s.Data[corev1.DockerConfigJsonKey]) != string(access2.DockerConfig) {
		t.Errorf("registry secret after the second grant: %v, %v; want the second's config", s, err)
	}
	for sa, want := range map[string][]string{
		kube.DefaultServiceAccount: {"jobs-own", kube.RegistrySecretName},
		kube.ServiceAccountName:    {kube.RegistrySecretName},
	} {
		obj, err := env.Client.CoreV1().ServiceAccounts(ns).Get(ctx, sa, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range obj.ImagePullSecrets {
			got = append(got, s.Name)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("image pull secrets of %s/%s = %v, want %v", ns, sa, got, want)
		}
	}
	np, err := env.Client.NetworkingV1().NetworkPolicies(ns).Get(ctx, kube.PolicyName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if from := np.Spec.Ingress[0].From; len(from) != 2 {
		t.Errorf("network policy of %s admits %+v after two grants, want its own pods and buildset b1's namespaces, once", ns, from)
	}
	nsObj, err := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil || nsObj.Labels[kube.LabelBuildset] != "b1" {
		t.Errorf("namespace %s labels = %v (%v), want %s=b1", ns, nsObj.Labels, err, kube.LabelBuildset)
	}
}
