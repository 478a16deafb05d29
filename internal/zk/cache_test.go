package zk_test

import (
	"context"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

// TestCacheAfterReconnect makes a write while the client is cut off from
// ZooKeeper (its session kept), again and again, and checks each time that
// the client's own cache comes to show it. The write waits in
// go-zookeeper's queue and goes out the moment the connection is back,
// racing the library's re-arming of the watches, which tells the server
// the last zxid the client has seen: a reply read before that is taken
// makes the server believe the client saw a change whose notification it
// never sent. The cache reads everything again after a reconnect, so it
// does not depend on who wins. (The race is narrow: this test did not lose
// it in 50 rounds before that re-read; it checks the re-read's outcome.)
func TestCacheAfterReconnect(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	ctx := deadline(t)
	cut := &testenv.Cutter{}
	c := connect(t, servers, zk.Options{Dialer: cut.Dial})
	req := &zk.Request{NodeTypes: []string{"x"}, Requestor: "test"}
	if err := c.SubmitRequest(ctx, req, 100); err != nil {
		t.Fatal(err)
	}
	// Many watches to re-arm, as a launcher has: go-zookeeper takes the
	// zxid after walking them all.
	for range 20 {
		if err := c.SubmitRequest(ctx, &zk.Request{NodeTypes: []string{"y"}, Requestor: "test"}, 200); err != nil {
			t.Fatal(err)
		}
	}
	cache, err := c.CacheRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	changed := cache.Subscribe()
	const rounds = 3
	for i := range rounds {
		cur, err := c.GetRequest(ctx, req.ID)
		if err != nil {
			t.Fatal(err)
		}
		cur.RelativePriority = 1000 + i
		refused := cut.Refused()
		cut.Cut()
		// Once a dial was refused, go-zookeeper has dropped what it had
		// queued and waits a second before dialling again: a write made
		// now is queued for the next connection.
		for cut.Refused() == refused {
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
		wrote := make(chan error, 1)
		go func() { wrote <- c.UpdateRequest(context.WithoutCancel(ctx), cur) }()
		cut.Restore()
		if err := <-wrote; err != nil {
			t.Fatalf("round %d: writing across the reconnect: %v", i, err)
		}
		wait, cancel := context.WithTimeout(ctx, 10*time.Second)
		for {
			if r, ok := cache.Get(req.ID); ok && r.RelativePriority == 1000+i {
				break
			}
			select {
			case <-changed:
				continue
			case <-wait.Done():
			}
			r, _ := cache.Get(req.ID)
			t.Fatalf("round %d: the cache shows relative_priority %d 10 s after the write, want %d", i, r.RelativePriority, 1000+i)
		}
		cancel()
	}
}
