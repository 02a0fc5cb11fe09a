package ipam

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
)

func grantRanges(t *testing.T, s string) ip.Set {
	t.Helper()
	if s == "" {
		return ip.Set{}
	}
	set, err := ip.ParseRanges(strings.Split(s, ","))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// grantBlocks builds blocks from node -> ranges ("10.0.0.1-10.0.0.3,10.0.0.9"); a node
// written "node!" has its addresses marked for reclaim.
func grantBlocks(t *testing.T, subnet netip.Prefix, grants map[string]string) map[netip.Addr]*GrantBlock {
	t.Helper()
	out := map[netip.Addr]*GrantBlock{}
	for node, rs := range grants {
		reclaim := strings.HasSuffix(node, "!")
		node = strings.TrimSuffix(node, "!")
		for _, r := range grantRanges(t, rs).Ranges() {
			for a := r.From; a.Compare(r.To) <= 0; a = a.Next() {
				start := BlockStart(subnet, a)
				b := out[start]
				if b == nil {
					b = &GrantBlock{Start: start, Owners: map[netip.Addr]string{}, Reclaim: map[netip.Addr]string{}}
					out[start] = b
				}
				b.Owners[a] = node
				if reclaim {
					b.Reclaim[a] = "t0"
				}
			}
		}
	}
	return out
}

// summary renders blocks as node -> "ranges" and node -> "reclaimed ranges".
func grantSummary(t *testing.T, blocks map[netip.Addr]*GrantBlock) (grants, reclaim map[string]string) {
	t.Helper()
	per, rec := map[string][]string{}, map[string][]string{}
	for _, b := range blocks {
		for a, n := range b.Owners {
			per[n] = append(per[n], a.String())
			if b.Reclaim[a] != "" {
				rec[n] = append(rec[n], a.String())
			}
		}
	}
	render := func(m map[string][]string) map[string]string {
		out := map[string]string{}
		for n, as := range m {
			set := grantRanges(t, strings.Join(as, ","))
			out[n] = set.String()
		}
		return out
	}
	return render(per), render(rec)
}

func TestPlanGrants(t *testing.T) {
	v4 := netip.MustParsePrefix("10.0.0.0/16")
	tests := []struct {
		name    string
		subnet  netip.Prefix
		usable  string
		grants  map[string]string
		held    map[string]string // address -> node
		demands []Demand
		gone    []string
		// want: every node's grants after the round, the reclaim marks, the unmet needs,
		// and how many blocks the round writes.
		wantGrants  map[string]string
		wantReclaim map[string]string
		wantUnmet   map[string]int
		wantWrites  int
	}{
		{
			name: "a cold node gets its need from the first block", subnet: v4, usable: "10.0.0.1-10.0.3.254",
			demands:    []Demand{{Node: "a", Need: 3, Want: 3}},
			wantGrants: map[string]string{"a": "10.0.0.1-10.0.0.3"}, wantWrites: 1,
		},
		{
			name: "nodes spread over empty blocks, one block each", subnet: v4, usable: "10.0.0.1-10.0.3.254",
			demands:    []Demand{{Node: "a", Need: 2, Want: 2}, {Node: "b", Need: 2, Want: 2}},
			wantGrants: map[string]string{"a": "10.0.0.1-10.0.0.2", "b": "10.0.0.16-10.0.0.17"}, wantWrites: 2,
		},
		{
			name: "a node grows inside its own block first", subnet: v4, usable: "10.0.0.1-10.0.3.254",
			grants:     map[string]string{"a": "10.0.0.64"},
			demands:    []Demand{{Node: "a", Need: 3, Want: 3}},
			wantGrants: map[string]string{"a": "10.0.0.64-10.0.0.66"}, wantWrites: 1,
		},
		{
			name: "exact fit: five addresses, three nodes, one block", subnet: netip.MustParsePrefix("10.1.0.0/24"), usable: "10.1.0.10-10.1.0.14",
			demands:    []Demand{{Node: "a", Need: 2, Want: 4}, {Node: "b", Need: 2, Want: 4}, {Node: "c", Need: 1, Want: 4}},
			wantGrants: map[string]string{"a": "10.1.0.10-10.1.0.11", "b": "10.1.0.12-10.1.0.13", "c": "10.1.0.14"}, wantWrites: 1,
		},
		{
			name: "more need than addresses: unmet, and no buffer for anyone", subnet: netip.MustParsePrefix("10.1.0.0/24"), usable: "10.1.0.10-10.1.0.14",
			demands:    []Demand{{Node: "a", Need: 2, Want: 4}, {Node: "b", Need: 2, Want: 4}, {Node: "c", Need: 2, Want: 4}},
			wantGrants: map[string]string{"a": "10.1.0.10-10.1.0.11", "b": "10.1.0.12-10.1.0.13", "c": "10.1.0.14"},
			wantUnmet:  map[string]int{"c": 1}, wantWrites: 1,
		},
		{
			name: "buffers come from what no node needs", subnet: v4, usable: "10.0.0.1-10.0.0.10",
			demands:    []Demand{{Node: "a", Need: 1, Want: 4}, {Node: "b", Need: 1, Want: 4}},
			wantGrants: map[string]string{"a": "10.0.0.1,10.0.0.3-10.0.0.5", "b": "10.0.0.2,10.0.0.6-10.0.0.8"}, wantWrites: 1,
		},
		{
			name: "reserved and excluded addresses are never granted", subnet: v4, usable: "10.0.0.1-10.0.0.2,10.0.0.5",
			demands:    []Demand{{Node: "a", Need: 3, Want: 3}},
			wantGrants: map[string]string{"a": "10.0.0.1-10.0.0.2,10.0.0.5"}, wantWrites: 1,
		},
		{
			name: "a full pool asks the node with spare addresses to give some back", subnet: v4, usable: "10.0.0.1-10.0.0.4",
			grants:      map[string]string{"a": "10.0.0.1-10.0.0.4"},
			held:        map[string]string{"10.0.0.1": "a"},
			demands:     []Demand{{Node: "a", Need: 1, Want: 4}, {Node: "b", Need: 2, Want: 2}},
			wantGrants:  map[string]string{"a": "10.0.0.1-10.0.0.4"},
			wantReclaim: map[string]string{"a": "10.0.0.3-10.0.0.4"},
			wantUnmet:   map[string]int{"b": 2}, wantWrites: 1,
		},
		{
			name: "addresses asked for already are not asked again", subnet: v4, usable: "10.0.0.1-10.0.0.4",
			grants:      map[string]string{"a": "10.0.0.1-10.0.0.2", "a!": "10.0.0.3-10.0.0.4"},
			held:        map[string]string{"10.0.0.1": "a"},
			demands:     []Demand{{Node: "a", Need: 1, Want: 4}, {Node: "b", Need: 2, Want: 2}},
			wantGrants:  map[string]string{"a": "10.0.0.1-10.0.0.4"},
			wantReclaim: map[string]string{"a": "10.0.0.3-10.0.0.4"},
			wantUnmet:   map[string]int{"b": 2}, wantWrites: 0,
		},
		{
			name: "held addresses are never asked back, even of a node without demand", subnet: v4, usable: "10.0.0.1-10.0.0.4",
			grants:      map[string]string{"a": "10.0.0.1-10.0.0.3", "c": "10.0.0.4"},
			held:        map[string]string{"10.0.0.1": "a", "10.0.0.2": "a", "10.0.0.4": "c"},
			demands:     []Demand{{Node: "a", Need: 2, Want: 2}, {Node: "b", Need: 2, Want: 2}},
			wantGrants:  map[string]string{"a": "10.0.0.1-10.0.0.3", "c": "10.0.0.4"},
			wantReclaim: map[string]string{"a": "10.0.0.3"},
			wantUnmet:   map[string]int{"b": 2}, wantWrites: 1,
		},
		{
			name: "a specific address: granted when free, asked back when another node has it", subnet: v4, usable: "10.0.0.1-10.0.0.20",
			grants:      map[string]string{"a": "10.0.0.7"},
			held:        map[string]string{"10.0.0.7": "a"},
			demands:     []Demand{{Node: "b", IPs: []netip.Addr{netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("10.0.0.12")}}},
			wantGrants:  map[string]string{"a": "10.0.0.7", "b": "10.0.0.12"},
			wantReclaim: map[string]string{"a": "10.0.0.7"}, wantWrites: 1,
		},
		{
			name: "an answer under the request's token frees the addresses in the same round", subnet: v4, usable: "10.0.0.1-10.0.0.4",
			grants: map[string]string{"a": "10.0.0.1-10.0.0.2", "a!": "10.0.0.3-10.0.0.4"},
			held:   map[string]string{"10.0.0.1": "a"},
			demands: []Demand{
				{Node: "a", Need: 1, Want: 1, Released: map[netip.Addr]string{netip.MustParseAddr("10.0.0.3"): "t0", netip.MustParseAddr("10.0.0.4"): "t0"}},
				{Node: "b", Need: 2, Want: 2},
			},
			wantGrants: map[string]string{"a": "10.0.0.1-10.0.0.2", "b": "10.0.0.3-10.0.0.4"}, wantWrites: 1,
		},
		{
			name: "a late answer under another request's token takes nothing", subnet: v4, usable: "10.0.0.1-10.0.0.4",
			grants: map[string]string{"a": "10.0.0.1-10.0.0.2", "a!": "10.0.0.3-10.0.0.4"},
			held:   map[string]string{"10.0.0.1": "a", "10.0.0.2": "a"},
			demands: []Demand{
				{Node: "a", Need: 2, Want: 2, Released: map[netip.Addr]string{netip.MustParseAddr("10.0.0.3"): "older"}},
				{Node: "b", Need: 2, Want: 2},
			},
			wantGrants:  map[string]string{"a": "10.0.0.1-10.0.0.4"},
			wantReclaim: map[string]string{"a": "10.0.0.3-10.0.0.4"},
			wantUnmet:   map[string]int{"b": 2}, wantWrites: 0,
		},
		{
			name: "a kept address loses its request", subnet: v4, usable: "10.0.0.1-10.0.0.4",
			grants: map[string]string{"a": "10.0.0.1-10.0.0.3", "a!": "10.0.0.4"},
			held:   map[string]string{},
			demands: []Demand{
				{Node: "a", Need: 4, Want: 4, Kept: map[netip.Addr]string{netip.MustParseAddr("10.0.0.4"): "t0"}},
			},
			wantGrants: map[string]string{"a": "10.0.0.1-10.0.0.4"}, wantWrites: 1,
		},
		{
			name: "a node that has what it needs costs no write", subnet: v4, usable: "10.0.0.1-10.0.0.20",
			grants:     map[string]string{"a": "10.0.0.1-10.0.0.5"},
			demands:    []Demand{{Node: "a", Need: 3, Want: 5}},
			wantGrants: map[string]string{"a": "10.0.0.1-10.0.0.5"}, wantWrites: 0,
		},
		{
			name: "a gone node keeps only what endpoints hold", subnet: v4, usable: "10.0.0.1-10.0.0.20",
			grants:     map[string]string{"gone": "10.0.0.1-10.0.0.4", "a": "10.0.0.5"},
			held:       map[string]string{"10.0.0.2": "gone"},
			gone:       []string{"gone"},
			demands:    []Demand{{Node: "a", Need: 1, Want: 1}},
			wantGrants: map[string]string{"gone": "10.0.0.2", "a": "10.0.0.5"}, wantWrites: 1,
		},
		{
			name: "a held address of a gone node moves to the node that asks for it", subnet: v4, usable: "10.0.0.1-10.0.0.20",
			grants:     map[string]string{"gone": "10.0.0.1-10.0.0.2"},
			held:       map[string]string{"10.0.0.1": "gone", "10.0.0.2": "gone"},
			gone:       []string{"gone"},
			demands:    []Demand{{Node: "b", IPs: []netip.Addr{netip.MustParseAddr("10.0.0.2")}}},
			wantGrants: map[string]string{"gone": "10.0.0.1", "b": "10.0.0.2"}, wantWrites: 1,
		},
		{
			name: "a live node's held address is asked back, never moved", subnet: v4, usable: "10.0.0.1-10.0.0.20",
			grants:      map[string]string{"a": "10.0.0.1-10.0.0.2"},
			held:        map[string]string{"10.0.0.2": "a"},
			demands:     []Demand{{Node: "b", IPs: []netip.Addr{netip.MustParseAddr("10.0.0.2")}}},
			wantGrants:  map[string]string{"a": "10.0.0.1-10.0.0.2"},
			wantReclaim: map[string]string{"a": "10.0.0.2"}, wantWrites: 1,
		},
		{
			name: "IPv6 /64: blocks are aligned 64-address slices", subnet: netip.MustParsePrefix("fd00::/64"), usable: "fd00::1-fd00::ffff:ffff:ffff:fffe",
			grants:     map[string]string{"a": "fd00::1-fd00::3f"},
			demands:    []Demand{{Node: "a", Need: 64, Want: 64}, {Node: "b", Need: 1, Want: 1}},
			wantGrants: map[string]string{"a": "fd00::1-fd00::40", "b": "fd00::80"}, wantWrites: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := GrantInput{Subnet: tt.subnet, Usable: grantRanges(t, tt.usable), Blocks: grantBlocks(t, tt.subnet, tt.grants),
				Demands: tt.demands, Held: map[netip.Addr]string{}, Token: "t1", Gone: map[string]bool{}}
			for _, n := range tt.gone {
				in.Gone[n] = true
			}
			for a, n := range tt.held {
				in.Held[netip.MustParseAddr(a)] = n
			}
			before := map[netip.Addr]*GrantBlock{}
			for k, b := range in.Blocks {
				before[k] = b.clone()
			}
			plan := PlanGrants(in)
			for k, b := range in.Blocks {
				if !maps.Equal(b.Owners, before[k].Owners) || !maps.Equal(b.Reclaim, before[k].Reclaim) {
					t.Fatalf("PlanGrants changed its input block %s", k)
				}
			}
			if len(plan.Changed) != tt.wantWrites {
				t.Errorf("writes %d blocks, want %d", len(plan.Changed), tt.wantWrites)
			}
			after := maps.Clone(in.Blocks)
			maps.Copy(after, plan.Changed)
			grants, reclaim := grantSummary(t, after)
			if !maps.Equal(grants, orEmpty(tt.wantGrants)) {
				t.Errorf("grants %v, want %v", grants, tt.wantGrants)
			}
			if !maps.Equal(reclaim, orEmpty(tt.wantReclaim)) {
				t.Errorf("reclaim %v, want %v", reclaim, tt.wantReclaim)
			}
			if !maps.Equal(plan.Unmet, orEmptyInt(tt.wantUnmet)) {
				t.Errorf("unmet %v, want %v", plan.Unmet, tt.wantUnmet)
			}
			for start, b := range plan.Changed {
				for a := range b.Owners {
					if BlockStart(tt.subnet, a) != start {
						t.Errorf("%s is in block %s, not %s", a, start, BlockStart(tt.subnet, a))
					}
				}
			}
		})
	}
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func orEmptyInt(m map[string]int) map[string]int {
	if m == nil {
		return map[string]int{}
	}
	return m
}

// TestPlanGrantsExactFitConverges plays the controller and 500 nodes that come to need
// 2 addresses each of a pool of exactly 1000, a fifth of the nodes raising their need
// by one each round, every node asking for a buffer of 4 on top. Nodes use what they are
// granted up to their need and give back what they are asked for and do not hold. After
// each round no address may be granted twice or outside the usable set, and once the
// demands stop every node must hold its 2 within a few rounds: buffers handed out early
// never strand an address that a node needs later.
func TestPlanGrantsExactFitConverges(t *testing.T) {
	subnet := netip.MustParsePrefix("10.2.0.0/22")
	usable := grantRanges(t, "10.2.0.1-10.2.3.232") // 1000 addresses
	const nodes, perNode = 500, 2
	rng := rand.New(rand.NewPCG(1, 2))
	blocks := map[netip.Addr]*GrantBlock{}
	held := map[netip.Addr]string{}
	need := map[string]int{}
	released, kept := map[string]map[netip.Addr]string{}, map[string]map[netip.Addr]string{}
	lastDemand := 0
	for round := range 40 {
		for range nodes / 5 {
			if n := grantNode(rng.IntN(nodes)); need[n] < perNode {
				need[n]++
				lastDemand = round
			}
		}
		if round == 15 { // the stragglers
			for i := range nodes {
				need[grantNode(i)] = perNode
			}
			lastDemand = round
		}
		var demands []Demand
		for n, k := range need {
			demands = append(demands, Demand{Node: n, Need: k, Want: k + 4, Released: released[n], Kept: kept[n]})
		}
		plan := PlanGrants(GrantInput{Subnet: subnet, Usable: usable, Blocks: blocks, Demands: demands, Held: maps.Clone(held), Token: fmt.Sprintf("r%d", round)})
		maps.Copy(blocks, plan.Changed)
		seen := map[netip.Addr]bool{}
		holds := map[string]int{}
		for _, n := range held {
			holds[n]++
		}
		for _, b := range blocks {
			for a, n := range b.Owners {
				if seen[a] {
					t.Fatalf("round %d: %s granted twice", round, a)
				}
				seen[a] = true
				if !usable.Contains(a) {
					t.Fatalf("round %d: %s is not usable", round, a)
				}
				if held[a] == "" && holds[n] < need[n] && b.Reclaim[a] == "" {
					held[a] = n
					holds[n]++
				}
			}
		}
		// Each node answers what it is asked: given back when no pod holds it, kept
		// otherwise; the next round applies the answers.
		released, kept = map[string]map[netip.Addr]string{}, map[string]map[netip.Addr]string{}
		for _, b := range blocks {
			for a, tok := range b.Reclaim {
				n := b.Owners[a]
				to := released
				if held[a] != "" {
					to = kept
				}
				if to[n] == nil {
					to[n] = map[netip.Addr]string{}
				}
				to[n][a] = tok
			}
		}
		if len(held) == nodes*perNode {
			if late := round - lastDemand; late > 3 {
				t.Errorf("the last need was met %d rounds after it was raised", late)
			}
			return
		}
	}
	t.Fatalf("%d nodes needing %d each of %d addresses: %d held after 40 rounds", nodes, perNode, nodes*perNode, len(held))
}

func grantNode(i int) string { return fmt.Sprintf("node-%03d", i) }

// TestPlanGrantsMigrates: a pool switched to node grants with records. Each address the
// records hold goes to the node that holds it; one whose holder is not known yet is
// granted to nobody, and neither is one held by a gone node; the other nodes' needs
// come from the rest.
func TestPlanGrantsMigrates(t *testing.T) {
	subnet := netip.MustParsePrefix("10.0.0.0/24")
	a := netip.MustParseAddr
	in := GrantInput{Subnet: subnet, Usable: grantRanges(t, "10.0.0.1-10.0.0.6"), Blocks: map[netip.Addr]*GrantBlock{},
		Held: map[netip.Addr]string{a("10.0.0.1"): "n1"}, Token: "t", Gone: map[string]bool{"gone": true},
		Pending: map[netip.Addr]string{a("10.0.0.1"): "n1", a("10.0.0.2"): "n1", a("10.0.0.3"): "", a("10.0.0.4"): "gone"},
		Demands: []Demand{{Node: "n1", Need: 1, Want: 1}, {Node: "n2", Need: 3, Want: 3}}}
	plan := PlanGrants(in)
	grants, _ := grantSummary(t, plan.Changed)
	want := map[string]string{"n1": "10.0.0.1-10.0.0.2", "n2": "10.0.0.5-10.0.0.6"}
	if !maps.Equal(grants, want) {
		t.Errorf("grants %v, want %v", grants, want)
	}
	if !slices.Equal(plan.Migrated, []netip.Addr{a("10.0.0.1"), a("10.0.0.2")}) {
		t.Errorf("migrated %v, want 10.0.0.1 and 10.0.0.2", plan.Migrated)
	}
	if plan.Unmet["n2"] != 1 {
		t.Errorf("unmet %v, want n2 short of 1 (10.0.0.3 and .4 are pending)", plan.Unmet)
	}
}

// TestPlanGrantsOldestNeedFirst: two addresses given back, three nodes short; the two
// that have waited longest get them, whatever their names.
func TestPlanGrantsOldestNeedFirst(t *testing.T) {
	subnet := netip.MustParsePrefix("10.0.0.0/24")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in := GrantInput{Subnet: subnet, Usable: grantRanges(t, "10.0.0.1-10.0.0.2"), Blocks: map[netip.Addr]*GrantBlock{},
		Held: map[netip.Addr]string{}, Token: "t",
		Demands: []Demand{{Node: "a", Need: 1, Want: 1}, {Node: "m", Need: 1, Want: 1}, {Node: "z", Need: 1, Want: 1}},
		Since:   map[string]time.Time{"z": t0, "m": t0.Add(time.Second), "a": t0.Add(2 * time.Second)}}
	plan := PlanGrants(in)
	if plan.Granted["z"] != 1 || plan.Granted["m"] != 1 || plan.Unmet["a"] != 1 {
		t.Errorf("granted %v, unmet %v; want z and m served, a short", plan.Granted, plan.Unmet)
	}
}

// TestPlanGrantsNeverGrantsAHeldAddress: an address a SpiderEndpoint holds but no node
// has a grant of (its grant lost, an endpoint written by hand or by another IPAM) is
// never granted to another node's pods: the round leaves it out, and the node that
// needs three addresses of a pool of three gets the two others and stays short of one.
func TestPlanGrantsNeverGrantsAHeldAddress(t *testing.T) {
	subnet := netip.MustParsePrefix("10.0.0.0/24")
	a := netip.MustParseAddr
	in := GrantInput{Subnet: subnet, Usable: grantRanges(t, "10.0.0.1-10.0.0.3"), Blocks: map[netip.Addr]*GrantBlock{},
		Held: map[netip.Addr]string{a("10.0.0.1"): "n1"}, Token: "t",
		Demands: []Demand{{Node: "n2", Need: 3, Want: 3}}}
	plan := PlanGrants(in)
	grants, _ := grantSummary(t, plan.Changed)
	if want := map[string]string{"n2": "10.0.0.2-10.0.0.3"}; !maps.Equal(grants, want) {
		t.Errorf("grants %v, want %v (10.0.0.1 is n1's pod's)", grants, want)
	}
	if plan.Unmet["n2"] != 1 {
		t.Errorf("unmet %v, want n2 short of 1", plan.Unmet)
	}
}

// TestPlanGrantsNeedBelowHoldsChangesNothing: a node writes a higher need only when its
// grants do not cover it, so the need the controller reads may be lower than what the
// node's pods hold. Every need from 0 up to the holds must give the same round: the
// surplus asked back is only ever what no endpoint holds.
func TestPlanGrantsNeedBelowHoldsChangesNothing(t *testing.T) {
	subnet := netip.MustParsePrefix("10.0.0.0/24")
	a := netip.MustParseAddr
	round := func(need int) (grants, reclaim map[string]string, unmet map[string]int) {
		in := GrantInput{Subnet: subnet, Usable: grantRanges(t, "10.0.0.1-10.0.0.4"),
			Blocks: grantBlocks(t, subnet, map[string]string{"a": "10.0.0.1-10.0.0.4"}),
			Held:   map[netip.Addr]string{a("10.0.0.3"): "a", a("10.0.0.4"): "a"}, Token: "t",
			Demands: []Demand{{Node: "a", Need: need, Want: need}, {Node: "b", Need: 1, Want: 1}}}
		plan := PlanGrants(in)
		merged := maps.Clone(in.Blocks)
		maps.Copy(merged, plan.Changed)
		grants, reclaim = grantSummary(t, merged)
		return grants, reclaim, plan.Unmet
	}
	wantGrants, wantReclaim, wantUnmet := round(2)
	if wantReclaim["a"] != "10.0.0.2" || wantUnmet["b"] != 1 {
		t.Fatalf("with a's true need: reclaim %v, unmet %v; want 10.0.0.2 (free) asked of a for b", wantReclaim, wantUnmet)
	}
	for need := range 2 {
		g, r, u := round(need)
		if !maps.Equal(g, wantGrants) || !maps.Equal(r, wantReclaim) || !maps.Equal(u, wantUnmet) {
			t.Errorf("a's need %d (its pods hold 2): grants %v, reclaim %v, unmet %v; want %v, %v, %v as with need 2",
				need, g, r, u, wantGrants, wantReclaim, wantUnmet)
		}
	}
}
