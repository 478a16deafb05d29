package web

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "kubepool_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	ready := &Server{Source: sampleSource(), Gatherer: reg}
	notReady := &Server{Source: staticSource{notReady: errors.New("no ZooKeeper session")}}

	for _, tt := range []struct {
		srv      *Server
		path     string
		code     int
		ctype    string
		contains string
	}{
		{ready, "/healthz", 200, "text/plain", "ok"},
		{ready, "/readyz", 200, "text/plain", "ok"},
		{notReady, "/healthz", 200, "text/plain", "ok"},
		{notReady, "/readyz", 503, "text/plain", "not ready: no ZooKeeper session"},
		{ready, "/node-list", 200, "application/json", `"id":"0000000101"`},
		{ready, "/request-list", 200, "application/json", `"id":"200-0000000009"`},
		{ready, "/label-list", 200, "application/json", `"name":"namespace"`},
		{notReady, "/node-list", 200, "application/json", "[]"}, // no rows is an empty list, not null
		{ready, "/dib-image-list", 200, "application/json", "[]"},
		{ready, "/image-list", 200, "application/json", "[]"},
		{ready, "/metrics", 200, "text/plain", "kubepool_test_total 1"},
		{notReady, "/metrics", 404, "text/plain", ""}, // no Gatherer, no /metrics
		{ready, "/no-such-page", 404, "text/plain", ""},
		{ready, "/", 200, "text/html", "kubepool launcher"},
	} {
		rec := httptest.NewRecorder()
		tt.srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != tt.code || !strings.HasPrefix(rec.Header().Get("Content-Type"), tt.ctype) || !strings.Contains(string(body), tt.contains) {
			t.Errorf("GET %s = %d %q %.200q, want %d %s containing %q", tt.path, rec.Code, rec.Header().Get("Content-Type"), body, tt.code, tt.ctype, tt.contains)
		}
	}

	rec := httptest.NewRecorder()
	ready.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/node-list", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /node-list = %d, want %d: the server only reads", rec.Code, http.StatusMethodNotAllowed)
	}
}

// TestServe checks the server answers on a real socket and stops when its
// context ends.
func TestServe(t *testing.T) {
	url := serve(t, &Server{Source: sampleSource()})
	resp, err := http.Get(url + "healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz = %d, want 200", resp.StatusCode)
	}
}
