package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// registryBinary is Debian's distribution registry (package docker-registry).
const registryBinary = "/usr/bin/docker-registry"

// RegistryServer is a running registry. Host is "127.0.0.1:PORT"; it speaks
// plain HTTP, which clients allow for loopback addresses.
type RegistryServer struct {
	Host string
	// Username and Password are set when the registry was started with
	// [WithHtpasswd].
	Username, Password string
	// Dir is the registry's storage root.
	Dir string

	t       testing.TB
	conf    string
	logPath string
	mu      sync.Mutex
	stop    func() // stops the running process; nil when stopped
}

// Stop stops the registry process (SIGKILL, like a crash) and waits for it
// to exit; its storage stays. Start runs it again.
func (r *RegistryServer) Stop() {
	r.mu.Lock()
	stop := r.stop
	r.stop = nil
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Start starts a stopped registry again on the same address and storage,
// and returns once it answers.
func (r *RegistryServer) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stop != nil {
		return nil
	}
	return startRegistry(r.t, r, r.conf, r.logPath)
}

// URL returns the registry's base URL, "http://127.0.0.1:PORT".
func (r *RegistryServer) URL() string { return "http://" + r.Host }

// RegistryOption configures [Registry].
type RegistryOption func(*registryConfig)

type registryConfig struct {
	user, password string
	token          *TokenAuth
}

// TokenAuth is the `auth: token` section of a registry's configuration
// (distribution's token authentication).
type TokenAuth struct {
	// Realm is the token endpoint's URL.
	Realm string
	// Service and Issuer are what the registry checks a token's aud and iss
	// claims against.
	Service, Issuer string
	// RootCertBundle is a PEM file with the certificates of the keys that
	// may sign tokens.
	RootCertBundle string
}

// WithTokenAuth makes the registry require bearer tokens from a token
// server, as configured by ta. The registry is started with deletes enabled,
// like every registry of this package.
func WithTokenAuth(ta TokenAuth) RegistryOption {
	return func(c *registryConfig) { c.token = &ta }
}

// WithHtpasswd makes the registry require basic auth with this user and
// password (htpasswd file, bcrypt).
func WithHtpasswd(user, password string) RegistryOption {
	return func(c *registryConfig) { c.user, c.password = user, password }
}

// Registry starts Debian's docker-registry for this test on a free loopback
// port, with its storage in t.TempDir(), and stops it when the test ends.
// It returns once /v2/ answers.
func Registry(t testing.TB, opts ...RegistryOption) *RegistryServer {
	t.Helper()
	var cfg registryConfig
	for _, o := range opts {
		o(&cfg)
	}
	waitForFile(t, registryBinary, 5*time.Minute)

	dir := t.TempDir()
	srv := &RegistryServer{Dir: filepath.Join(dir, "storage"), Username: cfg.user, Password: cfg.password}
	var auth string
	if cfg.user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(cfg.password), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("hashing registry password: %v", err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(cfg.user+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatalf("writing htpasswd: %v", err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: kubepool-test\n    path: %s\n", htpasswd)
	}
	if ta := cfg.token; ta != nil {
		if cfg.user != "" {
			t.Fatal("testenv.Registry: WithHtpasswd and WithTokenAuth exclude each other")
		}
		auth = fmt.Sprintf("auth:\n  token:\n    realm: %q\n    service: %q\n    issuer: %q\n    rootcertbundle: %q\n",
			ta.Realm, ta.Service, ta.Issuer, ta.RootCertBundle)
	}

	// A free port can be taken by someone else between our probe and the
	// registry's bind: try a few times.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		srv.Host = fmt.Sprintf("127.0.0.1:%d", port)
		conf := filepath.Join(dir, fmt.Sprintf("config-%d.yml", attempt))
		body := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
%s`, srv.Dir, srv.Host, auth)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatalf("writing registry config: %v", err)
		}
		srv.t, srv.conf, srv.logPath = t, conf, filepath.Join(dir, fmt.Sprintf("registry-%d.log", attempt))
		lastErr = startRegistry(t, srv, conf, srv.logPath)
		if lastErr == nil {
			return srv
		}
	}
	t.Fatalf("starting registry: %v", lastErr)
	return nil
}

// startRegistry runs the registry and waits for /v2/ to answer (200 or 401).
// It returns an error, with the registry stopped, if the process exits first.
func startRegistry(t testing.TB, srv *RegistryServer, conf, logPath string) error {
	t.Helper()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("creating registry log: %w", err)
	}
	cmd := exec.Command(registryBinary, "serve", conf)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("running %s: %w", registryBinary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logFile.Close() }()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Logf("killing registry pid %d: %v", cmd.Process.Pid, err)
			}
			<-exited
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL()+"/v2/", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				t.Cleanup(stop)
				srv.stop = stop
				return nil
			}
		}
		select {
		case err := <-exited:
			exited <- err // for stop's sake; nothing else reads it
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("registry exited before serving (%v): %s", err, strings.TrimSpace(string(out)))
		case <-ctx.Done():
			stop()
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("waiting for registry on %s: %w: %s", srv.Host, ctx.Err(), strings.TrimSpace(string(out)))
		case <-tick.C:
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitForFile waits until path exists (a package may still be installing).
func waitForFile(t testing.TB, path string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not exist after %v (apt-get install docker-registry)", path, limit)
		}
		<-tick.C
	}
}
