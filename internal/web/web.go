// Package web serves the launcher's HTTP endpoints: Nodepool-webapp-compatible
// JSON (/node-list, /request-list, /label-list, /dib-image-list), a small
// human status page, Prometheus /metrics, and /healthz and /readyz.
//
// The server reads what it shows from a Source; it never writes anything.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Source provides what the endpoints show. Each method is called per HTTP
// request and should be cheap (the launcher answers from its cache).
type Source interface {
	// Nodes, Requests and Labels return rows in Nodepool webapp's shape.
	Nodes(ctx context.Context) ([]map[string]any, error)
	Requests(ctx context.Context) ([]map[string]any, error)
	Labels(ctx context.Context) ([]map[string]any, error)
	// Ready reports whether the launcher is serving requests (connected to
	// ZooKeeper, components registered); the error says why not.
	Ready(ctx context.Context) error
}

// Server is the launcher's HTTP server.
type Server struct {
	Addr     string
	Source   Source
	Gatherer prometheus.Gatherer
	Log      *slog.Logger
	// Routes are further handlers by ServeMux pattern (the launcher's
	// registry token endpoints).
	Routes map[string]http.Handler
}

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.Source.Ready(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if s.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{}))
	}
	list := func(f func(context.Context) ([]map[string]any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			rows, err := f(r.Context())
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			if rows == nil {
				rows = []map[string]any{}
			}
			writeJSON(w, rows)
		}
	}
	mux.HandleFunc("GET /node-list", list(s.Source.Nodes))
	mux.HandleFunc("GET /request-list", list(s.Source.Requests))
	mux.HandleFunc("GET /label-list", list(s.Source.Labels))
	mux.HandleFunc("GET /dib-image-list", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, []any{}) })
	mux.HandleFunc("GET /image-list", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, []any{}) })
	mux.HandleFunc("GET /{$}", s.statusPage)
	for pattern, h := range s.Routes {
		mux.Handle(pattern, h)
	}
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// ListenAndServe serves until ctx ends, then shuts down gracefully.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("shutting down HTTP server: %w", err)
		}
		return nil
	}
}
