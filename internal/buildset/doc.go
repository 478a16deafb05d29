// Package buildset gives each Zuul buildset a private area of an OCI
// registry that speaks the distribution token-authentication spec, with
// kubepool as the registry's token issuer (package registrytoken).
//
//   - [Policy] says what a buildset may have: push and pull on
//     `<prefix><buildset>/*`, pull on the public repositories, nothing else.
//   - [Store] keeps buildset records in ZooKeeper (/kubepool/buildsets/<id>):
//     state, creation time, when a node of the buildset was last seen, and
//     the hashes of the credentials handed out (never the secrets).
//   - [Authorizer] is the registrytoken.Authorizer that checks a buildset's
//     credentials against the store and grants by the policy.
//   - [Sweeper] ends buildsets whose last node has been gone for the TTL:
//     it revokes their credentials, deletes their manifests through the
//     registry API with a token the issuer grants kubepool itself, then
//     deletes the record. Every step is idempotent and a sweep killed at any
//     point is finished by the next one.
package buildset
