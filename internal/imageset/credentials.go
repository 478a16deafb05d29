package imageset

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-containerregistry/pkg/authn"
)

// credentials is the keychain kubepool uses unless given another: it
// looks in the places skopeo and docker look, in this order, and remembers
// for every registry where the credentials it sent came from, so that a
// refusal can say so:
//
//  1. --creds USER:PASSWORD (every registry);
//  2. --authfile FILE, else $REGISTRY_AUTH_FILE (containers auth.json, the
//     docker config.json format);
//  3. docker's config.json ($DOCKER_CONFIG or ~/.docker), with its
//     credHelpers and credsStore.
type credentials struct {
	basic    *authn.Basic
	files    []credFile // in the order they are tried
	mu       sync.Mutex
	resolved map[string]credSource // registry host -> what was found
}

type credFile struct {
	what string                 // "--authfile /x", "REGISTRY_AUTH_FILE=/x", "/root/.docker/config.json"
	cf   *configfile.ConfigFile // nil: the file does not exist
}

// credSource says whether credentials were found for a registry, and where.
type credSource struct {
	From string // "" when none were found
	// Tried are the places looked in; Others are registries those places
	// have credentials for (to spot credentials for another host).
	Tried, Others []string
	Err           error // a credential helper that failed
}

// String describes the credentials for an error message.
func (s credSource) String() string {
	switch {
	case s.Err != nil:
		return fmt.Sprintf("no credentials sent: reading them failed: %v", s.Err)
	case s.From != "":
		return "credentials sent, from " + s.From
	case len(s.Others) > 0:
		return fmt.Sprintf("no credentials sent: none for this registry in %s (they have credentials for %s)", strings.Join(s.Tried, ", "), strings.Join(s.Others, ", "))
	case len(s.Tried) > 0:
		return fmt.Sprintf("no credentials sent: none in %s", strings.Join(s.Tried, ", "))
	}
	return "no credentials sent"
}

// newCredentials reads the credential files. creds is "USER:PASSWORD" or
// ""; authFile must exist if given.
func newCredentials(creds, authFile string) (*credentials, error) {
	k := &credentials{resolved: map[string]credSource{}}
	if creds != "" {
		user, pass, ok := strings.Cut(creds, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("--creds: want USER:PASSWORD")
		}
		k.basic = &authn.Basic{Username: user, Password: pass}
	}
	load := func(what, path string, mustExist bool) error {
		data, err := os.ReadFile(path)
		if err != nil {
			if os.IsNotExist(err) && !mustExist {
				k.files = append(k.files, credFile{what: what})
				return nil
			}
			return fmt.Errorf("reading %s: %w", what, err)
		}
		cf, err := config.LoadFromReader(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("parsing %s: %w", what, err)
		}
		cf.Filename = path
		k.files = append(k.files, credFile{what: what, cf: cf})
		return nil
	}
	switch env := os.Getenv("REGISTRY_AUTH_FILE"); {
	case authFile != "":
		if err := load("--authfile "+authFile, authFile, true); err != nil {
			return nil, err
		}
	case env != "":
		if err := load("REGISTRY_AUTH_FILE="+env, env, false); err != nil {
			return nil, err
		}
	}
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err == nil {
			dir = filepath.Join(home, ".docker")
		}
	}
	if dir != "" {
		p := filepath.Join(dir, config.ConfigFileName)
		if err := load(p, p, false); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// Resolve implements authn.Keychain.
func (k *credentials) Resolve(r authn.Resource) (authn.Authenticator, error) {
	host := r.RegistryStr()
	src, auth := k.lookup(host)
	k.mu.Lock()
	k.resolved[host] = src
	k.mu.Unlock()
	return auth, nil
}

func (k *credentials) lookup(host string) (credSource, authn.Authenticator) {
	var src credSource
	if k.basic != nil {
		src.From = "--creds"
		return src, k.basic
	}
	key := host
	if host == name0DockerHub {
		key = "https://index.docker.io/v1/"
	}
	for _, f := range k.files {
		if f.cf == nil {
			src.Tried = append(src.Tried, f.what+" (absent)")
			continue
		}
		src.Tried = append(src.Tried, f.what)
		ac, err := f.cf.GetAuthConfig(key)
		if err != nil {
			src.Err = fmt.Errorf("%s: %w", f.what, err)
			return src, authn.Anonymous
		}
		if ac.Username == "" && ac.Password == "" && ac.IdentityToken == "" && ac.RegistryToken == "" {
			for h := range f.cf.AuthConfigs {
				src.Others = append(src.Others, h)
			}
			for h := range f.cf.CredentialHelpers {
				src.Others = append(src.Others, h)
			}
			continue
		}
		src.From = f.what
		if h := f.cf.CredentialHelpers[key]; h != "" {
			src.From = fmt.Sprintf("credential helper docker-credential-%s (%s)", h, f.what)
		} else if f.cf.CredentialsStore != "" {
			src.From = fmt.Sprintf("credential store docker-credential-%s (%s)", f.cf.CredentialsStore, f.what)
		}
		src.Others = nil
		return src, authn.FromConfig(authn.AuthConfig{
			Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
			IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken,
		})
	}
	slices.Sort(src.Others)
	src.Others = slices.Compact(src.Others)
	return src, authn.Anonymous
}

// name0DockerHub is how go-containerregistry names Docker Hub.
const name0DockerHub = "index.docker.io"

// source returns what Resolve found for host; ok is false if it was never
// asked (a keychain given by the caller).
func (k *credentials) source(host string) (credSource, bool) {
	if k == nil {
		return credSource{}, false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	s, ok := k.resolved[host]
	return s, ok
}
