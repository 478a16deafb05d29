package buildset

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubepool/kubepool/internal/registrytoken"
)

func TestPolicyGrant(t *testing.T) {
	p := Policy{Prefix: "buildsets/", Public: []string{"release/base", "library/*"}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	repo := func(name string, acts ...string) registrytoken.Access {
		return registrytoken.Access{Type: "repository", Name: name, Actions: acts}
	}
	tests := []struct {
		name     string
		buildset string
		req      []registrytoken.Access
		want     []registrytoken.Access
	}{
		{"own repository push pull", "b1", []registrytoken.Access{repo("buildsets/b1/app", "pull", "push")}, []registrytoken.Access{repo("buildsets/b1/app", "pull", "push")}},
		{"own nested repository", "b1", []registrytoken.Access{repo("buildsets/b1/team/app", "push")}, []registrytoken.Access{repo("buildsets/b1/team/app", "push")}},
		{"own repository delete refused", "b1", []registrytoken.Access{repo("buildsets/b1/app", "delete", "*", "pull")}, []registrytoken.Access{repo("buildsets/b1/app", "pull")}},
		{"other buildset", "b1", []registrytoken.Access{repo("buildsets/b2/app", "pull", "push")}, nil},
		{"buildset whose id extends ours", "b1", []registrytoken.Access{repo("buildsets/b10/app", "pull")}, nil},
		{"buildset area without slash", "b1", []registrytoken.Access{repo("buildsets/b1", "pull", "push")}, nil},
		{"prefix alone", "b1", []registrytoken.Access{repo("buildsets", "pull")}, nil},
		{"dot-dot escape", "b1", []registrytoken.Access{repo("buildsets/b1/../b2/app", "pull", "push")}, nil},
		{"dot component", "b1", []registrytoken.Access{repo("buildsets/b1/./app", "push")}, nil},
		{"double slash", "b1", []registrytoken.Access{repo("buildsets/b1//app", "push")}, nil},
		{"trailing slash", "b1", []registrytoken.Access{repo("buildsets/b1/", "push")}, nil},
		{"uppercase", "b1", []registrytoken.Access{repo("buildsets/b1/App", "push")}, nil},
		{"uppercase buildset", "b1", []registrytoken.Access{repo("buildsets/B1/app", "push")}, nil},
		{"host in name", "b1", []registrytoken.Access{repo("registry:5000/buildsets/b1/app", "push")}, nil},
		{"catalog", "b1", []registrytoken.Access{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}, nil},
		{"repository class", "b1", []registrytoken.Access{{Type: "repository", Class: "plugin", Name: "buildsets/b1/app", Actions: []string{"pull"}}}, nil},
		{"public pull", "b1", []registrytoken.Access{repo("release/base", "pull", "push")}, []registrytoken.Access{repo("release/base", "pull")}},
		{"public pattern", "b1", []registrytoken.Access{repo("library/debian", "pull")}, []registrytoken.Access{repo("library/debian", "pull")}},
		{"public pattern base itself", "b1", []registrytoken.Access{repo("library", "pull")}, nil},
		{"public exact is not a prefix", "b1", []registrytoken.Access{repo("release/base/x", "pull")}, nil},
		{"release not public", "b1", []registrytoken.Access{repo("release/app", "pull", "push")}, nil},
		{"anonymous public", "", []registrytoken.Access{repo("release/base", "pull")}, []registrytoken.Access{repo("release/base", "pull")}},
		{"anonymous buildset repo", "", []registrytoken.Access{repo("buildsets//app", "pull"), repo("buildsets/b1/app", "pull")}, nil},
		{"several scopes, some granted", "b1", []registrytoken.Access{repo("buildsets/b1/app", "push", "pull"), repo("buildsets/b2/app", "pull"), repo("library/go", "pull")},
			[]registrytoken.Access{repo("buildsets/b1/app", "push", "pull"), repo("library/go", "pull")}},
		{"duplicate actions", "b1", []registrytoken.Access{repo("buildsets/b1/app", "pull", "pull")}, []registrytoken.Access{repo("buildsets/b1/app", "pull")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.Grant(tt.buildset, tt.req)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Grant(%q, %v) mismatch (-want +got):\n%s", tt.buildset, tt.req, diff)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		p  Policy
		ok bool
	}{
		{Policy{}, true},
		{Policy{Prefix: "ci/buildsets/", Public: []string{"release/*", "base"}}, true},
		{Policy{Prefix: "buildsets"}, false},
		{Policy{Prefix: "/buildsets/"}, false},
		{Policy{Prefix: "Buildsets/"}, false},
		{Policy{Public: []string{"buildsets/*"}}, false},
		{Policy{Public: []string{"buildsets/b1/app"}}, false},
		{Policy{Prefix: "ci/b/", Public: []string{"ci/*"}}, false},
		{Policy{Public: []string{"*"}}, false},
		{Policy{Public: []string{"release/**"}}, false},
	}
	for _, tt := range tests {
		err := tt.p.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tt.p, err, tt.ok)
		}
	}
}

func TestValidateID(t *testing.T) {
	for id, ok := range map[string]bool{
		"2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e": true, "b": true, "a-b": true,
		"": false, "-a": false, "a-": false, "A": false, "a/b": false, "a.b": false, "..": false,
		"a2345678901234567890123456789012345678901234567890123456789012345": false,
		"a234567890123456789012345678901234567890123456789012345678901234":  true,
	} {
		if err := ValidateID(id); (err == nil) != ok {
			t.Errorf("ValidateID(%q) = %v, want ok=%v", id, err, ok)
		}
	}
}

func TestPolicyGrantPromoter(t *testing.T) {
	p := Policy{Prefix: "buildsets/", Public: []string{"library/*"}}
	repo := func(name string, acts ...string) registrytoken.Access {
		return registrytoken.Access{Type: "repository", Name: name, Actions: acts}
	}
	tests := []struct {
		name string
		req  []registrytoken.Access
		want []registrytoken.Access
	}{
		{"mount out of a buildset", []registrytoken.Access{repo("release/app", "pull", "push"), repo("buildsets/b1/app", "pull")},
			[]registrytoken.Access{repo("release/app", "pull", "push"), repo("buildsets/b1/app", "pull")}},
		{"no push into a buildset", []registrytoken.Access{repo("buildsets/b1/app", "pull", "push")}, []registrytoken.Access{repo("buildsets/b1/app", "pull")}},
		{"no delete", []registrytoken.Access{repo("release/app", "delete", "*")}, nil},
		{"dot-dot escape into a buildset", []registrytoken.Access{repo("release/../buildsets/b1/app", "push")}, nil},
		{"catalog", []registrytoken.Access{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, p.GrantPromoter(tt.req)); diff != "" {
				t.Errorf("GrantPromoter(%v) mismatch (-want +got):\n%s", tt.req, diff)
			}
		})
	}
}

func TestAuthorizerPromoter(t *testing.T) {
	a := &Authorizer{Policy: Policy{Prefix: "buildsets/"}, Promoters: map[string][32]byte{"release-bot": HashPassword("s3cret")}}
	req := []registrytoken.Access{{Type: "repository", Name: "release/app", Actions: []string{"push", "pull"}}}
	subject, got, err := a.Authorize(t.Context(), "release-bot", "s3cret", req)
	if err != nil || subject != "release-bot" || len(got) != 1 || len(got[0].Actions) != 2 {
		t.Fatalf("Authorize(promoter) = %q, %v, %v; want push and pull on release/app", subject, got, err)
	}
	if _, _, err := a.Authorize(t.Context(), "release-bot", "wrong", req); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Authorize(promoter, wrong password) = %v, want ErrUnauthorized", err)
	}
}
