package imageset

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrorKind sorts registry errors by what a person does about them.
type ErrorKind string

const (
	KindAuth     ErrorKind = "auth"      // 401: credentials missing or refused
	KindDenied   ErrorKind = "denied"    // 403
	KindNotFound ErrorKind = "not-found" // 404 and *_UNKNOWN codes
	KindServer   ErrorKind = "server"    // 5xx
	KindNetwork  ErrorKind = "network"   // refused, reset, timed out: the registry is not answering
	KindOther    ErrorKind = "other"
	// KindNotTried: skipped after the registry stopped answering.
	KindNotTried ErrorKind = "not-tried"
)

// RegistryError is a registry request that failed, with what a person
// needs to act on it: which registry, which operation on which reference,
// whether credentials were sent and where they came from, and a hint.
type RegistryError struct {
	Registry string // host[:port]
	Op       string // "GET manifest", "PUT manifest", ...
	Ref      string
	Status   int // HTTP status; 0 if there was no answer
	Kind     ErrorKind
	// Credentials says whether credentials were sent and where from
	// (only for auth and denied errors).
	Credentials string
	Err         error
}

func (e *RegistryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "registry %s: %s %s: %s", e.Registry, e.Op, e.Ref, e.cause())
	if e.Credentials != "" {
		fmt.Fprintf(&b, " (%s)", e.Credentials)
	}
	if h := e.hint(); h != "" {
		b.WriteString("; " + h)
	}
	return b.String()
}

func (e *RegistryError) Unwrap() error { return e.Err }

// cause is the status and the registry's own error body, or the network
// error.
func (e *RegistryError) cause() string {
	var terr *transport.Error
	if !errors.As(e.Err, &terr) {
		var op *net.OpError
		var uerr *url.Error
		switch {
		case errors.As(e.Err, &op):
			return op.Err.Error()
		case errors.As(e.Err, &uerr):
			return uerr.Err.Error()
		}
		return e.Err.Error()
	}
	status := fmt.Sprintf("%d %s", terr.StatusCode, http.StatusText(terr.StatusCode))
	var details []string
	for _, d := range terr.Errors {
		s := string(d.Code)
		if d.Message != "" {
			s += ": " + d.Message
		}
		if d.Detail != nil {
			if m, ok := d.Detail.(map[string]any); !ok || len(m) > 0 {
				s += fmt.Sprintf(" (%v)", d.Detail)
			}
		}
		details = append(details, s)
	}
	if len(details) == 0 {
		// No structured body: transport.Error's text has the raw body
		// when there was one.
		msg := terr.Error()
		if i := strings.Index(msg, ": "); i >= 0 && terr.Request != nil {
			msg = msg[i+2:]
		}
		if strings.Contains(msg, "HEAD responses have no body") {
			return status
		}
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return msg
	}
	return status + ": " + strings.Join(details, "; ")
}

func (e *RegistryError) hint() string {
	switch e.Kind {
	case KindAuth:
		if strings.HasPrefix(e.Credentials, "credentials sent") {
			return fmt.Sprintf("the registry refused them: log in again (docker login %s) or pass the right ones with --creds USER:PASSWORD or --authfile FILE", e.Registry)
		}
		return fmt.Sprintf("log in (docker login %s) or pass --creds USER:PASSWORD or --authfile FILE", e.Registry)
	case KindDenied:
		return "these credentials may not do this here: ask the registry's owner for push/pull rights"
	case KindServer:
		return "the registry failed (see its log): run again once it is healthy; a promotion resumes where it stopped"
	case KindNetwork:
		return "the registry is not answering: check that it is up and reachable, then run again; a promotion resumes where it stopped"
	}
	return ""
}

// wrap turns err from an operation on ref into a *RegistryError (nil
// stays nil; a context cancellation stays as it is).
func (c *Client) wrap(op string, ref name.Reference, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	var rerr *RegistryError
	if errors.As(err, &rerr) {
		return err
	}
	e := &RegistryError{Registry: ref.Context().RegistryStr(), Op: op, Ref: ref.String(), Kind: KindOther, Err: err}
	var terr *transport.Error
	switch {
	case errors.As(err, &terr):
		e.Status = terr.StatusCode
		switch {
		case terr.StatusCode == http.StatusUnauthorized:
			e.Kind = KindAuth
		case terr.StatusCode == http.StatusForbidden:
			e.Kind = KindDenied
		case isNotFound(err):
			e.Kind = KindNotFound
		case terr.StatusCode >= 500:
			e.Kind = KindServer
		}
		for _, d := range terr.Errors {
			if d.Code == transport.UnauthorizedErrorCode && e.Kind == KindOther {
				e.Kind = KindAuth
			}
		}
	case isNetworkError(err):
		e.Kind = KindNetwork
	}
	if e.Kind == KindAuth || e.Kind == KindDenied {
		if src, ok := c.creds.source(e.Registry); ok {
			e.Credentials = src.String()
		} else if e.Kind == KindAuth {
			e.Credentials = "credentials from the caller's keychain"
		}
	}
	return e
}

func isNetworkError(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &op) || errors.As(err, &dns) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "EOF")
}

// KindOf returns the kind of a registry error, KindOther for others.
func KindOf(err error) ErrorKind {
	if errors.Is(err, errNotTried) {
		return KindNotTried
	}
	var rerr *RegistryError
	if errors.As(err, &rerr) {
		return rerr.Kind
	}
	return KindOther
}

// ErrorSummary is a short account of many errors: the first cause and
// how many there were of each kind.
func ErrorSummary(errs []error) string {
	if len(errs) == 0 {
		return ""
	}
	counts := map[ErrorKind]int{}
	for _, err := range errs {
		counts[KindOf(err)]++
	}
	kinds := make([]string, 0, len(counts))
	for k, n := range counts {
		kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(kinds)
	first := errs[0]
	var terr *TargetError
	var rerr *RegistryError
	if errors.As(first, &terr) && errors.As(terr.Err, &rerr) {
		first = rerr // it names the target
	}
	return fmt.Sprintf("first: %v; by kind: %s", first, strings.Join(kinds, ", "))
}

// headError wraps the error of a HEAD of ref. A HEAD answer has no body:
// for a 5xx the manifest is asked for once with GET, whose answer carries
// the registry's error body, and that is reported.
func (c *Client) headError(ctx context.Context, ref name.Reference, err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode >= 500 && len(terr.Errors) == 0 {
		if _, gerr := c.puller.Get(ctx, ref); gerr != nil {
			var gterr *transport.Error
			if errors.As(gerr, &gterr) && gterr.StatusCode >= 500 {
				return c.wrap("HEAD manifest (then GET for the error body)", ref, gerr)
			}
		}
	}
	return c.wrap("HEAD manifest", ref, err)
}
