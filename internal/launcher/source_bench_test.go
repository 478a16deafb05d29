package launcher

import (
	"fmt"
	"testing"
	"time"

	"github.com/kubepool/kubepool/internal/nodeadmin"
	"github.com/kubepool/kubepool/internal/zk"
)

// BenchmarkNodeList is one GET /node-list with 200 nodes (a quarter of
// them locked): "cache" is the launcher's answer (its watch cache, plus the
// lock state read per node), "zookeeper" the baseline, every node read from
// ZooKeeper as `kubepool list` does and the web app did before.
//
//	KUBEPOOL_ZOOKEEPER=... go test -run '^$' -bench BenchmarkNodeList -benchtime 50x ./internal/launcher/
func BenchmarkNodeList(b *testing.B) {
	r := newRig(b, unitConfig, rigOptions{})
	ctx := b.Context()
	const n = 200
	for i := range n {
		// Another provider's nodes: this launcher leaves them alone.
		nd := &zk.Node{Provider: "elsewhere", Pool: "main", Type: []string{"pod"}, ConnectionType: zk.ConnectionKubectl, ExternalID: fmt.Sprintf("ns-%d", i)}
		nd.SetState(zk.NodeReady)
		if err := r.zuul.CreateNode(ctx, nd); err != nil {
			b.Fatal(err)
		}
		if i%4 == 0 {
			if _, _, err := r.zuul.LockNode(ctx, nd.ID); err != nil {
				b.Fatal(err)
			}
		}
	}
	r.waitFor("the cache to hold every node", func() bool {
		rows, err := r.l.Nodes(ctx)
		return err == nil && len(rows) == n
	})
	b.Run("cache", func(b *testing.B) {
		for b.Loop() {
			rows, err := r.l.Nodes(ctx)
			if err != nil || len(rows) != n {
				b.Fatalf("Nodes = %d rows, %v", len(rows), err)
			}
		}
	})
	b.Run("zookeeper", func(b *testing.B) {
		for b.Loop() {
			nodes, err := r.zuul.ListNodes(ctx)
			if err != nil || len(nodes) != n {
				b.Fatalf("ListNodes = %d, %v", len(nodes), err)
			}
			rows, err := rowMaps(nodeadmin.NodeRows(nodes, time.Now()))
			if err != nil || len(rows) != n {
				b.Fatalf("rows = %d, %v", len(rows), err)
			}
		}
	})
}
