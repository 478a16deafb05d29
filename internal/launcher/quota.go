package launcher

import (
	"fmt"

	"github.com/kubepool/kubepool/internal/config"
	"github.com/kubepool/kubepool/internal/zk"
)

// Quota in Nodepool's terms: max-servers, max-cores, max-ram and
// max-resources per pool and per provider, counted over the node records
// (a node's resources are in its record) plus what a pass has reserved.

// usage is quota in Nodepool's units.
type usage struct {
	servers int64
	cores   float64
	ram     int64
	other   map[string]float64
}

func (u *usage) add(r config.Resources) {
	u.servers += r.Instances
	u.cores += r.Cores
	u.ram += r.RAM
	for k, v := range r.Extra {
		if u.other == nil {
			u.other = map[string]float64{}
		}
		u.other[k] += v
	}
}

func (u *usage) addRecord(m map[string]any) {
	num := func(k string) float64 {
		f, _ := m[k].(float64)
		return f
	}
	u.servers++
	u.cores += num("cores")
	u.ram += int64(num("ram"))
	for k, v := range m {
		if k == "cores" || k == "ram" || k == "instances" {
			continue
		}
		if f, ok := v.(float64); ok {
			if u.other == nil {
				u.other = map[string]float64{}
			}
			u.other[k] += f
		}
	}
}

type limits struct {
	servers, cores, ram int64
	other               map[string]int64
}

func limitsOf(servers, cores, ram int64, other map[string]int64) limits {
	return limits{servers, cores, ram, other}
}

// exceeds says how u plus base goes over lim, or "".
func (u usage) exceeds(lim limits, base usage) string {
	if base.servers+u.servers > lim.servers {
		return fmt.Sprintf("max-servers %d", lim.servers)
	}
	if base.cores+u.cores > float64(lim.cores) {
		return fmt.Sprintf("max-cores %d", lim.cores)
	}
	if base.ram+u.ram > lim.ram {
		return fmt.Sprintf("max-ram %d", lim.ram)
	}
	for k, max := range lim.other {
		if base.other[k]+u.other[k] > float64(max) {
			return fmt.Sprintf("max-resources %s %d", k, max)
		}
	}
	return ""
}

// pass is what one pass over the requests has looked up: the node listing
// (nil until a request needs it) and the quota its nodes use, to which the
// pass adds what it reserves. Counted once per pass, not once per request:
// a queue of thousands would otherwise cost thousands of node counts.
type pass struct {
	nodes []*zk.Node
	tally *tally
}

// tally is the quota a pool's and its provider's nodes use.
type tally struct{ pool, provider usage }

// tallyOf counts the quota pw's pool and provider use in nodes.
func tallyOf(pw *poolWorker, nodes []*zk.Node) *tally {
	t := &tally{}
	for _, n := range nodes {
		t.addNode(pw, n)
	}
	return t
}

func (t *tally) addNode(pw *poolWorker, n *zk.Node) {
	if n.Provider != pw.provider.Name || n.State == zk.NodeDeleted {
		return
	}
	t.provider.addRecord(n.Resources)
	if n.Pool == pw.pool.Name {
		t.pool.addRecord(n.Resources)
	}
}

// short says why launching labels on top of t would exceed the pool's or
// the provider's quota, or "".
func (pw *poolWorker) short(t *tally, labels []string) string {
	if len(labels) == 0 {
		return ""
	}
	var need usage
	for _, lb := range labels {
		need.add(pw.pool.Label(lb).Resources())
	}
	if why := need.exceeds(limitsOf(pw.pool.MaxServers, pw.pool.MaxCores, pw.pool.MaxRAM, pw.pool.MaxResources), t.pool); why != "" {
		return "pool " + why
	}
	if why := need.exceeds(limitsOf(pw.provider.MaxServers, pw.provider.MaxCores, pw.provider.MaxRAM, pw.provider.MaxResources), t.provider); why != "" {
		return "provider " + why
	}
	return ""
}

// quotaShort says why launching labels now would exceed the pool's or the
// provider's quota, counting every node they hold, or "".
func (l *Launcher) quotaShort(pw *poolWorker, nodes []*zk.Node, labels []string) string {
	if len(labels) == 0 {
		return ""
	}
	return pw.short(tallyOf(pw, nodes), labels)
}

func resourcesMap(r config.Resources) map[string]any {
	out := map[string]any{}
	for k, v := range r.Map() {
		out[k] = v
	}
	return out
}
