// Package requestortest is a launcher in miniature for the tests of
// requestors (package requestor, `kubepool request`): on its own ZooKeeper
// session it registers a pool and answers node requests by the protocol,
// without Kubernetes. The real launcher is tested in package launcher and
// the e2e tests.
package requestortest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/zk"
)

// Launcher serves "pod" (a ready node allocated to the request), fails
// "broken", allocates "stolen" to another request, leaves "slow" waiting
// (pending), and deletes used nodes. It records the requests it saw.
type Launcher struct {
	mu   sync.Mutex
	seen map[string]*zk.Request
}

// Labels are the labels the stand-in's pool registers.
var Labels = []string{"pod", "broken", "stolen", "slow"}

// Start registers the stand-in's pool on servers and serves until the test
// ends.
func Start(t testing.TB, servers string) *Launcher {
	t.Helper()
	cctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	c, err := zk.Connect(cctx, servers, zk.Options{})
	cancel()
	if err != nil {
		t.Fatalf("stand-in launcher: zk.Connect(%s) = %v", servers, err)
	}
	t.Cleanup(c.Close)
	ctx, stop := context.WithCancel(context.Background())
	if _, err := c.Register(ctx, zk.Component{Kind: zk.KindPool, Hostname: "stand-in", ID: "stand-in-pool", Name: "main", ProviderName: "dev",
		SupportedLabels: Labels}); err != nil {
		stop()
		t.Fatal(err)
	}
	s := &Launcher{seen: map[string]*zk.Request{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		reqs, nodes := c.WatchRequests(ctx), c.WatchNodes(ctx)
		for {
			s.serve(ctx, t, c)
			select {
			case <-reqs:
			case <-nodes:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { stop(); <-done })
	return s
}

func (s *Launcher) serve(ctx context.Context, t testing.TB, c *zk.Client) {
	rs, _ := c.ListRequests(ctx)
	for _, r := range rs {
		if r.State != zk.RequestRequested {
			continue
		}
		lock, r, err := c.TryLockRequest(ctx, r.ID)
		if err != nil {
			continue
		}
		s.mu.Lock()
		s.seen[r.ID] = r
		s.mu.Unlock()
		var ids []string
		fail := false
		for _, label := range r.NodeTypes {
			if label == "broken" {
				fail = true
			}
			if label == "broken" || label == "slow" {
				continue
			}
			n := &zk.Node{Provider: "dev", Pool: "main", Type: []string{label}, AllocatedTo: r.ID, ConnectionType: zk.ConnectionKubectl, ExternalID: "ns", InterfaceIP: "pod"}
			if label == "stolen" {
				n.AllocatedTo = "100-0000009999"
			}
			// Where the node would be: no cluster answers there.
			if err := n.SetKubeConnection(zk.KubeConnection{Name: "ns", Namespace: "ns", Host: "https://stand-in.invalid:6443", Token: "stand-in-token", User: "zuul-worker", Pod: "pod"}); err != nil {
				t.Errorf("stand-in launcher: %v", err)
			}
			n.SetState(zk.NodeReady)
			if err := c.CreateNode(ctx, n); err != nil {
				t.Errorf("stand-in launcher: %v", err)
			}
			ids = append(ids, n.ID)
		}
		switch {
		case slices.Contains(r.NodeTypes, "slow"):
			_ = c.MarkPending(ctx, r)
		case fail:
			_ = c.Fail(ctx, r)
		default:
			_ = c.Fulfil(ctx, r, ids)
		}
		_ = lock.Release(ctx)
	}
	ns, _ := c.ListNodes(ctx)
	for _, n := range ns {
		if n.State == zk.NodeUsed && !n.Locked {
			if l, n, err := c.TryLockNode(ctx, n.ID); err == nil {
				_ = c.DeleteNode(ctx, n)
				_ = l.Release(ctx)
			}
		}
	}
}

// Request returns the request id as the stand-in saw it when it took it,
// or nil.
func (s *Launcher) Request(id string) *zk.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[id]
}
