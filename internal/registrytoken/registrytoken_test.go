package registrytoken

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		in      string
		want    []Access
		wantErr bool
	}{
		{"repository:team/app:pull,push", []Access{{Type: "repository", Name: "team/app", Actions: []string{"pull", "push"}}}, false},
		{"repository:localhost:5000/app:pull", []Access{{Type: "repository", Name: "localhost:5000/app", Actions: []string{"pull"}}}, false},
		{"repository(plugin):app:pull", []Access{{Type: "repository", Class: "plugin", Name: "app", Actions: []string{"pull"}}}, false},
		{"registry:catalog:*", []Access{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}, false},
		{"repository:a:pull repository:b:push,pull,push", []Access{
			{Type: "repository", Name: "a", Actions: []string{"pull"}},
			{Type: "repository", Name: "b", Actions: []string{"push", "pull"}}}, false},
		{"", nil, false},
		{"repository:app", nil, true},
		{"repository::pull", nil, true},
		{":app:pull", nil, true},
		{"repository:app:", nil, true},
		{"repository(x:app:pull", nil, true},
		{"(x):app:pull", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseScope(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseScope(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseScope(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestIntersect(t *testing.T) {
	req := []Access{{Type: "repository", Name: "a", Actions: []string{"pull"}}}
	granted := []Access{
		{Type: "repository", Name: "a", Actions: []string{"pull", "push"}},
		{Type: "repository", Name: "b", Actions: []string{"pull"}},
		{Type: "repository", Class: "plugin", Name: "a", Actions: []string{"pull"}},
	}
	want := []Access{{Type: "repository", Name: "a", Actions: []string{"pull"}}}
	if diff := cmp.Diff(want, Intersect(req, granted)); diff != "" {
		t.Errorf("Intersect mismatch (-want +got):\n%s", diff)
	}
}

// testIssuer returns an issuer with a fresh key, and the key's certificate.
func testIssuer(t *testing.T) (*Issuer, *x509.Certificate) {
	t.Helper()
	keyPEM, certPEM, err := GenerateKey("kubepool test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kf, cf := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(kf, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cf, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	iss, err := LoadIssuer("kubepool", "registry.test", kf, cf)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return iss, cert
}

func TestIssue(t *testing.T) {
	iss, cert := testIssuer(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	iss.Now = func() time.Time { return now }
	iss.TTL = 90 * time.Second
	access := []Access{{Type: "repository", Name: "buildsets/b/app", Actions: []string{"pull", "push"}}}
	tok, err := iss.Issue("buildset-b", access)
	if err != nil {
		t.Fatal(err)
	}
	if tok.ExpiresIn != 90 || !tok.IssuedAt.Equal(now.Truncate(time.Second)) {
		t.Errorf("Issue() = expires_in %d issued_at %v, want 90 and %v", tok.ExpiresIn, tok.IssuedAt, now.Truncate(time.Second))
	}
	parts := strings.Split(tok.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	var header struct {
		Alg string   `json:"alg"`
		Typ string   `json:"typ"`
		Kid string   `json:"kid"`
		X5c []string `json:"x5c"`
	}
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if err := json.Unmarshal(hb, &header); err != nil {
		t.Fatal(err)
	}
	if header.Alg != "ES256" || header.Typ != "JWT" || len(header.X5c) != 1 {
		t.Errorf("header = %+v, want ES256 JWT with one x5c", header)
	}
	if der, _ := base64.StdEncoding.DecodeString(header.X5c[0]); string(der) != string(cert.Raw) {
		t.Error("x5c[0] is not the signing certificate")
	}
	if !regexp.MustCompile(`^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$`).MatchString(header.Kid) {
		t.Errorf("kid = %q, want libtrust form (12 groups of 4 base32 characters)", header.Kid)
	}
	// Claims as distribution 2.8 reads them: aud a plain string.
	var c map[string]any
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(cb, &c); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"iss": "kubepool", "sub": "buildset-b", "aud": "registry.test",
		"iat": float64(now.Unix()), "nbf": float64(now.Unix()), "exp": float64(now.Unix() + 90),
		"access": []any{map[string]any{"type": "repository", "name": "buildsets/b/app", "actions": []any{"pull", "push"}}},
	}
	delete(c, "jti")
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("claims mismatch (-want +got):\n%s", diff)
	}
	// The signature verifies with the certificate's key.
	_, err = jwt.Parse(tok.Token, func(*jwt.Token) (any, error) { return cert.PublicKey.(*ecdsa.PublicKey), nil },
		jwt.WithTimeFunc(func() time.Time { return now }), jwt.WithValidMethods([]string{"ES256"}))
	if err != nil {
		t.Errorf("verifying the token: %v", err)
	}
}

func TestNewIssuerRejectsMismatchedCertificate(t *testing.T) {
	_, cert := testIssuer(t)
	other, _ := testIssuer(t)
	if _, err := NewIssuer("kubepool", "registry.test", other.key, cert); err == nil {
		t.Error("NewIssuer with another key's certificate succeeded, want an error")
	}
}

// allowAll grants what is asked to user "good" with password "secret".
type allowAll struct{}

func (allowAll) Authorize(_ context.Context, user, password string, req []Access) (string, []Access, error) {
	switch {
	case user == "":
		return "", nil, nil
	case user == "good" && password == "secret":
		// Grant more than asked: the handler must cut it down.
		return user, append(req, Access{Type: "registry", Name: "catalog", Actions: []string{"*"}}), nil
	case user == "broken":
		return "", nil, errors.New("store down")
	}
	return "", nil, ErrUnauthorized
}

func TestHandler(t *testing.T) {
	iss, _ := testIssuer(t)
	srv := httptest.NewServer(&Handler{Issuer: iss, Authorizer: allowAll{}, Realm: "kubepool"})
	t.Cleanup(srv.Close)

	claimsOf := func(t *testing.T, tok string) map[string]any {
		t.Helper()
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("token %q is not a JWT", tok)
		}
		b, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var c map[string]any
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	get := func(t *testing.T, user, pass string, q url.Values) (*http.Response, map[string]any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/token?"+q.Encode(), nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp, body
	}

	t.Run("granted", func(t *testing.T) {
		resp, body := get(t, "good", "secret", url.Values{"service": {"registry.test"}, "scope": {"repository:a:pull,push", "repository:b:pull"}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, body %v", resp.StatusCode, body)
		}
		if body["token"] == nil || body["token"] != body["access_token"] || body["expires_in"] != float64(300) {
			t.Errorf("body = %v, want token = access_token and expires_in 300", body)
		}
		got := claimsOf(t, body["token"].(string))["access"]
		want := []any{
			map[string]any{"type": "repository", "name": "a", "actions": []any{"pull", "push"}},
			map[string]any{"type": "repository", "name": "b", "actions": []any{"pull"}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("access mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		resp, body := get(t, "good", "nope", url.Values{"scope": {"repository:a:pull"}})
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Basic realm="kubepool"` {
			t.Errorf("status %d, WWW-Authenticate %q, want 401 with a Basic challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		if body["token"] != nil {
			t.Errorf("401 body carries a token: %v", body)
		}
	})
	t.Run("anonymous gets an empty token", func(t *testing.T) {
		resp, body := get(t, "", "", url.Values{"scope": {"repository:a:pull"}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		c := claimsOf(t, body["token"].(string))
		if acc, ok := c["access"].([]any); !ok || len(acc) != 0 || c["sub"] != "" {
			t.Errorf("anonymous claims = %v, want sub \"\" and an empty access list", c)
		}
	})
	t.Run("offline_token gives no refresh token", func(t *testing.T) {
		resp, body := get(t, "good", "secret", url.Values{"offline_token": {"true"}, "client_id": {"docker"}, "scope": {"repository:a:pull"}})
		if resp.StatusCode != http.StatusOK || body["refresh_token"] != nil {
			t.Errorf("status %d body %v, want 200 without refresh_token", resp.StatusCode, body)
		}
	})
	for name, q := range map[string]url.Values{
		"other service":    {"service": {"elsewhere"}},
		"bad scope":        {"scope": {"repository:a"}},
		"account mismatch": {"account": {"someone"}},
		"too many scopes":  {"scope": {strings.Repeat("repository:a:pull ", MaxScopes+1)}},
	} {
		t.Run(name, func(t *testing.T) {
			if resp, body := get(t, "good", "secret", q); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d body %v, want 400", resp.StatusCode, body)
			}
		})
	}
	t.Run("authorizer error", func(t *testing.T) {
		if resp, _ := get(t, "broken", "x", nil); resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("status %d, want 500", resp.StatusCode)
		}
	})
	t.Run("oauth password grant", func(t *testing.T) {
		form := url.Values{"grant_type": {"password"}, "username": {"good"}, "password": {"secret"}, "service": {"registry.test"},
			"client_id": {"containerd-client"}, "scope": {"repository:a:pull repository:c:push"}}
		resp, err := http.PostForm(srv.URL+"/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		if resp.StatusCode != http.StatusOK || body["access_token"] == nil || body["token"] != nil {
			t.Fatalf("status %d body %v, want 200 with access_token only", resp.StatusCode, body)
		}
		if body["scope"] != "repository:a:pull repository:c:push" {
			t.Errorf("scope = %v", body["scope"])
		}
	})
	t.Run("oauth wrong password", func(t *testing.T) {
		resp, err := http.PostForm(srv.URL+"/token", url.Values{"grant_type": {"password"}, "username": {"good"}, "password": {"x"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", resp.StatusCode)
		}
	})
	t.Run("oauth refresh grant unsupported", func(t *testing.T) {
		resp, err := http.PostForm(srv.URL+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("status %d, want 400 (clients then fall back to GET)", resp.StatusCode)
		}
	})
}
