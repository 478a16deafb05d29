package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubepool/kubepool/internal/buildset"
	"github.com/kubepool/kubepool/internal/kube"
	"github.com/kubepool/kubepool/internal/registrytoken"
	"github.com/kubepool/kubepool/internal/zk"
)

// buildsetConfig is a provider with a buildset registry; %s are the token
// key and certificate files.
const buildsetConfig = `
zookeeper-servers: [{host: 127.0.0.1}]
labels: [{name: pod}, {name: ns}, {name: shared}]
providers:
  - name: k8s
    driver: kubernetes
    context: c
    launch-retries: 2
    buildset-registry:
      url: http://registry.example.org:5000
      ttl: 1h
      token-key: %s
      token-certificate: %s
    pools:
      - name: main
        labels:
          - {name: pod, type: pod, image: "example.org/m:1"}
          - {name: ns, type: namespace}
          - {name: shared, type: namespace, buildset-shared: true}
`

func buildsetRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	keyPEM, certPEM, err := registrytoken.GenerateKey("unit", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key, cert := filepath.Join(dir, "k.pem"), filepath.Join(dir, "c.pem")
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cert, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return newRig(t, fmt.Sprintf(buildsetConfig, key, cert), o)
}

// submitBuildset asks for labels for buildset bs.
func (r *rig) submitBuildset(bs string, labels ...string) string {
	r.t.Helper()
	req := &zk.Request{NodeTypes: labels, Requestor: "zuul-test", RequestorData: map[string]any{"build_set_uuid": bs}}
	if err := r.zuul.SubmitRequest(r.t.Context(), req, 100); err != nil {
		r.t.Fatal(err)
	}
	return req.ID
}

