package config

import (
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kubepool/kubepool/internal/buildset"
)

// Defaults of a provider's buildset-registry section.
const (
	DefaultBuildsetTTL      = time.Hour
	DefaultBuildsetTokenTTL = 5 * time.Minute
	DefaultBuildsetIssuer   = "kubepool"
)

// BuildsetRegistry is a provider's buildset-registry section (kubepool): the
// registry in which each buildset gets private repositories, with kubepool
// as its token issuer.
//
//	buildset-registry:
//	  url: https://registry.example.com
//	  repository-prefix: buildsets/      # default
//	  public-repositories: [base/*, tools/ansible-runner]
//	  ttl: 1h                            # after the buildset's last node
//	  token-key: /etc/kubepool/registry-token.key
//	  token-certificate: /etc/kubepool/registry-token.crt
//	  issuer: kubepool                   # the registry's auth.token.issuer
//	  service: registry.example.com      # its auth.token.service; default: the URL's host
//	  token-ttl: 5m
//	  promoters:                         # who may promote out of buildsets
//	    - {username: release-bot, password-file: /etc/kubepool/release-bot.password}
type BuildsetRegistry struct {
	URL                string
	RepositoryPrefix   string
	PublicRepositories []string
	TTL                time.Duration
	TokenKey           string
	TokenCertificate   string
	Issuer             string
	Service            string
	TokenTTL           time.Duration
	// Promoters may pull every repository and push outside the buildsets'
	// prefix: the identities that promote what buildsets built to
	// release repositories (buildset.Policy.GrantPromoter).
	Promoters []Promoter
}

// Promoter is one entry of buildset-registry.promoters.
type Promoter struct {
	Username     string
	PasswordFile string // read by the launcher at start; one line
}

// Host returns the registry's host[:port] from its URL.
func (b *BuildsetRegistry) Host() string {
	u, err := url.Parse(b.URL)
	if err != nil {
		return ""
	}
	return u.Host
}

// Policy returns the grant policy of the section.
func (b *BuildsetRegistry) Policy() buildset.Policy {
	return buildset.Policy{Prefix: b.RepositoryPrefix, Public: b.PublicRepositories}
}

func (d *decoder) buildsetRegistry(n *yaml.Node, path string) *BuildsetRegistry {
	b := &BuildsetRegistry{
		RepositoryPrefix: buildset.DefaultPrefix,
		TTL:              DefaultBuildsetTTL,
		Issuer:           DefaultBuildsetIssuer,
		TokenTTL:         DefaultBuildsetTokenTTL,
	}
	present := d.object(n, path, keys{
		"url":               func(v *yaml.Node, p string) { b.URL = d.str(v, p) },
		"repository-prefix": func(v *yaml.Node, p string) { b.RepositoryPrefix = d.str(v, p) },
		"public-repositories": func(v *yaml.Node, p string) {
			d.list(v, p, func(item *yaml.Node, p string) { b.PublicRepositories = append(b.PublicRepositories, d.str(item, p)) })
		},
		"ttl":               func(v *yaml.Node, p string) { b.TTL = d.seconds(v, p) },
		"token-key":         func(v *yaml.Node, p string) { b.TokenKey = d.str(v, p) },
		"token-certificate": func(v *yaml.Node, p string) { b.TokenCertificate = d.str(v, p) },
		"issuer":            func(v *yaml.Node, p string) { b.Issuer = d.str(v, p) },
		"service":           func(v *yaml.Node, p string) { b.Service = d.str(v, p) },
		"token-ttl":         func(v *yaml.Node, p string) { b.TokenTTL = d.seconds(v, p) },
		"promoters": func(v *yaml.Node, p string) {
			d.list(v, p, func(item *yaml.Node, p string) {
				var pr Promoter
				present := d.object(item, p, keys{
					"username":      func(v *yaml.Node, p string) { pr.Username = d.str(v, p) },
					"password-file": func(v *yaml.Node, p string) { pr.PasswordFile = d.str(v, p) },
				})
				d.require(item, p, present, "username", "password-file")
				b.Promoters = append(b.Promoters, pr)
			})
		},
	})
	d.require(n, path, present, "url", "token-key", "token-certificate")
	if _, ok := present["service"]; !ok {
		b.Service = b.Host()
	}
	return b
}

// validate checks the section; path is where it is in the file.
func (b *BuildsetRegistry) validate(v *errorList, path string) {
	u, err := url.Parse(b.URL)
	switch {
	case b.URL == "":
	case err != nil:
		v.at(path+".url", "%q is not a URL: %v", b.URL, err)
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "", strings.Trim(u.Path, "/") != "", u.RawQuery != "", u.User != nil:
		v.at(path+".url", "%q: want http(s)://host[:port] and nothing else", b.URL)
	}
	p := b.Policy()
	if err := (buildset.Policy{Prefix: p.Prefix}).Validate(); err != nil {
		v.at(path+".repository-prefix", "%v", err)
	} else {
		for i, pat := range b.PublicRepositories {
			if err := (buildset.Policy{Prefix: p.Prefix, Public: []string{pat}}).Validate(); err != nil {
				v.at(indexPath(path+".public-repositories", i), "%v", err)
			}
		}
	}
	if b.TTL <= 0 {
		v.at(path+".ttl", "must be positive")
	}
	if b.TokenTTL < time.Minute || b.TokenTTL > time.Hour {
		v.at(path+".token-ttl", "%v is out of range (1m0s to 1h0m0s; the spec asks for at least 60 s)", b.TokenTTL)
	}
	seen := map[string]bool{}
	for i, pr := range b.Promoters {
		pp := indexPath(path+".promoters", i)
		switch {
		case !promoterRE.MatchString(pr.Username):
			v.at(pp+".username", "%q: want lower-case letters, digits, '.', '_' and '-', starting with a letter or digit", pr.Username)
		case strings.HasPrefix(pr.Username, buildset.UserPrefix):
			v.at(pp+".username", "%q: names starting with %q are buildsets' own", pr.Username, buildset.UserPrefix)
		case seen[pr.Username]:
			v.at(pp+".username", "%q is listed twice", pr.Username)
		}
		seen[pr.Username] = true
		if pr.PasswordFile != "" && !filepath.IsAbs(pr.PasswordFile) {
			v.at(pp+".password-file", "%q: want an absolute path", pr.PasswordFile)
		}
	}
	for _, f := range []struct{ key, val string }{{"issuer", b.Issuer}, {"service", b.Service}} {
		if f.val == "" {
			v.at(path+"."+f.key, "must not be empty")
		}
	}
}

var promoterRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
