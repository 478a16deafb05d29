package registrytoken

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// ErrUnauthorized is what an Authorizer returns (wrapped) for credentials it
// does not accept: unknown user, wrong or revoked secret. The handler answers
// 401 with a Basic challenge.
var ErrUnauthorized = errors.New("unauthorized")

// Authorizer decides who a token request is and what it may have.
type Authorizer interface {
	// Authorize checks the basic-auth credentials (user "" for an anonymous
	// request) and returns the token's subject and the part of requested
	// the caller may have; it may grant fewer actions than asked, or none.
	Authorize(ctx context.Context, user, password string, requested []Access) (subject string, granted []Access, err error)
}

// MaxScopes bounds the scopes one token request may ask for.
const MaxScopes = 64

// Handler serves a token endpoint. It is safe for concurrent use.
type Handler struct {
	Issuer     *Issuer
	Authorizer Authorizer
	// Realm is the realm of the Basic challenge sent with a 401.
	Realm string
	// Log receives one record per refused request; nil logs nothing.
	Log *slog.Logger
}

// tokenResponse is the JSON the endpoint returns: token.md's GET response
// (token, access_token) and oauth.md's POST response (access_token, scope).
type tokenResponse struct {
	Token       string `json:"token,omitempty"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
	Scope       string `json:"scope,omitempty"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var (
		user, password string
		service        string
		scopes         []string
		oauth          bool
	)
	switch r.Method {
	case http.MethodGet:
		q := r.URL.Query()
		service, scopes = q.Get("service"), q["scope"]
		if r.Header.Get("Authorization") != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u == "" {
				h.unauthorized(w, r, "", "malformed Authorization header")
				return
			}
			user, password = u, p
		}
		if acct := q.Get("account"); acct != "" && acct != user {
			h.fail(w, r, http.StatusBadRequest, "invalid_request", "account does not match the credentials")
			return
		}
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			h.fail(w, r, http.StatusBadRequest, "invalid_request", "parsing form: "+err.Error())
			return
		}
		oauth = true
		service = r.PostForm.Get("service")
		if s := r.PostForm.Get("scope"); s != "" {
			scopes = []string{s}
		}
		switch gt := r.PostForm.Get("grant_type"); gt {
		case "password":
			user, password = r.PostForm.Get("username"), r.PostForm.Get("password")
			if user == "" {
				h.unauthorized(w, r, "", "password grant without username")
				return
			}
		default:
			// No refresh tokens: they would outlive a buildset's
			// revocation. Clients fall back to GET with basic auth.
			h.fail(w, r, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("grant_type %q is not supported", gt))
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		h.fail(w, r, http.StatusMethodNotAllowed, "unsupported", "method not allowed")
		return
	}
	if service != "" && service != h.Issuer.Service {
		h.fail(w, r, http.StatusBadRequest, "invalid_request", fmt.Sprintf("unknown service %q", service))
		return
	}
	var requested []Access
	for _, s := range scopes {
		as, err := ParseScope(s)
		if err != nil {
			h.fail(w, r, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		requested = append(requested, as...)
		if len(requested) > MaxScopes {
			h.fail(w, r, http.StatusBadRequest, "invalid_request", "too many scopes")
			return
		}
	}

	subject, granted, err := h.Authorizer.Authorize(r.Context(), user, password, requested)
	if errors.Is(err, ErrUnauthorized) {
		h.unauthorized(w, r, user, err.Error())
		return
	}
	if err != nil {
		h.fail(w, r, http.StatusInternalServerError, "internal", "authorizing: "+err.Error())
		return
	}
	granted = Intersect(requested, granted)
	tok, err := h.Issuer.Issue(subject, granted)
	if err != nil {
		h.fail(w, r, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	resp := tokenResponse{AccessToken: tok.Token, ExpiresIn: tok.ExpiresIn, IssuedAt: tok.IssuedAt.Format("2006-01-02T15:04:05Z07:00")}
	if oauth {
		scope := make([]string, len(granted))
		for i, g := range granted {
			scope[i] = g.String()
		}
		resp.Scope = strings.Join(scope, " ")
	} else {
		resp.Token = tok.Token
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
}

// Intersect returns the accesses of granted reduced to what requested asks
// for: each granted action must have been requested on the same type, class
// and name. Accesses left with no action are dropped.
func Intersect(requested, granted []Access) []Access {
	var out []Access
	for _, g := range granted {
		var acts []string
		for _, r := range requested {
			if r.Type != g.Type || r.Class != g.Class || r.Name != g.Name {
				continue
			}
			for _, a := range g.Actions {
				if slices.Contains(r.Actions, a) && !slices.Contains(acts, a) {
					acts = append(acts, a)
				}
			}
		}
		if len(acts) > 0 {
			out = append(out, Access{Type: g.Type, Class: g.Class, Name: g.Name, Actions: acts})
		}
	}
	return out
}

func (h *Handler) unauthorized(w http.ResponseWriter, r *http.Request, user, reason string) {
	w.Header().Set("WWW-Authenticate", "Basic realm="+strconv.Quote(h.Realm))
	h.log(r, http.StatusUnauthorized, "user", user, "reason", reason)
	writeErrors(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	h.log(r, status, "reason", msg)
	writeErrors(w, status, strings.ToUpper(code), msg)
}

func (h *Handler) log(r *http.Request, status int, args ...any) {
	if h.Log == nil {
		return
	}
	h.Log.InfoContext(r.Context(), "token request refused", append([]any{"status", status, "remote", r.RemoteAddr}, args...)...)
}

// writeErrors writes the registry error envelope ({"errors":[...]}) that
// docker and containerd print, with the OAuth2 "error" field alongside.
func writeErrors(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error":             strings.ToLower(code),
		"error_description": msg,
		"errors":            []map[string]string{{"code": code, "message": msg}},
	})
}
