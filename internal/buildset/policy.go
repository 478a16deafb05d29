package buildset

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/kubepool/kubepool/internal/registrytoken"
)

// DefaultPrefix is the repository prefix of buildset repositories.
const DefaultPrefix = "buildsets/"

// UserPrefix starts the registry user name of a buildset's credentials:
// "buildset-<id>".
const UserPrefix = "buildset-"

var (
	// idRE: what a buildset id may be. Zuul's build_set_uuid is 32 lowercase
	// hex digits; the id is a repository path component.
	idRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$`)
	// componentRE is distribution's repository path component.
	componentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)
)

// ErrInvalidID is returned for a buildset id that cannot name repositories.
var ErrInvalidID = errors.New("invalid buildset id")

// ValidateID checks that id can be a buildset id: 1 to 64 lowercase letters,
// digits and inner dashes.
func ValidateID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("%w %q: want 1-64 lowercase letters, digits and inner dashes", ErrInvalidID, id)
	}
	return nil
}

// validRepository reports whether name is a repository name by distribution's
// grammar: path components of lowercase alphanumerics and separators, joined
// by slashes, at most 255 characters.
func validRepository(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for _, c := range strings.Split(name, "/") {
		if !componentRE.MatchString(c) {
			return false
		}
	}
	return true
}

// Policy is what buildsets may do in the registry.
type Policy struct {
	// Prefix starts every buildset repository: <Prefix><id>/<name>. It ends
	// with a slash (DefaultPrefix if empty).
	Prefix string
	// Public are repositories everyone may pull: exact names, or a prefix
	// followed by "/*" for everything under it.
	Public []string
}

// Validate checks the prefix and the public patterns.
func (p Policy) Validate() error {
	prefix := p.prefix()
	if !strings.HasSuffix(prefix, "/") || !validRepository(strings.TrimSuffix(prefix, "/")) {
		return fmt.Errorf("repository prefix %q: want repository path components ending in /", p.Prefix)
	}
	for _, pat := range p.Public {
		name := strings.TrimSuffix(pat, "/*")
		if !validRepository(name) {
			return fmt.Errorf("public repository %q: want a repository name or name/*", pat)
		}
		if strings.HasPrefix(name+"/", prefix) || strings.HasPrefix(prefix, name+"/") {
			return fmt.Errorf("public repository %q overlaps the buildset prefix %q", pat, prefix)
		}
	}
	return nil
}

func (p Policy) prefix() string {
	if p.Prefix == "" {
		return DefaultPrefix
	}
	return p.Prefix
}

// Repository returns the repository area of a buildset, "<prefix><id>/".
func (p Policy) Repository(id string) string { return p.prefix() + id + "/" }

func (p Policy) public(name string) bool {
	for _, pat := range p.Public {
		if base, ok := strings.CutSuffix(pat, "/*"); ok {
			if strings.HasPrefix(name, base+"/") {
				return true
			}
		} else if name == pat {
			return true
		}
	}
	return false
}

// Grant returns what buildset (or, if buildset is "", an anonymous caller)
// may have of requested: push and pull on repositories under
// <prefix><buildset>/, pull on public repositories. Nothing else: no other
// resource type or class, no catalog, no delete, no malformed name.
func (p Policy) Grant(buildset string, requested []registrytoken.Access) []registrytoken.Access {
	return grant(requested, func(name string) []string {
		switch {
		case buildset != "" && strings.HasPrefix(name, p.Repository(buildset)):
			return []string{"pull", "push"}
		case p.public(name):
			return []string{"pull"}
		}
		return nil
	})
}

// GrantPromoter returns what a promoter may have of requested: pull on
// every repository (the buildsets' included, to read what they built and
// mount its blobs), push outside the buildsets' prefix only (release
// repositories). Never push into a buildset's area, nor delete, nor the
// catalog: promoting out of a buildset cannot change what it built.
func (p Policy) GrantPromoter(requested []registrytoken.Access) []registrytoken.Access {
	return grant(requested, func(name string) []string {
		if strings.HasPrefix(name, p.prefix()) {
			return []string{"pull"}
		}
		return []string{"pull", "push"}
	})
}

// grant keeps, of requested, the actions allowed says a repository may
// have: only well-formed repository scopes, each action once.
func grant(requested []registrytoken.Access, allowed func(name string) []string) []registrytoken.Access {
	var out []registrytoken.Access
	for _, r := range requested {
		if r.Type != "repository" || r.Class != "" || !validRepository(r.Name) {
			continue
		}
		ok := allowed(r.Name)
		var acts []string
		for _, a := range r.Actions {
			if slices.Contains(ok, a) && !slices.Contains(acts, a) {
				acts = append(acts, a)
			}
		}
		if len(acts) > 0 {
			out = append(out, registrytoken.Access{Type: r.Type, Name: r.Name, Actions: acts})
		}
	}
	return out
}
