package buildset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/kubepool/kubepool/internal/registrytoken"
)

// manifestTypes are the manifest media types a HEAD accepts, so that the
// registry answers with the stored manifest's own digest.
var manifestTypes = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.v1+prettyjws",
}, ", ")

// Registry deletes buildset images through the registry API (catalog, tags
// list, HEAD manifest, DELETE manifest by digest: distribution 2.8 cannot
// delete by tag). It authenticates with tokens its Issuer grants kubepool
// itself; the registry must have storage.delete.enabled.
type Registry struct {
	// URL is the registry's base URL, "https://host[:port]".
	URL    string
	Issuer *registrytoken.Issuer
	// Client makes the requests; http.DefaultClient if nil.
	Client *http.Client
	// PageSize is how many repositories one catalog request asks for;
	// 1000 if zero.
	PageSize int
}

// RegistryError is an unexpected answer from the registry.
type RegistryError struct {
	Method, URL string
	Status      int
	Body        string
}

func (e *RegistryError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, e.Body)
}

// subject is the sub claim of the tokens kubepool issues itself.
const subject = "kubepool"

func (r *Registry) do(ctx context.Context, method, path string, access []registrytoken.Access, hdr http.Header) (*http.Response, error) {
	tok, err := r.Issuer.Issue(subject, access)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(r.URL, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	c := r.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, req.URL.Redacted(), err)
	}
	return resp, nil
}

func registryError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return &RegistryError{Method: resp.Request.Method, URL: resp.Request.URL.Redacted(), Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
}

// Repositories lists the repositories whose names start with prefix, in
// lexical order, starting the catalog just before prefix.
func (r *Registry) Repositories(ctx context.Context, prefix string) ([]string, error) {
	if !strings.HasSuffix(prefix, "/") || len(prefix) < 2 {
		return nil, fmt.Errorf("repository prefix %q: want a name ending in /", prefix)
	}
	pageSize := r.PageSize
	if pageSize <= 0 {
		pageSize = 1000
	}
	access := []registrytoken.Access{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}
	var out []string
	// The catalog is sorted and "last" is exclusive: everything with the
	// prefix sorts after the prefix without its final slash.
	last := prefix[:len(prefix)-1]
	for {
		q := url.Values{"n": {fmt.Sprint(pageSize)}, "last": {last}}
		resp, err := r.do(ctx, http.MethodGet, "/v2/_catalog?"+q.Encode(), access, nil)
		if err != nil {
			return nil, err
		}
		var page struct {
			Repositories []string `json:"repositories"`
		}
		if resp.StatusCode != http.StatusOK {
			defer resp.Body.Close()
			return nil, registryError(resp)
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("decoding catalog: %w", err)
		}
		for _, name := range page.Repositories {
			if !strings.HasPrefix(name, prefix) {
				// Distribution sorts component-wise ('/' first); other
				// registries may sort plain strings. Past the prefix in
				// both orders, nothing more can match.
				if name > prefix && pathCompare(name, prefix) > 0 {
					return out, nil
				}
				continue
			}
			out = append(out, name)
		}
		if len(page.Repositories) < pageSize {
			return out, nil
		}
		last = page.Repositories[len(page.Repositories)-1]
	}
}

// Tags lists a repository's tags; none if the repository has none or is
// unknown.
func (r *Registry) Tags(ctx context.Context, repo string) ([]string, error) {
	access := []registrytoken.Access{{Type: "repository", Name: repo, Actions: []string{"pull"}}}
	resp, err := r.do(ctx, http.MethodGet, "/v2/"+repo+"/tags/list", access, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, registryError(resp)
	}
	var tl struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tl); err != nil {
		return nil, fmt.Errorf("decoding tags of %s: %w", repo, err)
	}
	return tl.Tags, nil
}

// errGone: the manifest or tag is already gone.
var errGone = errors.New("gone")

// digest returns the digest a tag points at (errGone if none).
func (r *Registry) digest(ctx context.Context, repo, tag string) (string, error) {
	access := []registrytoken.Access{{Type: "repository", Name: repo, Actions: []string{"pull"}}}
	resp, err := r.do(ctx, http.MethodHead, "/v2/"+repo+"/manifests/"+tag, access, http.Header{"Accept": {manifestTypes}})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return "", errGone
	case resp.StatusCode != http.StatusOK:
		return "", registryError(resp)
	}
	d := resp.Header.Get("Docker-Content-Digest")
	if d == "" {
		return "", fmt.Errorf("HEAD %s:%s: no Docker-Content-Digest", repo, tag)
	}
	return d, nil
}

// DeleteRepository deletes every tagged manifest of repo, by digest, and
// returns how many manifests it deleted. Manifests already gone are not an
// error.
func (r *Registry) DeleteRepository(ctx context.Context, repo string) (int, error) {
	tags, err := r.Tags(ctx, repo)
	if err != nil {
		return 0, err
	}
	access := []registrytoken.Access{{Type: "repository", Name: repo, Actions: []string{"delete"}}}
	deleted := 0
	done := map[string]bool{}
	for _, tag := range tags {
		d, err := r.digest(ctx, repo, tag)
		if errors.Is(err, errGone) || done[d] {
			continue
		}
		if err != nil {
			return deleted, err
		}
		resp, err := r.do(ctx, http.MethodDelete, "/v2/"+repo+"/manifests/"+d, access, nil)
		if err != nil {
			return deleted, err
		}
		switch resp.StatusCode {
		case http.StatusAccepted, http.StatusOK:
			deleted++
		case http.StatusNotFound:
		default:
			err := registryError(resp)
			resp.Body.Close()
			return deleted, err
		}
		resp.Body.Close()
		done[d] = true
	}
	return deleted, nil
}

// DeletePrefix deletes the tagged manifests of every repository under prefix.
func (r *Registry) DeletePrefix(ctx context.Context, prefix string) (repos, manifests int, err error) {
	names, err := r.Repositories(ctx, prefix)
	if err != nil {
		return 0, 0, fmt.Errorf("listing repositories under %s: %w", prefix, err)
	}
	for _, name := range names {
		n, err := r.DeleteRepository(ctx, name)
		manifests += n
		if err != nil {
			return repos, manifests, fmt.Errorf("deleting images of %s: %w", name, err)
		}
		repos++
	}
	return repos, manifests, nil
}

// pathCompare compares repository names component-wise, as distribution's
// catalog orders them: a slash sorts before every other byte.
func pathCompare(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		ca, cb := a[i], b[i]
		if ca == '/' {
			ca = 0
		}
		if cb == '/' {
			cb = 0
		}
		if ca != cb {
			return int(ca) - int(cb)
		}
	}
	return len(a) - len(b)
}
