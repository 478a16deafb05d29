package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"sigs.k8s.io/yaml"

	"github.com/kubepool/kubepool/internal/buildset"
	"github.com/kubepool/kubepool/internal/registrytoken"
	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

func TestBuildsetCommands(t *testing.T) {
	dir := t.TempDir()
	keyPEM, certPEM, err := registrytoken.GenerateKey("kubepool", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, certFile := filepath.Join(dir, "token.key"), filepath.Join(dir, "token.crt")
	for f, b := range map[string][]byte{keyFile: keyPEM, certFile: certPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The commands use tokens kubepool issues itself: the realm is never
	// asked.
	reg := testenv.Registry(t, testenv.WithTokenAuth(testenv.TokenAuth{
		Realm: "http://localhost:1/token", Service: "buildsets", Issuer: "kubepool", RootCertBundle: certFile,
	}))
	cfgFile := filepath.Join(dir, "kubepool.yaml")
	cfg := fmt.Sprintf(`zookeeper-servers:
  - host: 127.0.0.1
labels:
  - name: ns
providers:
  - name: dev
    driver: kubernetes
    buildset-registry:
      url: %s
      service: buildsets
      token-key: %s
      token-certificate: %s
    pools:
      - name: main
        labels:
          - name: ns
            type: namespace
`, reg.URL(), keyFile, certFile)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	servers := testenv.ZooKeeper(t)
	c, err := zk.Connect(t.Context(), servers, zk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	store := &buildset.Store{ZK: c}
	cred, err := store.NewCredentials(t.Context(), "b1", "0000000007")
	if err != nil {
		t.Fatal(err)
	}
	iss, err := registrytoken.LoadIssuer("kubepool", "buildsets", keyFile, certFile)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iss.Issue("kubepool", []registrytoken.Access{{Type: "repository", Name: "buildsets/b1/app", Actions: []string{"pull", "push"}}})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(reg.Host+"/buildsets/b1/app:1", name.Insecure)
	img, _ := random.Image(512, 1)
	if err := remote.Write(ref, img, remote.WithContext(t.Context()), remote.WithAuth(&authn.Bearer{Token: tok.Token})); err != nil {
		t.Fatal(err)
	}
	zkf := "--zookeeper=" + servers

	out, err := runOps(t, newBuildsetCmd, "list", zkf)
	if err != nil {
		t.Fatalf("buildset list = %v", err)
	}
	if !strings.Contains(out, "LAST NODE SEEN") || !strings.Contains(out, "b1  active") {
		t.Errorf("buildset list table = %q, want a header and b1 active", out)
	}
	for _, format := range []string{"json", "yaml"} {
		out, err := runOps(t, newBuildsetCmd, "list", zkf, "-o", format)
		if err != nil {
			t.Fatalf("buildset list -o %s = %v", format, err)
		}
		var rows []buildset.Row
		if err := yaml.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("buildset list -o %s: decoding %q: %v", format, out, err)
		}
		if len(rows) != 1 || rows[0].ID != "b1" || rows[0].Credentials != 1 || rows[0].Created.IsZero() {
			t.Errorf("buildset list -o %s = %+v, want b1 with one credential", format, rows)
		}
	}

	out, err = runOps(t, newBuildsetCmd, "info", "b1", zkf, "-o", "json")
	if err != nil {
		t.Fatalf("buildset info = %v", err)
	}
	var info buildset.Info
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	if info.Username != "buildset-b1" || len(info.CredentialList) != 1 || info.CredentialList[0].Node != "0000000007" {
		t.Errorf("buildset info = %+v, want user buildset-b1 and one credential of node 0000000007", info)
	}
	secret := cred.Password[strings.IndexByte(cred.Password, '.')+1:]
	if strings.Contains(out, secret) || strings.Contains(out, "sha256:") {
		t.Errorf("buildset info shows the secret or its hash: %s", out)
	}
	if out, err := runOps(t, newBuildsetCmd, "info", "b1", zkf); err != nil || !strings.Contains(out, "credential ") {
		t.Errorf("buildset info table = %q, %v", out, err)
	}
	if _, err := runOps(t, newBuildsetCmd, "info", "nope", zkf); !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("buildset info of an unknown buildset = %v, want ErrNoNode", err)
	}
	if _, err := runOps(t, newBuildsetCmd, "info", "../x", zkf); !errors.Is(err, buildset.ErrInvalidID) {
		t.Errorf("buildset info ../x = %v, want ErrInvalidID", err)
	}

	if _, err := runOps(t, newBuildsetCmd, "delete", "b1", zkf); err == nil || !strings.Contains(err.Error(), "-c") {
		t.Errorf("buildset delete without a config = %v, want an error asking for -c", err)
	}
	if _, err := runOps(t, newBuildsetCmd, "delete", "b1", zkf, "-c", cfgFile, "--provider", "other"); err == nil || !strings.Contains(err.Error(), `provider "other" has no buildset-registry`) {
		t.Errorf("buildset delete --provider other = %v", err)
	}
	if out, err := runOps(t, newBuildsetCmd, "delete", "b1", zkf, "-c", cfgFile); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("buildset delete = %q, %v", out, err)
	}
	if _, err := store.Get(t.Context(), "b1"); !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("record after buildset delete: %v, want ErrNoNode", err)
	}
	tags, err := (&buildset.Registry{URL: reg.URL(), Issuer: iss}).Tags(t.Context(), "buildsets/b1/app")
	if err != nil || len(tags) != 0 {
		t.Errorf("tags after buildset delete = %v, %v; want none", tags, err)
	}
	if out, err := runOps(t, newBuildsetCmd, "list", zkf); err != nil || strings.Contains(out, "b1") {
		t.Errorf("buildset list after delete = %q, %v", out, err)
	}
}
