// Package registrytoken is a token issuer for registries that implement the
// distribution token-authentication spec (distribution's docs/spec/auth:
// token.md, jwt.md, scope.md), such as Debian's docker-registry 2.8 with
// `auth: token`.
//
// An [Issuer] signs short-lived JWTs (ES256 or RS256) whose header carries
// both the signing certificate (x5c) and its libtrust key ID (kid), so that
// a registry whose `auth.token.rootcertbundle` holds the certificate accepts
// them. The claims are the ones distribution 2.8 checks: iss (its `issuer`),
// aud as a single string (its `service`), exp and nbf (checked with 60 s of
// leeway), and the granted access list.
//
// [Handler] serves the token endpoint (the registry's `realm`): GET with
// basic-auth credentials and `scope` parameters, and the OAuth2 POST form
// that containerd tries first. What a caller may have is decided by an
// [Authorizer]; the handler grants the intersection of what was asked and
// what the authorizer allows, never more. Bad credentials get 401 with a
// Basic challenge; a request for nothing the caller may have gets a token
// with an empty access list, and the registry answers 401 insufficient_scope.
package registrytoken
