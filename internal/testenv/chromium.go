package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Chromium is Debian's chromium, run headless, one process per page load,
// each with a profile of its own.
type Chromium struct {
	Path string
}

// chromiumPaths are where Debian's chromium package puts its launcher.
var chromiumPaths = []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"}

// Browser returns the machine's chromium. When there is none it skips the
// test, unless KUBEPOOL_E2E=1: then it fails it (hack/devcluster/deps.sh
// installs chromium).
func Browser(t testing.TB) *Chromium {
	t.Helper()
	for _, p := range chromiumPaths {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return &Chromium{Path: p}
		}
	}
	if E2E() {
		t.Fatalf("chromium not found at %v: install it with hack/devcluster/deps.sh (apt-get install chromium)", chromiumPaths)
	}
	t.Skipf("browser test: chromium not found at %v (apt-get install chromium, or run with KUBEPOOL_E2E=1 to make this a failure)", chromiumPaths)
	return nil
}

// Screenshot loads url in a width×height window and returns the PNG
// chromium writes once the page has loaded.
func (c *Chromium) Screenshot(ctx context.Context, url string, width, height int) ([]byte, error) {
	dir, err := os.MkdirTemp("", "chromium-")
	if err != nil {
		return nil, fmt.Errorf("taking a screenshot of %s: %w", url, err)
	}
	defer os.RemoveAll(dir)
	file := dir + "/screenshot.png"
	if _, err := c.run(ctx, dir, "--screenshot="+file, fmt.Sprintf("--window-size=%d,%d", width, height), "--hide-scrollbars", url); err != nil {
		return nil, fmt.Errorf("taking a screenshot of %s: %w", url, err)
	}
	png, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("taking a screenshot of %s: %w", url, err)
	}
	return png, nil
}

// DOM loads url and returns its DOM, serialized after the page has loaded
// (so it shows what scripts did, unlike the HTTP response).
func (c *Chromium) DOM(ctx context.Context, url string) (string, error) {
	dir, err := os.MkdirTemp("", "chromium-")
	if err != nil {
		return "", fmt.Errorf("dumping the DOM of %s: %w", url, err)
	}
	defer os.RemoveAll(dir)
	out, err := c.run(ctx, dir, "--dump-dom", url)
	if err != nil {
		return "", fmt.Errorf("dumping the DOM of %s: %w", url, err)
	}
	return out, nil
}

// run runs chromium headless with a profile in dir and returns its stdout.
// On error, the last lines of its stderr are in the error.
func (c *Chromium) run(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.Path, append([]string{
		"--headless",
		"--no-sandbox", // the tests run as root, where the sandbox will not start
		"--disable-gpu",
		"--disable-quic",
		"--no-first-run",
		"--disable-background-networking",
		"--disable-component-update",
		"--disable-sync",
		"--disable-extensions",
		"--disable-dev-shm-usage",
		"--user-data-dir=" + dir + "/profile",
	}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Chromium forks helpers (zygote, renderer): end the whole group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("running %s: %w\n%s", c.Path, err, lastLines(stderr.String(), 20))
	}
	return stdout.String(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ArtifactDir is where a test keeps files for people to look at, such as
// screenshots: $KUBEPOOL_ARTIFACTS/<test name> when that is set (kept after
// the test), else a t.TempDir().
func ArtifactDir(t testing.TB) string {
	t.Helper()
	root := os.Getenv("KUBEPOOL_ARTIFACTS")
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("making artifact directory: %v", err)
	}
	return dir
}
