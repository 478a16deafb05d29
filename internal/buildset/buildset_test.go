package buildset

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/kubepool/kubepool/internal/registrytoken"
	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

// env is a token-auth registry (Debian's docker-registry) whose token
// endpoint is a registrytoken.Handler with the buildset Authorizer, on a
// real ZooKeeper.
type env struct {
	reg      *testenv.RegistryServer
	issuer   *registrytoken.Issuer
	store    *Store
	policy   Policy
	registry *Registry
	clock    *clock
}

// clock is a settable time for the store and the sweeper; the issuer keeps
// real time (the registry checks tokens against it).
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newEnv(t *testing.T) *env {
	t.Helper()
	keyPEM, certPEM, err := registrytoken.GenerateKey("kubepool buildsets", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile, certFile := filepath.Join(dir, "token.key"), filepath.Join(dir, "token.crt")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	iss, err := registrytoken.LoadIssuer("kubepool", "buildset-registry", keyFile, certFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := zk.Connect(t.Context(), testenv.ZooKeeper(t), zk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	clk := &clock{t: time.Now()}
	e := &env{
		issuer: iss,
		store:  &Store{ZK: c, Now: clk.now},
		policy: Policy{Prefix: "buildsets/", Public: []string{"base/*"}},
		clock:  clk,
	}
	// The realm names the token server by host name: go-containerregistry
	// refuses realms that are private IP literals other than the
	// registry's own host:port.
	tokens := httptest.NewServer(&registrytoken.Handler{Issuer: iss, Authorizer: &Authorizer{Store: e.store, Policy: e.policy}, Realm: "kubepool"})
	t.Cleanup(tokens.Close)
	e.reg = testenv.Registry(t, testenv.WithTokenAuth(testenv.TokenAuth{
		Realm: strings.Replace(tokens.URL, "127.0.0.1", "localhost", 1) + "/token", Service: iss.Service, Issuer: iss.Name, RootCertBundle: certFile,
	}))
	e.registry = &Registry{URL: e.reg.URL(), Issuer: iss}
	return e
}

func (e *env) ref(t *testing.T, repo string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(e.reg.Host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// adminPush pushes img with a token kubepool grants itself.
func (e *env) adminPush(t *testing.T, repo string, img v1.Image) {
	t.Helper()
	tok, err := e.issuer.Issue("kubepool", []registrytoken.Access{{Type: "repository", Name: e.ref(t, repo).Context().RepositoryStr(), Actions: []string{"pull", "push"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(e.ref(t, repo), img, remote.WithContext(t.Context()), remote.WithAuth(&authn.Bearer{Token: tok.Token})); err != nil {
		t.Fatalf("pushing %s as kubepool: %v", repo, err)
	}
}

func basic(c Credentials) remote.Option {
	return remote.WithAuth(&authn.Basic{Username: c.Username, Password: c.Password})
}

// wantDenied checks that err is the registry's or the token server's 401 or
// 403.
func wantDenied(t *testing.T, what string, err error) {
	t.Helper()
	var terr *transport.Error
	if !errors.As(err, &terr) {
		t.Errorf("%s: error %v, want a 401/403 from the registry", what, err)
		return
	}
	if terr.StatusCode != http.StatusUnauthorized && terr.StatusCode != http.StatusForbidden {
		t.Errorf("%s: status %d (%v), want 401 or 403", what, terr.StatusCode, err)
	}
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestBuildsetRegistry(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	credB, err := e.store.NewCredentials(ctx, "b", "0000000001")
	if err != nil {
		t.Fatal(err)
	}
	credC, err := e.store.NewCredentials(ctx, "c", "0000000002")
	if err != nil {
		t.Fatal(err)
	}
	base := randomImage(t)
	e.adminPush(t, "base/debian:1", base)
	e.adminPush(t, "release/app:1", randomImage(t))

	img := randomImage(t)
	want, _ := img.Digest()
	appB := e.ref(t, "buildsets/b/app:1")
	if err := remote.Write(appB, img, remote.WithContext(ctx), basic(credB)); err != nil {
		t.Fatalf("pushing %s with B's credentials: %v", appB, err)
	}
	t.Run("B pulls its image", func(t *testing.T) {
		got, err := remote.Image(appB, remote.WithContext(ctx), basic(credB))
		if err != nil {
			t.Fatalf("pulling %s with B's credentials: %v", appB, err)
		}
		if d, _ := got.Digest(); d != want {
			t.Errorf("pulled digest %s, want %s", d, want)
		}
		// Every layer, not only the manifest.
		layers, _ := got.Layers()
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatalf("fetching a layer: %v", err)
			}
			rc.Close()
		}
	})
	t.Run("B pulls a public image", func(t *testing.T) {
		if _, err := remote.Image(e.ref(t, "base/debian:1"), remote.WithContext(ctx), basic(credB)); err != nil {
			t.Errorf("pulling base/debian:1 with B's credentials: %v", err)
		}
	})
	t.Run("B pushes a second image mounting a public layer", func(t *testing.T) {
		if err := remote.Write(e.ref(t, "buildsets/b/base:1"), base, remote.WithContext(ctx), basic(credB)); err != nil {
			t.Errorf("pushing buildsets/b/base:1: %v", err)
		}
	})
	t.Run("C cannot pull B's image", func(t *testing.T) {
		_, err := remote.Image(appB, remote.WithContext(ctx), basic(credC))
		wantDenied(t, "pulling B's image with C's credentials", err)
	})
	t.Run("C cannot push to B's repositories", func(t *testing.T) {
		err := remote.Write(e.ref(t, "buildsets/b/app:evil"), randomImage(t), remote.WithContext(ctx), basic(credC))
		wantDenied(t, "pushing to B's repository with C's credentials", err)
	})
	t.Run("C cannot push to or pull release repositories", func(t *testing.T) {
		err := remote.Write(e.ref(t, "release/app:2"), randomImage(t), remote.WithContext(ctx), basic(credC))
		wantDenied(t, "pushing to release/app with C's credentials", err)
		_, err = remote.Image(e.ref(t, "release/app:1"), remote.WithContext(ctx), basic(credC))
		wantDenied(t, "pulling release/app with C's credentials", err)
	})
	t.Run("C cannot push to the public repositories", func(t *testing.T) {
		err := remote.Write(e.ref(t, "base/debian:evil"), randomImage(t), remote.WithContext(ctx), basic(credC))
		wantDenied(t, "pushing to base/debian with C's credentials", err)
	})
	t.Run("anonymous pulls public, nothing else", func(t *testing.T) {
		if _, err := remote.Image(e.ref(t, "base/debian:1"), remote.WithContext(ctx)); err != nil {
			t.Errorf("pulling base/debian:1 anonymously: %v", err)
		}
		_, err := remote.Image(appB, remote.WithContext(ctx))
		wantDenied(t, "pulling B's image anonymously", err)
	})
	t.Run("wrong secret", func(t *testing.T) {
		bad := credB
		bad.Password = credB.ID + ".not-the-secret"
		_, err := remote.Image(appB, remote.WithContext(ctx), basic(bad))
		wantDenied(t, "pulling with a wrong secret", err)
	})
	t.Run("revoked credential", func(t *testing.T) {
		other, err := e.store.NewCredentials(ctx, "b", "0000000003")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := remote.Image(appB, remote.WithContext(ctx), basic(other)); err != nil {
			t.Fatalf("pulling with B's second credential: %v", err)
		}
		if err := e.store.Revoke(ctx, "b", other.ID); err != nil {
			t.Fatal(err)
		}
		_, err = remote.Image(appB, remote.WithContext(ctx), basic(other))
		wantDenied(t, "pulling with a revoked credential", err)
		if _, err := remote.Image(appB, remote.WithContext(ctx), basic(credB)); err != nil {
			t.Errorf("B's first credential stopped working when the second was revoked: %v", err)
		}
	})
	t.Run("repositories by prefix", func(t *testing.T) {
		for _, r := range []string{"buildsets/b1/x:1", "buildsets/b-x/y:1", "buildsets/ba/z:1"} {
			e.adminPush(t, r, base)
		}
		for _, pageSize := range []int{0, 1, 2} {
			r := *e.registry
			r.PageSize = pageSize
			got, err := r.Repositories(ctx, e.policy.Repository("b"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"buildsets/b/app", "buildsets/b/base"}, got); diff != "" {
				t.Errorf("Repositories(buildsets/b/), page size %d, mismatch (-want +got):\n%s", pageSize, diff)
			}
		}
	})

	// Lifetime: B has no node any more; C still has one.
	sw := &Sweeper{Store: e.store, Registry: e.registry, Policy: e.policy, TTL: time.Hour}
	live := map[string]bool{"c": true}
	res, err := sw.Sweep(ctx, live)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Revoked)+len(res.Deleted) != 0 {
		t.Fatalf("Sweep before the TTL = %+v, want nothing ended", res)
	}
	e.clock.t = e.clock.t.Add(time.Hour + time.Second) // past the TTL, whatever float seconds round to
	res, err = sw.Sweep(ctx, live)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(SweepResult{Seen: []string{"c"}, Revoked: []string{"b"}, Deleted: []string{"b"}}, res); diff != "" {
		t.Errorf("Sweep after the TTL mismatch (-want +got):\n%s", diff)
	}
	if _, err := remote.Image(appB, remote.WithContext(ctx), basic(credB)); err == nil {
		t.Error("B's credentials still pull after the sweep")
	} else {
		wantDenied(t, "pulling with B's credentials after the sweep", err)
	}
	for _, repo := range []string{"buildsets/b/app", "buildsets/b/base"} {
		tags, err := e.registry.Tags(ctx, repo)
		if err != nil || len(tags) != 0 {
			t.Errorf("Tags(%s) after the sweep = %v, %v; want none", repo, tags, err)
		}
	}
	// Other buildsets' images and the public ones are untouched.
	for _, repo := range []string{"buildsets/b1/x", "buildsets/b-x/y", "buildsets/ba/z", "base/debian"} {
		if tags, err := e.registry.Tags(ctx, repo); err != nil || !slices.Equal(tags, []string{"1"}) {
			t.Errorf("Tags(%s) after B's sweep = %v, %v; want [1]", repo, tags, err)
		}
	}
	if _, err := e.store.Get(ctx, "b"); !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("B's record after the sweep: %v, want ErrNoNode", err)
	}
	if _, err := remote.Image(e.ref(t, "release/app:1"), remote.WithContext(ctx), basic(credC)); err == nil {
		t.Error("C pulls release/app")
	}
	if _, err := e.store.Authenticate(ctx, credC.Username, credC.Password); err != nil {
		t.Errorf("C's credentials after B's sweep: %v", err)
	}
}

// failingDeleter fails every delete: the registry cannot be made to fail
// half way on demand.
type failingDeleter struct{ calls int }

func (f *failingDeleter) DeletePrefix(context.Context, string) (int, int, error) {
	f.calls++
	return 0, 0, errors.New("registry down")
}

// TestSweepInterrupted: a sweep that revoked a buildset but could not delete
// its images (the registry failed, or the launcher was killed) leaves the
// record in state deleting with no credentials; the next sweep, with the
// buildset still without nodes or even with a node again, finishes it.
func TestSweepInterrupted(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	cred, err := e.store.NewCredentials(ctx, "b", "")
	if err != nil {
		t.Fatal(err)
	}
	app := e.ref(t, "buildsets/b/app:1")
	if err := remote.Write(app, randomImage(t), remote.WithContext(ctx), basic(cred)); err != nil {
		t.Fatal(err)
	}
	e.clock.t = e.clock.t.Add(2 * time.Hour)

	failing := &failingDeleter{}
	sw := &Sweeper{Store: e.store, Registry: failing, Policy: e.policy, TTL: time.Hour}
	res, err := sw.Sweep(ctx, nil)
	if err == nil || failing.calls != 1 {
		t.Fatalf("Sweep with a failing registry = %+v, %v (%d calls); want an error after one call", res, err, failing.calls)
	}
	b, err := e.store.Get(ctx, "b")
	if err != nil || b.State != zk.BuildsetDeleting || len(b.Credentials) != 0 {
		t.Fatalf("record after the failed sweep = %+v, %v; want state deleting without credentials", b, err)
	}
	if _, err := e.store.Authenticate(ctx, cred.Username, cred.Password); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Authenticate after revocation = %v, want ErrUnauthorized", err)
	}
	if _, err := e.store.NewCredentials(ctx, "b", ""); !errors.Is(err, ErrDeleting) {
		t.Errorf("NewCredentials while deleting = %v, want ErrDeleting", err)
	}

	sw.Registry = e.registry
	res, err = sw.Sweep(ctx, map[string]bool{"b": true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(SweepResult{Deleted: []string{"b"}}, res); diff != "" {
		t.Errorf("second Sweep mismatch (-want +got):\n%s", diff)
	}
	if tags, err := e.registry.Tags(ctx, "buildsets/b/app"); err != nil || len(tags) != 0 {
		t.Errorf("Tags after the second sweep = %v, %v; want none", tags, err)
	}
	// A sweep with nothing to do is a no-op; so is deleting again.
	if res, err := sw.Sweep(ctx, nil); err != nil || len(res.Deleted)+len(res.Revoked)+len(res.Seen) != 0 {
		t.Errorf("third Sweep = %+v, %v; want nothing", res, err)
	}
	if err := sw.Delete(ctx, "b"); err != nil {
		t.Errorf("Delete of a gone buildset: %v", err)
	}
	// A new buildset b starts afresh.
	if _, err := e.store.NewCredentials(ctx, "b", ""); err != nil {
		t.Errorf("NewCredentials after the buildset ended: %v", err)
	}
}

func TestDeleteNow(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	cred, err := e.store.NewCredentials(ctx, "b", "")
	if err != nil {
		t.Fatal(err)
	}
	app := e.ref(t, "buildsets/b/app:1")
	img := randomImage(t)
	if err := remote.Write(app, img, remote.WithContext(ctx), basic(cred)); err != nil {
		t.Fatal(err)
	}
	// Two tags on one manifest: one delete by digest removes both.
	if err := remote.Write(e.ref(t, "buildsets/b/app:latest"), img, remote.WithContext(ctx), basic(cred)); err != nil {
		t.Fatal(err)
	}
	sw := &Sweeper{Store: e.store, Registry: e.registry, Policy: e.policy, TTL: time.Hour}
	if err := sw.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if tags, err := e.registry.Tags(ctx, "buildsets/b/app"); err != nil || len(tags) != 0 {
		t.Errorf("Tags after Delete = %v, %v; want none", tags, err)
	}
	if _, err := remote.Image(app, remote.WithContext(ctx), basic(cred)); err == nil {
		t.Error("B's credentials still pull after Delete")
	}
}

// TestDockerConfig: a build tool that finds only the docker config and the
// KUBEPOOL_BUILDSET_REGISTRY variable (go-containerregistry's default
// keychain, as crane and ko use it) pushes to and pulls from its buildset's
// repository, and nowhere else.
func TestDockerConfig(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	cred, err := e.store.NewCredentials(ctx, "b", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := DockerConfig(e.reg.Host, cred)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	where := e.policy.RegistryPath(e.reg.Host, "b")
	if want := e.reg.Host + "/buildsets/b"; where != want {
		t.Fatalf("RegistryPath = %q, want %q", where, want)
	}
	keychain := remote.WithAuthFromKeychain(authn.DefaultKeychain)
	ref, err := name.ParseReference(where+"/app:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img := randomImage(t)
	if err := remote.Write(ref, img, remote.WithContext(ctx), keychain); err != nil {
		t.Fatalf("pushing %s with the docker config: %v", ref, err)
	}
	if _, err := remote.Image(ref, remote.WithContext(ctx), keychain); err != nil {
		t.Errorf("pulling %s with the docker config: %v", ref, err)
	}
	err = remote.Write(e.ref(t, "buildsets/c/app:1"), img, remote.WithContext(ctx), keychain)
	wantDenied(t, "pushing to buildset c with b's docker config", err)

	if _, err := DockerConfig("", cred); err == nil {
		t.Error("DockerConfig without a host succeeded")
	}
}
