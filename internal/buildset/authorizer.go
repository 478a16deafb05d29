package buildset

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"

	"github.com/kubepool/kubepool/internal/registrytoken"
)

// ErrUnauthorized is registrytoken.ErrUnauthorized: credentials that are not
// a live buildset credential.
var ErrUnauthorized = registrytoken.ErrUnauthorized

// Authorizer is the registry token endpoint's authorizer for buildsets:
// buildset credentials get what Policy grants the buildset; a promoter's
// what [Policy.GrantPromoter] grants; no credentials get what Policy grants
// anyone (pull on public repositories).
type Authorizer struct {
	Store  *Store
	Policy Policy
	// Promoters are the operators' promotion identities: user name ->
	// SHA-256 of the password (see [HashPassword]).
	Promoters map[string][32]byte
}

// HashPassword is what [Authorizer.Promoters] holds of a password.
func HashPassword(password string) [32]byte { return sha256.Sum256([]byte(password)) }

// Authorize implements registrytoken.Authorizer.
func (a *Authorizer) Authorize(ctx context.Context, user, password string, requested []registrytoken.Access) (string, []registrytoken.Access, error) {
	if user == "" {
		return "", a.Policy.Grant("", requested), nil
	}
	if want, ok := a.Promoters[user]; ok {
		got := HashPassword(password)
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return "", nil, fmt.Errorf("promoter %q: %w", user, ErrUnauthorized)
		}
		return user, a.Policy.GrantPromoter(requested), nil
	}
	id, err := a.Store.Authenticate(ctx, user, password)
	if err != nil {
		return "", nil, fmt.Errorf("user %q: %w", user, err)
	}
	return UserPrefix + id, a.Policy.Grant(id, requested), nil
}
