package registrytoken

import (
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kubepool/kubepool/internal/testenv"
)

// TestDistributionVerifies checks, against Debian's docker-registry
// (distribution 2.8), which tokens the registry accepts: the issuer's own,
// one that names its key by kid alone (the libtrust key ID), and none that
// is expired beyond the 60 s leeway, for another audience or issuer, or
// signed by a key outside the rootcertbundle.
func TestDistributionVerifies(t *testing.T) {
	iss, cert := testIssuer(t)
	other, _ := testIssuer(t)
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := testenv.Registry(t, testenv.WithTokenAuth(testenv.TokenAuth{
		Realm: "http://127.0.0.1:1/token", Service: iss.Service, Issuer: iss.Name, RootCertBundle: bundle,
	}))
	catalog := []Access{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}

	status := func(t *testing.T, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, reg.URL()+"/v2/_catalog", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
	}
	issue := func(t *testing.T, i *Issuer, access []Access) string {
		t.Helper()
		tok, err := i.Issue("kubepool", access)
		if err != nil {
			t.Fatal(err)
		}
		return tok.Token
	}
	// kidOnly signs claims with iss's key and a header that has no x5c.
	kidOnly := func(t *testing.T, kid string) string {
		t.Helper()
		now := time.Now().Unix()
		c := &claims{Issuer: iss.Name, Audience: iss.Service, IssuedAt: now, NotBefore: now, Expires: now + 60, Access: catalog}
		tok := jwt.NewWithClaims(iss.method, c)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(iss.key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	shifted := func(name, service string, shift time.Duration) *Issuer {
		i := *iss
		i.Name, i.Service, i.TTL = name, service, time.Minute
		i.Now = func() time.Time { return time.Now().Add(shift) }
		return &i
	}

	tests := []struct {
		name  string
		token string
		want  int
	}{
		{"issued token", issue(t, iss, catalog), http.StatusOK},
		{"kid only", kidOnly(t, iss.kid), http.StatusOK},
		{"unknown kid", kidOnly(t, other.kid), http.StatusUnauthorized},
		{"other key", issue(t, other, catalog), http.StatusUnauthorized},
		{"no access", issue(t, iss, nil), http.StatusUnauthorized},
		{"expired beyond leeway", issue(t, shifted(iss.Name, iss.Service, -3*time.Minute), catalog), http.StatusUnauthorized},
		{"not yet valid beyond leeway", issue(t, shifted(iss.Name, iss.Service, 3*time.Minute), catalog), http.StatusUnauthorized},
		{"other audience", issue(t, shifted(iss.Name, "elsewhere", 0), catalog), http.StatusUnauthorized},
		{"other issuer", issue(t, shifted("someone", iss.Service, 0), catalog), http.StatusUnauthorized},
		{"garbage", "a.b.c", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, challenge := status(t, tt.token)
			if got != tt.want {
				t.Errorf("GET /v2/_catalog = %d, want %d", got, tt.want)
			}
			if got == http.StatusUnauthorized && !strings.HasPrefix(challenge, `Bearer realm="http://127.0.0.1:1/token"`) {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge with the realm", challenge)
			}
		})
	}
}
