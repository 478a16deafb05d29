package imageset

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/time/rate"
)

// RegistryOptions configures access to registries.
type RegistryOptions struct {
	// Keychain finds credentials; nil means kubepool's own: Creds, then
	// AuthFile (else $REGISTRY_AUTH_FILE), then docker's config.json
	// ($DOCKER_CONFIG or ~/.docker, with credential helpers), remembering
	// where each registry's came from for error messages. Basic and token
	// auth are negotiated with the registry.
	Keychain authn.Keychain
	// Creds is "USER:PASSWORD" for every registry (skopeo's --creds).
	Creds string
	// AuthFile is a containers auth.json or docker config.json to read
	// credentials from (skopeo's --authfile); it must exist.
	AuthFile string
	// CAFile is a PEM bundle trusted in addition to the system roots.
	CAFile string
	// Insecure allows plain HTTP (and unverified TLS) for every registry.
	// Loopback and localhost registries get plain HTTP without it.
	Insecure bool
	// Jobs bounds concurrent requests per operation; 0 means 8.
	Jobs int
	// RequestsPerSecond limits requests to each registry host; 0 means no limit.
	RequestsPerSecond float64
	// Retries is how many times a request that fails with 408, 429 or 5xx
	// (or a network error) is tried again, with exponential backoff; 0
	// means 4, negative means none.
	Retries int
	// PageSize is the number of tags asked for per tags/list page; 0 means 1000.
	PageSize int
	// WrapTransport, if set, wraps the HTTP transport (tracing, tests).
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// Logger receives debug records; nil logs nothing.
	Logger *slog.Logger
	// OnProgress, if set, is told of each image done in each phase of
	// discover, promote, rollback and copy (from several goroutines).
	OnProgress func(Progress)
}

// Stats counts what a [Client] sent.
type Stats struct {
	Requests        int64 // HTTP requests, retries included
	ManifestPuts    int64
	BlobUploads     int64 // blob upload requests (POST/PATCH/PUT under /blobs/uploads/)
	BlobUploadBytes int64 // bytes of blob data sent
}

// Client talks to registries on behalf of discover and promote.
type Client struct {
	opts     RegistryOptions
	log      *slog.Logger
	puller   *remote.Puller
	pusher   *remote.Pusher
	nameOpts []name.Option
	counter  *countingTransport
	creds    *credentials // nil with a caller's Keychain

	delMu    sync.Mutex
	deletion map[string]*tagDeletionProbe // registry host -> probe
}

// NewClient builds a Client. It reads CAFile now.
func NewClient(opts RegistryOptions) (*Client, error) {
	if opts.Jobs <= 0 {
		opts.Jobs = 8
	}
	switch {
	case opts.Retries == 0:
		opts.Retries = 4
	case opts.Retries < 0:
		opts.Retries = 0
	}
	var creds *credentials
	switch {
	case opts.Keychain != nil && (opts.Creds != "" || opts.AuthFile != ""):
		return nil, errors.New("registry options: a Keychain and Creds or AuthFile are exclusive")
	case opts.Keychain == nil:
		var err error
		if creds, err = newCredentials(opts.Creds, opts.AuthFile); err != nil {
			return nil, err
		}
		opts.Keychain = creds
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = opts.Jobs * 2
	base.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("reading CA file %s: no PEM certificates in it", opts.CAFile)
		}
		base.TLSClientConfig.RootCAs = pool
	}
	if opts.Insecure {
		base.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // asked for with --insecure
	}
	var rt http.RoundTripper = base
	if opts.WrapTransport != nil {
		rt = opts.WrapTransport(rt)
	}
	counter := &countingTransport{next: rt, rps: opts.RequestsPerSecond, limiters: map[string]*rate.Limiter{}}

	ropts := []remote.Option{
		remote.WithTransport(&pingCache{next: putDigestRecorder{counter}}),
		remote.WithAuthFromKeychain(opts.Keychain),
		remote.WithJobs(opts.Jobs),
		remote.WithUserAgent("kubepool"),
		remote.WithPageSize(cmp.Or(opts.PageSize, 1000)),
		remote.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests,
			http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout),
		remote.WithRetryBackoff(remote.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: opts.Retries + 1}),
	}
	puller, err := remote.NewPuller(ropts...)
	if err != nil {
		return nil, fmt.Errorf("creating registry client: %w", err)
	}
	pusher, err := remote.NewPusher(append(ropts, remote.Reuse(puller))...)
	if err != nil {
		return nil, fmt.Errorf("creating registry client: %w", err)
	}
	var nameOpts []name.Option
	if opts.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	return &Client{opts: opts, log: log, puller: puller, pusher: pusher, nameOpts: nameOpts, counter: counter,
		creds: creds, deletion: map[string]*tagDeletionProbe{}}, nil
}

