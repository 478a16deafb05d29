package zk_test

import (
	"context"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

// TestLockLostReply takes a request's lock while the connection drops
// right after the request to create our contender went out: the server
// made it, the reply never came. Whatever the client tries next (look for
// it, create another) may wait in go-zookeeper's queue and go out on the
// next connection. However that goes, the client ends up holding the lock
// (nobody else contends) and, once it releases it, no contender of its
// is left behind: one would hold the lock, unknown, for as long as the
// session lives, and the request would stay requested for good.
func TestLockLostReply(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cut := &testenv.Cutter{}
	c := connect(t, servers, zk.Options{Dialer: cut.Dial, SessionTimeout: 30 * time.Second})
	other := connect(t, servers, zk.Options{})
	const rounds = 4
	for i := range rounds {
		req := &zk.Request{NodeTypes: []string{"x"}, Requestor: "test"}
		if err := other.SubmitRequest(ctx, req, 100); err != nil {
			t.Fatal(err)
		}
		refused := cut.Refused()
		cut.CutAfterWrite()
		type result struct {
			lock *zk.Lock
			err  error
		}
		got := make(chan result, 1)
		go func() {
			lock, _, err := c.TryLockRequest(ctx, req.ID)
			got <- result{lock, err}
		}()
		// Let the client back once it has been refused a connection.
		for cut.Refused() == refused {
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
		cut.Restore()
		res := <-got
		if res.err != nil {
			t.Errorf("round %d: TryLockRequest across the lost reply = %v, want the lock (nobody else contends)", i, res.err)
		} else if err := res.lock.Release(ctx); err != nil {
			t.Fatal(err)
		}
		lock, _, err := other.TryLockRequest(ctx, req.ID)
		if err != nil {
			t.Errorf("round %d: after the release, the lock is still held: %v", i, err)
			continue
		}
		if err := lock.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
