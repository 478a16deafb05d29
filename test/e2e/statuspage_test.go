package e2e

import (
	"bytes"
	"context"
	"image/color"
	"image/png"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/web"
)

// TestStatusPageBrowser opens a real launcher's status page in headless
// chromium while it has work on: a pod node in use, a namespace node ready
// for a fulfilled request, and a failed request. The DOM chromium built must
// list them all, and the screenshot must show their state badges.
func TestStatusPageBrowser(t *testing.T) {
	browser := testenv.Browser(t)
	le := startLauncher(t, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	podReq := le.zuul.Submit([]string{"pod"}, 100, nil)
	req := le.zuul.WaitRequest(ctx, podReq)
	if req["state"] != "fulfilled" {
		t.Fatalf("pod request %s = %v, want fulfilled", podReq, req)
	}
	_, returnPod := le.zuul.AcceptNodes(podReq, req)
	podNode := req["nodes"].([]any)[0].(string)

	nsReq := le.zuul.Submit([]string{"namespace"}, 100, nil)
	nsReqRec := le.zuul.WaitRequest(ctx, nsReq)
	if nsReqRec["state"] != "fulfilled" {
		t.Fatalf("namespace request %s = %v, want fulfilled", nsReq, nsReqRec)
	}
	nsNode := nsReqRec["nodes"].([]any)[0].(string)

	failedReq := le.zuul.Submit([]string{"no-such-label"}, 100, nil)
	if r := le.zuul.WaitRequest(ctx, failedReq); r["state"] != "failed" {
		t.Fatalf("request for an unknown label = %v, want failed", r)
	}

	base := serveStatus(t, le)
	url := base + "/"

	dom, err := browser.DOM(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	for what, id := range map[string]string{"in-use pod node": podNode, "ready namespace node": nsNode, "fulfilled request": nsReq, "failed request": failedReq} {
		if !strings.Contains(dom, "<td>"+id+"</td>") {
			t.Errorf("status page in chromium: no row for the %s %s", what, id)
		}
	}
	if strings.Contains(dom, "not ready") {
		t.Errorf("status page says the launcher is not ready")
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
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 900 {
		t.Fatalf("screenshot is %dx%d, want 1280x900", b.Dx(), b.Dy())
	}
	// Badge colours of the status page (internal/web/status.go), looked for
	// anywhere: presence, not placement.
	counts := map[color.RGBA]int{}
	for y := range 900 {
		for x := range 1280 {
			counts[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	if len(counts) < 50 {
		t.Errorf("screenshot has %d colours: blank?", len(counts))
	}
	for what, c := range map[string]color.RGBA{
		"in-use node":                      {0xdb, 0xe8, 0xfb, 0xff},
		"ready node and fulfilled request": {0xd3, 0xf2, 0xdc, 0xff},
		"failed request":                   {0xfb, 0xd5, 0xd5, 0xff},
	} {
		if counts[c] < 100 {
			t.Errorf("screenshot shows no %s badge (colour %v: %d pixels)", what, c, counts[c])
		}
	}

	// Zuul finishes: both nodes go.
	_, returnNS := le.zuul.AcceptNodes(nsReq, nsReqRec)
	returnPod()
	returnNS()
	le.waitGone(t, podNode, "")
	le.waitGone(t, nsNode, "")
}

// serveStatus serves le's launcher's status endpoints (internal/web) on a
// loopback port until the test ends, and returns their base URL.
func serveStatus(t *testing.T, le *launcherEnv) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&web.Server{Source: le.l}).Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("web.Server.Serve = %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}
