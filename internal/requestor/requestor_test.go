package requestor_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/nodeadmin"
	"github.com/kubepool/kubepool/internal/requestor"
	"github.com/kubepool/kubepool/internal/requestor/requestortest"
	"github.com/kubepool/kubepool/internal/testenv"
	"github.com/kubepool/kubepool/internal/zk"
)

func connect(t *testing.T, servers string) *zk.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := zk.Connect(ctx, servers, zk.Options{})
	if err != nil {
		t.Fatalf("zk.Connect(%s) = %v", servers, err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestRequestAndReturn(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	c := connect(t, servers)
	s := requestortest.Start(t, servers)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	var submitted string
	res, err := requestor.Request(ctx, c, requestor.Spec{
		Labels: []string{"pod", "pod"}, Provider: "dev", BuildSet: "bs-1", Priority: requestor.PriorityHigh,
		Requestor: "tester", OnSubmit: func(id string) { submitted = id },
	})
	if err != nil {
		t.Fatalf("Request = %v", err)
	}
	if submitted != res.Request || !strings.HasPrefix(res.Request, "100-") || res.BuildSet != "bs-1" || len(res.Nodes) != 2 {
		t.Fatalf("Request = %+v (submitted %s), want request 100-..., build set bs-1, 2 nodes", res, submitted)
	}
	r := s.Request(res.Request)
	if r.Requestor != "tester" || r.Provider != "dev" || r.RequestorData["build_set_uuid"] != "bs-1" || r.RequestorData["job_name"] != "kubepool-request" {
		t.Errorf("request as the launcher saw it = requestor %q provider %q data %v", r.Requestor, r.Provider, r.RequestorData)
	}
	if _, err := c.GetRequest(ctx, res.Request); !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("request after acceptance: GetRequest = %v, want ErrNoNode (Zuul deletes it)", err)
	}
	var ids []string
	for _, n := range res.Nodes {
		cur, err := c.GetNode(ctx, n.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cur.State != zk.NodeInUse || cur.Locked || !cur.Detached() {
			t.Errorf("node %s = %s, locked %v, detached %v; want in-use, unlocked, detached", n.ID, cur.State, cur.Locked, cur.Detached())
		}
		ids = append(ids, n.ID)
	}

	a := &nodeadmin.Admin{ZK: c}
	returned, err := requestor.Return(ctx, a, append(ids, "0000099999"))
	if len(returned) != 2 || !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("Return(2 nodes and an unknown one) = %v, %v; want the 2 returned and ErrNoNode", returned, err)
	}
	if err := requestor.WaitDeleted(ctx, c, ids); err != nil {
		t.Fatalf("WaitDeleted = %v", err)
	}
}

func TestRequestFailures(t *testing.T) {
	servers := testenv.ZooKeeper(t)
	c := connect(t, servers)
	requestortest.Start(t, servers)
	ctx := t.Context()

	requests := func() []*zk.Request {
		t.Helper()
		rs, err := c.ListRequests(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}

	_, err := requestor.Request(ctx, c, requestor.Spec{Labels: []string{"pod", "gpu"}})
	if ue, ok := errors.AsType[*requestor.UnservedError](err); !ok || !errors.Is(err, requestor.ErrNoLauncher) || len(ue.Labels) != 1 || ue.Labels[0] != "gpu" {
		t.Errorf("Request(gpu) = %v, want *UnservedError for gpu", err)
	}

	_, err = requestor.Request(ctx, c, requestor.Spec{Labels: []string{"broken"}})
	if fe, ok := errors.AsType[*requestor.FailedError](err); !ok || !strings.Contains(err.Error(), "failed") {
		t.Errorf("Request(broken) = %v, want *FailedError", err)
	} else if _, err := c.GetRequest(ctx, fe.Request); !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("failed request %s: GetRequest = %v, want it deleted", fe.Request, err)
	}

	_, err = requestor.Request(ctx, c, requestor.Spec{Labels: []string{"stolen"}})
	if err == nil || !strings.Contains(err.Error(), "allocated to") {
		t.Errorf("Request(stolen) = %v, want an allocation error", err)
	}

	// The deadline must leave the stand-in time to mark the request
	// pending on a ZooKeeper shared with other test packages.
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err = requestor.Request(wctx, c, requestor.Spec{Labels: []string{"slow"}})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still pending") {
		t.Errorf("Request(slow) past its deadline = %v, want DeadlineExceeded, still pending", err)
	}
	if rs := requests(); len(rs) != 0 {
		t.Errorf("requests left behind: %v", rs)
	}
}
