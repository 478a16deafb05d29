package web

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/testenv"
)

// staticSource serves fixed rows.
type staticSource struct {
	nodes, requests, labels []map[string]any
	notReady                error
}

func (s staticSource) Nodes(context.Context) ([]map[string]any, error)    { return s.nodes, nil }
func (s staticSource) Requests(context.Context) ([]map[string]any, error) { return s.requests, nil }
func (s staticSource) Labels(context.Context) ([]map[string]any, error)   { return s.labels, nil }
func (s staticSource) Ready(context.Context) error                        { return s.notReady }

// sampleSource is a launcher in the middle of its work: nodes in several
// states, a request being served and one that failed.
func sampleSource() staticSource {
	return staticSource{
		nodes: []map[string]any{
			{"id": "0000000101", "label": "pod", "state": "in-use", "age": 95, "provider": "devcluster", "external_id": "main-pod-0000000101", "interface_ip": "pod", "allocated_to": "100-0000000007", "locked": "locked"},
			{"id": "0000000102", "label": "pod", "state": "ready", "age": 12, "provider": "devcluster", "external_id": "main-pod-0000000102", "interface_ip": "pod", "locked": "unlocked"},
			{"id": "0000000103", "label": "namespace", "state": "building", "age": 1, "provider": "devcluster", "external_id": "main-namespace-0000000103", "allocated_to": "200-0000000009", "locked": "locked"},
			{"id": "0000000104", "label": "pod", "state": "hold", "age": 3600, "provider": "devcluster", "external_id": "main-pod-0000000104", "interface_ip": "pod", "locked": "unlocked", "comment": "debugging job tox-py312"},
		},
		requests: []map[string]any{
			{"id": "200-0000000009", "state": "pending", "node_types": []string{"namespace"}, "nodes": []string{"0000000103"}, "requestor": "zuul-scheduler", "declined_by": []string{}, "age": 2},
			{"id": "100-0000000008", "state": "failed", "node_types": []any{"gpu"}, "nodes": []any{}, "requestor": "zuul-scheduler", "declined_by": []any{"devcluster-main-launcher"}, "age": 30},
		},
		labels: []map[string]any{
			{"name": "pod", "ready": 1, "min_ready": 1, "launchers": []string{"devcluster/main@launcher-0"}},
			{"name": "namespace", "ready": 0, "min_ready": 0, "launchers": []string{"devcluster/main@launcher-0"}},
		},
	}
}

func TestStatusPageHTML(t *testing.T) {
	for _, tt := range []struct {
		name string
		src  staticSource
		want []string
	}{
		{"busy", sampleSource(), []string{"0000000101", "0000000104", "200-0000000009", "100-0000000008", "debugging job tox-py312", "in-use: 1", `class="state failed"`, "1m35s", "1h00m"}},
		{"empty", staticSource{}, []string{"no nodes", "no requests", "no labels"}},
		{"not ready", staticSource{notReady: errors.New("ZooKeeper session lost")}, []string{"not ready: ZooKeeper session lost"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := &Server{Source: tt.src}
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
				t.Fatalf("GET / = %d %q, want 200 text/html", rec.Code, rec.Header().Get("Content-Type"))
			}
			body := rec.Body.String()
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("GET / has no %q:\n%s", w, body)
				}
			}
		})
	}
}

func TestHumanAge(t *testing.T) {
	for _, tt := range []struct {
		in   any
		want string
	}{
		{nil, ""}, {0, "0s"}, {int64(59), "59s"}, {60, "1m00s"}, {float64(3599), "59m59s"},
		{3600, "1h00m"}, {int64(86399), "23h59m"}, {86400 + 3*3600, "1d3h"}, {"soon", "soon"},
	} {
		if got := humanAge(tt.in); got != tt.want {
			t.Errorf("humanAge(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestStatusPageBrowser renders the status page in a real browser
// (headless chromium) and checks what a person would see: every node and
// request listed in the DOM chromium built, and a screenshot of the right
// size that shows the state badges of nodes and requests.
func TestStatusPageBrowser(t *testing.T) {
	browser := testenv.Browser(t)
	src := sampleSource()
	url := serve(t, &Server{Source: src})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	dom, err := browser.DOM(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	for _, rows := range [][]map[string]any{src.nodes, src.requests} {
		for _, r := range rows {
			id := r["id"].(string)
			if !strings.Contains(dom, "<td>"+id+"</td>") {
				t.Errorf("rendered DOM has no table cell for %q", id)
			}
		}
	}

	shot, err := browser.Screenshot(ctx, url, 1280, 900)
	if err != nil {
		t.Fatal(err)
	}
	artifact := filepath.Join(testenv.ArtifactDir(t), "status.png")
	if err := os.WriteFile(artifact, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", artifact)
	checkScreenshot(t, shot, 1280, 900, map[string]color.RGBA{
		"in-use node":     stateColors["in-use"],
		"ready node":      stateColors["ready"],
		"building node":   stateColors["building"],
		"hold node":       stateColors["hold"],
		"failed request":  stateColors["failed"],
		"pending request": stateColors["pending"],
	})
}

// stateColors are the status page's badge backgrounds (see status.go).
var stateColors = map[string]color.RGBA{
	"ready":    {0xd3, 0xf2, 0xdc, 0xff},
	"in-use":   {0xdb, 0xe8, 0xfb, 0xff},
	"pending":  {0xdb, 0xe8, 0xfb, 0xff},
	"building": {0xfd, 0xf1, 0xcc, 0xff},
	"failed":   {0xfb, 0xd5, 0xd5, 0xff},
	"hold":     {0xea, 0xdc, 0xf8, 0xff},
}

// checkScreenshot checks that shot is a PNG of width×height with
// non-trivial content (many colours, a good share of pixels off the page
// background) that shows each of the named badge colours. It looks for
// colours, not for pixels at places: fonts and layout may vary.
func checkScreenshot(t *testing.T, shot []byte, width, height int, badges map[string]color.RGBA) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != width || b.Dy() != height {
		t.Fatalf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), width, height)
	}
	counts := colorCounts(img)
	background := counts[color.RGBA{0xfb, 0xfc, 0xfd, 0xff}]
	if len(counts) < 50 || background > width*height*98/100 {
		t.Errorf("screenshot looks blank: %d colours, %d of %d pixels page background", len(counts), background, width*height)
	}
	for what, c := range badges {
		// A badge is about 40×15 pixels; text covers part of it.
		if n := counts[c]; n < 100 {
			t.Errorf("screenshot shows no %s badge (colour %v: %d pixels)", what, c, n)
		}
	}
}

func colorCounts(img image.Image) map[color.RGBA]int {
	counts := map[color.RGBA]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			counts[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	return counts
}

// serve runs srv on a loopback port until the test ends and returns its URL.
func serve(t *testing.T, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
	return "http://" + ln.Addr().String() + "/"
}