// Stats returns what the client has sent so far.
func (c *Client) Stats() Stats {
	return Stats{
		Requests:        c.counter.requests.Load(),
		ManifestPuts:    c.counter.manifestPuts.Load(),
		BlobUploads:     c.counter.blobUploads.Load(),
		BlobUploadBytes: c.counter.blobBytes.Load(),
	}
}

func (c *Client) ref(img Image, tag string) (name.Tag, error) {
	if tag != "" {
		img = img.WithTag(tag)
	}
	return img.Reference(c.nameOpts...)
}

// isNotFound reports whether err is a registry's "no such manifest".
func isNotFound(err error) bool {
	var terr *transport.Error
	if errors.As(err, &terr) {
		if terr.StatusCode == http.StatusNotFound {
			return true
		}
		for _, d := range terr.Errors {
			if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
				return true
			}
		}
	}
	return false
}

// rawManifest is manifest bytes to PUT as they are: same digest, no blobs.
type rawManifest struct {
	body      []byte
	mediaType types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.body, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mediaType, nil }

// pingCache answers the registry's version check (GET /v2/) once per
// scheme and host. go-containerregistry pings the registry for every
// repository it reads or writes (twice for plain-HTTP registries: https
// first), to learn the auth challenge and scheme; the answer is the same for
// every repository of a registry, so only the first ping of each is sent.
// 200 and 401 answers are kept, and so is the TLS error of an https ping
// to a plain-HTTP registry (loopback, --insecure); anything else (a 5xx, a
// network error) is passed through and asked again next time.
type pingCache struct {
	next http.RoundTripper

	mu      sync.Mutex
	answers map[string]*pingAnswer // scheme://host
}

type pingAnswer struct {
	once   sync.Once
	status int
	header http.Header
	err    error
	keep   bool
}

func (p *pingCache) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.URL.Path != "/v2/" {
		return p.next.RoundTrip(req)
	}
	key := req.URL.Scheme + "://" + req.URL.Host
	p.mu.Lock()
	if p.answers == nil {
		p.answers = map[string]*pingAnswer{}
	}
	a, ok := p.answers[key]
	if !ok {
		a = &pingAnswer{}
		p.answers[key] = a
	}
	p.mu.Unlock()

	var first *http.Response
	var firstErr error
	a.once.Do(func() {
		first, firstErr = p.next.RoundTrip(req)
		var plain tls.RecordHeaderError
		switch {
		case firstErr != nil:
			a.err, a.keep = firstErr, req.URL.Scheme == "https" && errors.As(firstErr, &plain)
		case first.StatusCode == http.StatusOK || first.StatusCode == http.StatusUnauthorized:
			a.status, a.header, a.keep = first.StatusCode, first.Header.Clone(), true
		}
		if !a.keep {
			p.mu.Lock()
			delete(p.answers, key)
			p.mu.Unlock()
		}
	})
	switch {
	case first != nil || firstErr != nil:
		return first, firstErr
	case !a.keep:
		return p.next.RoundTrip(req)
	case a.err != nil:
		return nil, a.err
	}
	return &http.Response{
		Status:     fmt.Sprintf("%d %s", a.status, http.StatusText(a.status)),
		StatusCode: a.status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  a.header.Clone(),
		Body:    http.NoBody,
		Request: req,
	}, nil
}

