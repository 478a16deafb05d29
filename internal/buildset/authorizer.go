package buildset

import (
	"context"
	"fmt"

	"github.com/kubepool/kubepool/internal/registrytoken"
)

// ErrUnauthorized is registrytoken.ErrUnauthorized: credentials that are not
// a live buildset credential.
var ErrUnauthorized = registrytoken.ErrUnauthorized

// Authorizer is the registry token endpoint's authorizer for buildsets:
// buildset credentials get what Policy grants the buildset; no credentials
// get what it grants anyone (pull on public repositories).
type Authorizer struct {
	Store  *Store
	Policy Policy
}

// Authorize implements registrytoken.Authorizer.
func (a *Authorizer) Authorize(ctx context.Context, user, password string, requested []registrytoken.Access) (string, []registrytoken.Access, error) {
	if user == "" {
		return "", a.Policy.Grant("", requested), nil
	}
	id, err := a.Store.Authenticate(ctx, user, password)
	if err != nil {
		return "", nil, fmt.Errorf("user %q: %w", user, err)
	}
	return UserPrefix + id, a.Policy.Grant(id, requested), nil
}
