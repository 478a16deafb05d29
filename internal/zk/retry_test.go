package zk_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

// waitOwed waits until c owes want writes.
func waitOwed(t *testing.T, c *zk.Client, want int) {
	t.Helper()
	ctx := deadline(t)
	for c.Owed() != want {
		select {
		case <-ctx.Done():
			t.Fatalf("Owed() = %d, want %d: %v", c.Owed(), want, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestWritesOwedAcrossOutage cuts the client off mid-work while its session
// survives: the writes and the lock release it makes meanwhile wait, are
// counted by Owed, and land once it reconnects.
func TestWritesOwedAcrossOutage(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	ctx := deadline(t)
	z := newZuul(t, servers)
	var cut testenv.Cutter
	c := connect(t, servers, zk.Options{SessionTimeout: 30 * time.Second, Dialer: cut.Dial})
	_, session := c.State()
	reqID := z.Submit([]string{"pod"}, 100, nil)
	lock, r, err := c.TryLockRequest(ctx, reqID)
	if err != nil {
		t.Fatal(err)
	}
	n := &zk.Node{Provider: "p", Pool: "main", Type: []string{"pod"}, State: zk.NodeBuilding}
	if err := c.CreateNode(ctx, n); err != nil {
		t.Fatal(err)
	}

	cut.Cut()
	done := make(chan error, 3)
	go func() { done <- c.Fulfil(ctx, r, []string{n.ID}) }()
	go func() {
		n.SetState(zk.NodeReady)
		done <- c.UpdateNode(ctx, n)
	}()
	waitOwed(t, c, 2)
	go func() { done <- lock.Release(ctx) }()
	waitOwed(t, c, 3)
	cut.Restore()
	for range 3 {
		if err := <-done; err != nil {
			t.Errorf("write during the outage = %v, want it to land", err)
		}
	}
	waitOwed(t, c, 0)
	if _, sid := c.State(); sid != session {
		t.Fatalf("session %#x after the outage, want %#x kept", sid, session)
	}
	if d := z.Read("/nodepool/requests/" + reqID); d["state"] != zk.RequestFulfilled {
		t.Errorf("request state = %v, want fulfilled", d["state"])
	}
	if got, err := c.GetNode(ctx, n.ID); err != nil || got.State != zk.NodeReady {
		t.Errorf("GetNode = %+v, %v; want ready", got, err)
	}
	if held, err := lock.Held(ctx); err != nil || held {
		t.Errorf("request lock Held() = %v, %v; want released", held, err)
	}
}

// TestOwedWriteEndsWithSession cuts the client off until the server expires
// its session: a write owed in that session gives up with ErrSessionLost
// instead of landing without the locks it was made under.
func TestOwedWriteEndsWithSession(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	ctx := deadline(t)
	z := newZuul(t, servers)
	var cut testenv.Cutter
	c := connect(t, servers, zk.Options{SessionTimeout: 2 * time.Second, Dialer: cut.Dial})
	reqID := z.Submit([]string{"pod"}, 100, nil)
	lock, r, err := c.TryLockRequest(ctx, reqID)
	if err != nil {
		t.Fatal(err)
	}
	ok, _, gone, err := z.Conn.ExistsW(z.P(lock.Path()))
	if err != nil || !ok {
		t.Fatalf("lock contender exists = %v, %v", ok, err)
	}
	cut.Cut()
	done := make(chan error, 1)
	go func() { done <- c.MarkPending(ctx, r) }()
	waitOwed(t, c, 1)
	select {
	case <-gone: // the server expired the session
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	cut.Restore()
	if err := <-done; !errors.Is(err, zk.ErrSessionLost) {
		t.Errorf("MarkPending across a session expiry = %v, want ErrSessionLost", err)
	}
	if d := z.Read("/nodepool/requests/" + reqID); d["state"] != zk.RequestRequested {
		t.Errorf("request state = %v, want requested (the write was not made)", d["state"])
	}
	if err := lock.Release(ctx); err != nil {
		t.Errorf("Release() of a lock lost with its session = %v, want nil", err)
	}
	waitOwed(t, c, 0)
}

// TestConnectSaysWhyTLSFails: a server whose certificate the client's CA
// did not sign gives an error naming the certificate problem, not only a
// timeout.
func TestConnectSaysWhyTLSFails(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler()) // any TLS server with its own CA
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, err := zk.Connect(ctx, srv.Listener.Addr().String(), zk.Options{TLS: &tls.Config{RootCAs: x509.NewCertPool()}})
	if err == nil || !strings.Contains(err.Error(), "certificate") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Connect(TLS server with another CA) = %v, want a deadline error that names the certificate problem", err)
	}
}