// TestBuildsetNodes: nodes of a request with a buildset get credentials for
// it (a namespace's in its Secret, a pod's also mounted), the buildset is on
// their records, an attempt that failed has its credential revoked; the
// token endpoint serves the credentials and refuses others with a Basic
// challenge; the credentials of nodes that are gone are revoked.
func TestBuildsetNodes(t *testing.T) {
	defer func(d time.Duration) { orphanAge = d }(orphanAge)
	orphanAge = 0
	r := buildsetRig(t, rigOptions{interval: 200 * time.Millisecond})
	var pods atomic.Int32
	r.driver.setCreateHook(func(ctx context.Context, res kube.Resource) error {
		if res.Kind == kube.KindPod && pods.Add(1) == 1 {
			return errors.New("first pod attempt fails")
		}
		return nil
	})
	const bs = "0123456789abcdef0123456789abcdef"
	id := r.submitBuildset(bs, "pod", "ns")
	req := r.waitState(id, zk.RequestFulfilled)

	store := &buildset.Store{ZK: r.zuul}
	rec, err := store.Get(t.Context(), bs)
	if err != nil {
		t.Fatalf("buildset record: %v", err)
	}
	byNode := map[string]string{}
	for cid, c := range rec.Credentials {
		byNode[c.Node] = cid
	}
	if len(rec.Credentials) != 2 {
		t.Errorf("buildset %s has %d credentials (%v), want 2: the failed attempt's is revoked", bs, len(rec.Credentials), byNode)
	}
	for _, nid := range req.Nodes {
		n, err := r.zuul.GetNode(t.Context(), nid)
		if err != nil {
			t.Fatal(err)
		}
		dd := driverDataOf(n)
		if dd.Buildset != bs || byNode[nid] != dd.BuildsetCredential {
			t.Errorf("node %s driver_data = %+v, want buildset %s, credential %s", nid, dd, bs, byNode[nid])
		}
	}

	var podRes, nsRes kube.Resource
	for _, c := range r.driver.created {
		if c.Kind == kube.KindPod {
			podRes = c
		} else {
			nsRes = c
		}
	}
	for _, res := range []kube.Resource{podRes, nsRes} {
		if res.Buildset == nil || res.Buildset.ID != bs || len(res.Buildset.DockerConfig) == 0 {
			t.Fatalf("%s resource buildset = %+v, want %s with a docker config", res.Kind, res.Buildset, bs)
		}
	}
	env := map[string]string{}
	for _, e := range podRes.Pod.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if want := "registry.example.org:5000/buildsets/" + bs; env[buildset.EnvRegistry] != want {
		t.Errorf("pod env %s = %q, want %q", buildset.EnvRegistry, env[buildset.EnvRegistry], want)
	}

	// The token endpoint, as the launcher's listener serves it.
	mux := http.NewServeMux()
	for p, h := range r.l.Routes() {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	var cfg struct {
		Auths map[string]struct{ Username, Password string } `json:"auths"`
	}
	if err := json.Unmarshal(nsRes.Buildset.DockerConfig, &cfg); err != nil {
		t.Fatal(err)
	}
	creds := cfg.Auths["registry.example.org:5000"]
	token := func(user, password string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+TokenPath("k8s")+"?scope=repository:buildsets/"+bs+"/app:push,pull", nil)
		req.SetBasicAuth(user, password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
	}
	if code, _ := token(creds.Username, creds.Password); code != http.StatusOK {
		t.Errorf("token with the namespace node's credentials = %d, want 200", code)
	}
	if code, challenge := token(creds.Username, creds.Password+"x"); code != http.StatusUnauthorized || !strings.HasPrefix(challenge, "Basic realm=") {
		t.Errorf("token with a wrong password = %d, WWW-Authenticate %q; want 401 with a Basic challenge", code, challenge)
	}
	if ok, refused := testutil.ToFloat64(r.l.metrics.TokenRequests.WithLabelValues("k8s", "200")), testutil.ToFloat64(r.l.metrics.TokenRequests.WithLabelValues("k8s", "401")); ok != 1 || refused != 1 {
		t.Errorf("token requests counted: 200 %v, 401 %v; want 1 and 1", ok, refused)
	}

	// Used, the nodes go, and so do their credentials (the buildset lives
	// on for its ttl).
	r.accept(id)
	r.waitFor("the gone nodes' credentials to be revoked", func() bool {
		rec, err := store.Get(t.Context(), bs)
		return err == nil && len(rec.Credentials) == 0
	})
	if code, _ := token(creds.Username, creds.Password); code != http.StatusUnauthorized {
		t.Errorf("token with a gone node's credentials = %d, want 401", code)
	}
	r.settled()
}

// TestBuildsetSharedJoin: requests of one buildset for a buildset-shared
// label get one namespace, another buildset another; the namespace goes
// with the last node that uses it, and the leak sweep leaves it before.
func TestBuildsetSharedJoin(t *testing.T) {
	lists := &listCounter{}
	r := buildsetRig(t, rigOptions{interval: 100 * time.Millisecond, before: func(r *rig) {
		lists.fakeDriver = r.driver
		r.l.drivers["k8s"] = lists // the leak sweep's driver
	}})
	first := r.submitBuildset("aaaa", "shared")
	r.waitState(first, zk.RequestFulfilled)
	second := r.submitBuildset("aaaa", "shared")
	r.waitState(second, zk.RequestFulfilled)
	other := r.submitBuildset("bbbb", "shared")
	r.waitState(other, zk.RequestFulfilled)
	node := func(req string) *zk.Node {
		n, err := r.zuul.GetNode(t.Context(), r.request(req).Nodes[0])
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	a, b, c := node(first), node(second), node(other)
	if a.ExternalID != b.ExternalID || a.ExternalID == c.ExternalID {
		t.Fatalf("namespaces %s, %s (buildset aaaa), %s (bbbb); want the first two equal, the third not", a.ExternalID, b.ExternalID, c.ExternalID)
	}
	if len(r.driver.created) != 2 {
		t.Errorf("%d namespaces created, want 2", len(r.driver.created))
	}
	r.accept(first)
	r.waitFor("the first node's record to go", func() bool {
		_, err := r.zuul.GetNode(t.Context(), a.ID)
		return errors.Is(err, zk.ErrNoNode)
	})
	// Several cleanup passes and leak sweeps (every 100 ms) go by: the
	// namespace, whose owner label names the first node, stays.
	passes := lists.n.Load()
	r.waitFor("two more leak sweeps", func() bool { return lists.n.Load() >= passes+2 })
	live := r.driver.live()
	if !contains(live, a.ExternalID) {
		t.Fatalf("shared namespace %s went while node %s uses it (live: %v)", a.ExternalID, b.ID, live)
	}
	r.accept(second)
	r.accept(other)
	r.settled()
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// listCounter counts the leak sweep's listings.
type listCounter struct {
	*fakeDriver
	n atomic.Int32
}

func (c *listCounter) List(ctx context.Context, provider string) ([]kube.Owned, error) {
	defer c.n.Add(1)
	return c.fakeDriver.List(ctx, provider)
}
