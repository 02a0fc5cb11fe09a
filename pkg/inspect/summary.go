package inspect

import (
	"fmt"
	"slices"
	"strings"

	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// PoolSummary is what one pool holds, address by address as WhoHolds classifies them,
// added up. An address counts once, by what holds it most: a pod (Used), else
// SpiderPool's record (SpiderPool), else a node (Spare).
type PoolSummary struct {
	Pool   string `json:"pool"`
	Mode   string `json:"mode"`
	Subnet string `json:"subnet"`
	// Total is spec.ips minus spec.excludeIPs: the pool's totalIPCount.
	Total int64 `json:"total"`
	// Used are the addresses pods hold (their endpoints, or the pool's records).
	Used int64 `json:"used"`
	// Spare are the addresses nodes hold for their next pods and have not handed out:
	// reserves (Records mode) and grants (Grants mode).
	Spare int64 `json:"spare"`
	// SpiderPool are SpiderPool's records not imported yet.
	SpiderPool int64 `json:"spiderPool"`
	// Free are the usable addresses (not excluded, not reserved) nothing holds.
	Free int64 `json:"free"`
	// Nodes break Used and Spare down by node, in name order; "" is a holder whose
	// node is not known (a record of a pod that no longer exists).
	Nodes []NodeCount `json:"nodes,omitempty"`
	// Notes say what the counts leave out: records that do not decode.
	Notes []string `json:"notes,omitempty"`
}

// NodeCount is what one node's pods (Used) and the node itself (Spare) hold of a pool.
type NodeCount struct {
	Node  string `json:"node"`
	Used  int64  `json:"used"`
	Spare int64  `json:"spare"`
}

// Summarize adds up every pool, or the named ones (an unknown name is an error that
// wraps ipam.ErrPoolNotFound), in the snapshot's order.
func Summarize(s Snapshot, pools []string) ([]PoolSummary, error) {
	v := newView(s)
	sel, err := v.selectPools(pools)
	if err != nil {
		return nil, err
	}
	out := make([]PoolSummary, 0, len(sel))
	for _, pv := range sel {
		out = append(out, v.summarize(pv))
	}
	return out, nil
}

// selectPools returns the named pools, or every pool when names is empty.
func (v *view) selectPools(names []string) ([]*poolView, error) {
	if len(names) == 0 {
		return v.pools, nil
	}
	var missing []string
	for _, n := range names {
		if v.byName[n] == nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("SpiderIPPool %s: %w", strings.Join(missing, ", "), ipam.ErrPoolNotFound)
	}
	var out []*poolView
	for _, pv := range v.pools {
		if slices.Contains(names, pv.sp.Name) {
			out = append(out, pv)
		}
	}
	return out, nil
}

func (v *view) summarize(pv *poolView) PoolSummary {
	ps := PoolSummary{Pool: pv.sp.Name, Mode: pv.mode, Subnet: string(pv.sp.Spec.Subnet)}
	if pv.subnetErr != nil {
		ps.Notes = []string{"the pool's spec does not parse: " + pv.subnetErr.Error()}
		return ps
	}
	ps.Total = pv.usable.Count().Int64Saturating()
	nodes := map[string]*NodeCount{}
	node := func(n string) *NodeCount {
		if nodes[n] == nil {
			nodes[n] = &NodeCount{Node: n}
		}
		return nodes[n]
	}
	var taken []ip.Range
	for _, a := range pv.addrs {
		hs := v.classify(pv, a)
		state := strongest(hs)
		switch state {
		case StateHeld:
			ps.Used++
		case StateSpiderPool:
			ps.SpiderPool++
		case StateSpare:
			ps.Spare++
		default:
			continue
		}
		taken = append(taken, ip.Range{From: a, To: a})
		counted := map[string]bool{}
		for _, h := range hs {
			if h.pool || h.State != state || counted[h.Node] {
				continue
			}
			counted[h.Node] = true
			switch state {
			case StateHeld:
				node(h.Node).Used++
			case StateSpare:
				node(h.Node).Spare++
			}
		}
	}
	free := pv.usable.Subtract(pv.reserved)
	if len(taken) > 0 {
		set, err := ip.SetOfRanges(taken...)
		if err == nil {
			free = free.Subtract(set)
		}
	}
	ps.Free = free.Count().Int64Saturating()
	for _, n := range nodes {
		ps.Nodes = append(ps.Nodes, *n)
	}
	slices.SortFunc(ps.Nodes, func(x, y NodeCount) int { return strings.Compare(x.Node, y.Node) })
	for _, err := range []error{pv.recordsErr, pv.foreignErr} {
		if err != nil {
			ps.Notes = append(ps.Notes, "left out of the counts, unreadable: "+err.Error())
		}
	}
	return ps
}

// strongest is the state an address counts as: a pod's hold over SpiderPool's record
// over a node's; Free or Excluded when nothing holds it.
func strongest(hs []Holding) string {
	best := ""
	rank := map[string]int{StateHeld: 3, StateSpiderPool: 2, StateSpare: 1}
	for _, h := range hs {
		if h.pool {
			continue
		}
		if best == "" || rank[h.State] > rank[best] {
			best = h.State
		}
	}
	return best
}