// countingTransport counts requests and uploaded blob bytes, and applies
// the per-host rate limit.
type countingTransport struct {
	next http.RoundTripper
	rps  float64

	mu       sync.Mutex
	limiters map[string]*rate.Limiter

	requests, manifestPuts, blobUploads, blobBytes atomic.Int64
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.rps > 0 {
		t.mu.Lock()
		l, ok := t.limiters[req.URL.Host]
		if !ok {
			burst := max(int(t.rps), 1)
			l = rate.NewLimiter(rate.Limit(t.rps), burst)
			t.limiters[req.URL.Host] = l
		}
		t.mu.Unlock()
		if err := l.Wait(req.Context()); err != nil {
			return nil, fmt.Errorf("waiting for rate limit of %s: %w", req.URL.Host, err)
		}
	}
	t.requests.Add(1)
	switch {
	case req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/manifests/"):
		t.manifestPuts.Add(1)
	case req.Method != http.MethodGet && req.Method != http.MethodHead && strings.Contains(req.URL.Path, "/blobs/uploads/"):
		t.blobUploads.Add(1)
		if req.Body != nil && req.Body != http.NoBody {
			req = req.Clone(req.Context())
			req.Body = &countingBody{ReadCloser: req.Body, n: &t.blobBytes}
		}
	}
	return t.next.RoundTrip(req)
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// putDigestKey carries a *string in a request's context: the manifest PUT
// made with that context stores the Docker-Content-Digest of the answer
// there. The registry computes that digest from the bytes it stored, so a
// matching answer verifies the write without another request.
type putDigestKey struct{}

func withPutDigest(ctx context.Context, sink *string) context.Context {
	return context.WithValue(ctx, putDigestKey{}, sink)
}

type putDigestRecorder struct{ next http.RoundTripper }

func (p putDigestRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.next.RoundTrip(req)
	if err == nil && req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/manifests/") && resp.StatusCode/100 == 2 {
		if sink, ok := req.Context().Value(putDigestKey{}).(*string); ok {
			*sink = resp.Header.Get("Docker-Content-Digest")
		}
	}
	return resp, err
}

// TagDeletion is whether a registry can delete a tag alone (without the
// manifest, which would take every other tag of it along).
type TagDeletion string

const (
	TagDeletionSupported TagDeletion = "supported"
	// TagDeletionUnsupported: the registry deletes manifests by digest
	// only (distribution 2.x answers DELETE by tag with DIGEST_INVALID).
	TagDeletionUnsupported TagDeletion = "unsupported"
	// TagDeletionDisabled: the registry deletes nothing (405).
	TagDeletionDisabled TagDeletion = "disabled"
	TagDeletionUnknown  TagDeletion = "unknown"
)

type tagDeletionProbe struct {
	once sync.Once
	res  TagDeletion
	err  error
}

// TagDeletion asks, once per registry, whether repo's registry can delete a
// tag: a DELETE of a tag that does not exist (a random name) changes
// nothing and tells apart "no such tag" (it can), DIGEST_INVALID (by
// digest only) and 405 (deletion disabled).
func (c *Client) TagDeletion(ctx context.Context, repo name.Repository) (TagDeletion, error) {
	c.delMu.Lock()
	p, ok := c.deletion[repo.RegistryStr()]
	if !ok {
		p = &tagDeletionProbe{}
		c.deletion[repo.RegistryStr()] = p
	}
	c.delMu.Unlock()
	p.once.Do(func() {
		var b [8]byte
		_, _ = rand.Read(b[:])
		probe := repo.Tag("kubepool-probe-" + hex.EncodeToString(b[:]))
		err := c.pusher.Delete(ctx, probe)
		var terr *transport.Error
		switch {
		case err == nil:
			p.res = TagDeletionSupported // a registry that says yes to nothing
		case errors.As(err, &terr):
			switch {
			case terr.StatusCode == http.StatusMethodNotAllowed:
				p.res = TagDeletionDisabled
			case slices.ContainsFunc(terr.Errors, func(d transport.Diagnostic) bool { return d.Code == transport.DigestInvalidErrorCode }):
				p.res = TagDeletionUnsupported
			case isNotFound(err):
				p.res = TagDeletionSupported
			default:
				p.res, p.err = TagDeletionUnknown, c.wrap("DELETE manifest", probe, err)
			}
		default:
			p.res, p.err = TagDeletionUnknown, c.wrap("DELETE manifest", probe, err)
		}
		if p.err != nil {
			// Ask again next time: a network error says nothing.
			c.delMu.Lock()
			delete(c.deletion, repo.RegistryStr())
			c.delMu.Unlock()
		}
	})
	return p.res, p.err
}
