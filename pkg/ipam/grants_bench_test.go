package ipam

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
)

// BenchmarkPlanGrantsMillion is one round of a pool with 1,000,000 addresses granted
// to 500 nodes (IPv6, blocks of 64: 15,625 blocks) and held by endpoints, when one node
// needs one more address: what a round costs the controller at the scale issue 19 asks
// for. The objects involved stay small (a block is 64 addresses), so no object nears the
// 1.5 MiB limit whatever the pool's size.
func BenchmarkPlanGrantsMillion(b *testing.B) {
	subnet := netip.MustParsePrefix("fd00:1::/64")
	const total, nodes = 1_000_000, 500
	usable, err := ip.ParseRanges([]string{"fd00:1::1-fd00:1::ffff:ffff"})
	if err != nil {
		b.Fatal(err)
	}
	blocks := map[netip.Addr]*GrantBlock{}
	held := make(map[netip.Addr]string, total)
	need := map[string]int{}
	a := netip.MustParseAddr("fd00:1::1")
	for i := range total {
		node := fmt.Sprintf("node-%03d", (i/GrantBlockSize(subnet))%nodes)
		start := BlockStart(subnet, a)
		g := blocks[start]
		if g == nil {
			g = &GrantBlock{Start: start, Owners: map[netip.Addr]string{}, Reclaim: map[netip.Addr]string{}}
			blocks[start] = g
		}
		g.Owners[a], held[a] = node, node
		need[node]++
		a = a.Next()
	}
	var demands []Demand
	for n, k := range need {
		demands = append(demands, Demand{Node: n, Need: k, Want: k})
	}
	demands[0].Need++
	demands[0].Want++
	in := GrantInput{Subnet: subnet, Usable: usable, Blocks: blocks, Demands: demands, Held: held, Token: "t"}
	b.ResetTimer()
	for range b.N {
		plan := PlanGrants(in)
		if plan.Granted[demands[0].Node] != 1 || len(plan.Changed) != 1 {
			b.Fatalf("granted %v in %d blocks, want one address in one block", plan.Granted, len(plan.Changed))
		}
	}
}
