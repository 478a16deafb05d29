package buildset

import (
	"errors"
	"sync"
	"testing"

	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

// TestStoreConcurrentCredentials: launchers making credentials for one
// buildset at the same time (the first creating the record) lose none.
func TestStoreConcurrentCredentials(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	const n = 20
	var stores []*Store
	for range 4 { // four launchers, each with its own session
		c, err := zk.Connect(t.Context(), servers, zk.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		stores = append(stores, &Store{ZK: c})
	}
	creds := make([]Credentials, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { creds[i], errs[i] = stores[i%len(stores)].NewCredentials(t.Context(), "b", "") })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	b, err := stores[0].Get(t.Context(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Credentials) != n || b.State != zk.BuildsetActive {
		t.Errorf("record has %d credentials in state %q, want %d in state active", len(b.Credentials), b.State, n)
	}
	for _, c := range creds {
		if id, err := stores[1].Authenticate(t.Context(), c.Username, c.Password); err != nil || id != "b" {
			t.Errorf("Authenticate(%s) = %q, %v; want b", c.ID, id, err)
		}
	}
	for _, bad := range []struct{ user, pass string }{
		{"buildset-b", ""}, {"buildset-b", "nodot"}, {"buildset-b", creds[0].ID + "."}, {"b", creds[0].Password},
		{"buildset-B", creds[0].Password}, {"buildset-x", creds[0].Password}, {"buildset-b", creds[1].ID + "." + creds[0].Password[len(creds[0].ID)+1:]},
	} {
		if _, err := stores[0].Authenticate(t.Context(), bad.user, bad.pass); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("Authenticate(%q, %q) = %v, want ErrUnauthorized", bad.user, bad.pass, err)
		}
	}
	if _, err := stores[0].NewCredentials(t.Context(), "../b", ""); !errors.Is(err, ErrInvalidID) {
		t.Errorf("NewCredentials(../b) = %v, want ErrInvalidID", err)
	}
}
