package buildset

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/registrytoken"
	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

// concurrency is how many token requests are in flight at once.
const concurrency = 1000

// BenchmarkTokenIssue measures token requests to the token endpoint, 1,000
// at a time, over loopback HTTP with kept-alive connections, and reports the
// latency of one request (p50, p99) and the throughput:
//
//   - sign: Issuer.Issue alone, in process (the ES256 floor);
//   - anonymous: GET /token without credentials (HTTP, scope parsing,
//     policy, signing; no ZooKeeper) — the baseline;
//   - buildset: GET /token with a buildset's credentials for push,pull on
//     its repository: the above plus one ZooKeeper read and a hash compare.
//
// One op is 1,000 requests; a first, untimed round opens the connections. 100 buildsets each have one credential; the
// requests spread over them.
func BenchmarkTokenIssue(b *testing.B) {
	keyPEM, certPEM, err := registrytoken.GenerateKey("kubepool bench", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	kf, cf := filepath.Join(dir, "k.pem"), filepath.Join(dir, "c.pem")
	_ = os.WriteFile(kf, keyPEM, 0o600)
	_ = os.WriteFile(cf, certPEM, 0o600)
	iss, err := registrytoken.LoadIssuer("kubepool", "registry", kf, cf)
	if err != nil {
		b.Fatal(err)
	}
	c, err := zk.Connect(b.Context(), testenv.ZooKeeper(b), zk.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	store := &Store{ZK: c}
	policy := Policy{Public: []string{"base/*"}}
	var creds []Credentials
	for i := range 100 {
		cr, err := store.NewCredentials(b.Context(), fmt.Sprintf("bs%02d", i), "")
		if err != nil {
			b.Fatal(err)
		}
		creds = append(creds, cr)
	}
	srv := httptest.NewServer(&registrytoken.Handler{Issuer: iss, Authorizer: &Authorizer{Store: store, Policy: policy}})
	b.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}}

	get := func(i int, anonymous bool) error {
		q := url.Values{"service": {"registry"}}
		var req *http.Request
		if anonymous {
			q.Set("scope", "repository:base/debian:pull")
			req, _ = http.NewRequest(http.MethodGet, srv.URL+"/token?"+q.Encode(), nil)
		} else {
			cr := creds[i%len(creds)]
			q.Set("scope", fmt.Sprintf("repository:buildsets/bs%02d/app:push,pull", i%len(creds)))
			req, _ = http.NewRequest(http.MethodGet, srv.URL+"/token?"+q.Encode(), nil)
			req.SetBasicAuth(cr.Username, cr.Password)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	cases := []struct {
		name string
		do   func(i int) error
	}{
		{"sign", func(int) error {
			_, err := iss.Issue("buildset-x", []registrytoken.Access{{Type: "repository", Name: "buildsets/x/app", Actions: []string{"pull", "push"}}})
			return err
		}},
		{"anonymous", func(i int) error { return get(i, true) }},
		{"buildset", func(i int) error { return get(i, false) }},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			// Warm up: open the 1,000 connections outside the timing.
			var warm sync.WaitGroup
			for i := range concurrency {
				warm.Go(func() { _ = tc.do(i) })
			}
			warm.Wait()
			var lat []time.Duration
			var mu sync.Mutex
			start := time.Now()
			for b.Loop() {
				var wg sync.WaitGroup
				errs := make(chan error, concurrency)
				for i := range concurrency {
					wg.Go(func() {
						t0 := time.Now()
						if err := tc.do(i); err != nil {
							errs <- err
							return
						}
						d := time.Since(t0)
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					})
				}
				wg.Wait()
				close(errs)
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond)
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "tokens/s")
		})
	}
}
