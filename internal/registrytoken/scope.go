package registrytoken

import (
	"fmt"
	"slices"
	"strings"
)

// Access is one resource and the actions on it, as in a token's "access"
// claim and in a scope: `repository:team/app:pull,push`.
type Access struct {
	Type    string   `json:"type"`
	Class   string   `json:"class,omitempty"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// String returns the access as a scope, "type[(class)]:name:a,b".
func (a Access) String() string {
	t := a.Type
	if a.Class != "" {
		t += "(" + a.Class + ")"
	}
	return t + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// ScopeError is a scope that does not parse.
type ScopeError struct {
	Scope  string
	Reason string
}

func (e *ScopeError) Error() string { return fmt.Sprintf("scope %q: %s", e.Scope, e.Reason) }

// ParseScope parses one scope parameter value, which may hold several
// space-separated scopes (docs/spec/auth/scope.md). The resource name may
// itself contain colons (a registry host:port); the type ends at the first
// colon and the actions begin after the last.
func ParseScope(param string) ([]Access, error) {
	var out []Access
	for _, s := range strings.Fields(param) {
		first := strings.IndexByte(s, ':')
		last := strings.LastIndexByte(s, ':')
		if first < 0 || first == last {
			return nil, &ScopeError{Scope: s, Reason: "want type:name:actions"}
		}
		typ, name, actions := s[:first], s[first+1:last], s[last+1:]
		a := Access{Type: typ, Name: name}
		if open := strings.IndexByte(typ, '('); open >= 0 {
			if !strings.HasSuffix(typ, ")") || open == 0 {
				return nil, &ScopeError{Scope: s, Reason: "malformed resource class"}
			}
			a.Type, a.Class = typ[:open], typ[open+1:len(typ)-1]
		}
		if a.Type == "" || a.Name == "" {
			return nil, &ScopeError{Scope: s, Reason: "empty type or name"}
		}
		for _, act := range strings.Split(actions, ",") {
			if act != "" && !slices.Contains(a.Actions, act) {
				a.Actions = append(a.Actions, act)
			}
		}
		if len(a.Actions) == 0 {
			return nil, &ScopeError{Scope: s, Reason: "no actions"}
		}
		out = append(out, a)
	}
	return out, nil
}
