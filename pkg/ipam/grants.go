package ipam

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"time"

	"go4.org/netipx"

	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
)

// This file is the controller's decision in node grants (docs/design/node-grants.md):
// which node gets which addresses of a pool, and which unused addresses a node is asked
// to give back. The controller reads the blocks, the nodes' demands and the endpoints'
// holds, calls PlanGrants, and writes each changed block with a compare-and-swap.

// GrantBlockSize is how many consecutive addresses of subnet one IPBlock covers: 16 in a
// subnet of at most 65,536 addresses, 64 in a larger one. Blocks are aligned on the
// subnet's first address; a subnet smaller than a block is one block. Fewer addresses
// per block means fewer nodes share one, and every write of a block reaches each node
// it names: with 1,000 addresses for 500 nodes, 64-address blocks are each shared by
// about 32 nodes, 16-address blocks by 8 (docs/design/node-grants.md, "Block size").
// Larger subnets keep 64 so that a pool of 1,000,000 addresses stays 15,625 objects.
// The size depends only on spec.subnet, which never changes, so every agent and
// controller of a pool agrees on it without reading anything else.
func GrantBlockSize(subnet netip.Prefix) int { return 1 << blockBits(subnet) }

// blockBits is log2 of GrantBlockSize.
func blockBits(subnet netip.Prefix) int {
	if subnet.Addr().BitLen()-subnet.Bits() <= 16 {
		return 4
	}
	return 6
}

// BlockStart is the first address of the block of subnet that holds a.
func BlockStart(subnet netip.Prefix, a netip.Addr) netip.Addr {
	bits := blockBits(subnet)
	if subnet.Bits() > a.BitLen()-bits {
		return subnet.Addr() // the whole subnet is one block
	}
	b := a.As16()
	b[15] &^= byte(1<<bits - 1)
	out := netip.AddrFrom16(b)
	if a.Is4() {
		out = out.Unmap()
	}
	return out
}

// blockEnd is the last address of the block starting at start, within subnet.
func blockEnd(subnet netip.Prefix, start netip.Addr) netip.Addr {
	bits := blockBits(subnet)
	if subnet.Bits() > start.BitLen()-bits {
		return netipx.PrefixLastIP(subnet)
	}
	b := start.As16()
	b[15] |= byte(1<<bits - 1)
	out := netip.AddrFrom16(b)
	if start.Is4() {
		out = out.Unmap()
	}
	return out
}

// GrantBlock is one block's grants: which node each granted address belongs to, and
// which of them the controller has asked their node to give back, with the token of
// each request.
type GrantBlock struct {
	Start   netip.Addr
	Owners  map[netip.Addr]string
	Reclaim map[netip.Addr]string
}

func (b *GrantBlock) clone() *GrantBlock {
	return &GrantBlock{Start: b.Start, Owners: maps.Clone(b.Owners), Reclaim: maps.Clone(b.Reclaim)}
}

// Demand is what one node's agent asks of one pool: Need addresses for its pods (held,
// being handed out or waited for), Want with its buffer, and specific addresses (a
// StatefulSet's, a fixed IP) in IPs. Released and Kept answer reclaim requests: the
// addresses the node gives back and those it keeps, each with the request's token.
type Demand struct {
	Node           string
	Need, Want     int
	IPs            []netip.Addr
	Released, Kept map[netip.Addr]string
}

// GrantInput is one pool as the controller sees it.
type GrantInput struct {
	Subnet netip.Prefix
	// Usable is what may be granted: spec.ips minus excludeIPs minus reserved addresses.
	Usable ip.Set
	// Blocks are the pool's blocks by start address.
	Blocks map[netip.Addr]*GrantBlock
	// Demands are the nodes' demands on the pool. A node with grants and no demand
	// needs what its pods hold (Held).
	Demands []Demand
	// Held maps each address a SpiderEndpoint records to the endpoint's node.
	Held map[netip.Addr]string
	// Token marks the reclaim requests this round makes; a fresh one each round.
	Token string
	// Gone are nodes whose agent is gone for good: the Node object (and with it the
	// node's IPAMNode) was deleted longer ago than any of its writes can take to land.
	// Nobody answers for them, so the round takes back what they hold that no endpoint
	// holds, and hands a held one straight to the node that asks for it by address (a
	// StatefulSet pod rescheduled from the gone node).
	Gone map[string]bool
	// Pending are the addresses the pool's records (format 1) still hold, when the pool
	// switched to node grants with records: each maps to the node whose reserve or pod
	// holds it ("" while the holder is not known: a pod whose endpoint is not written
	// yet). The round grants each to its node; none is granted to anyone else while it
	// is pending.
	Pending map[netip.Addr]string
	// Since dates, per node, when its need was first left unmet (by earlier rounds, the
	// caller remembers): needs are served oldest first, so addresses given back go to the
	// nodes that have waited longest rather than to the first names.
	Since map[string]time.Time
}

// GrantPlan is what a round changes.
type GrantPlan struct {
	// Changed are the blocks to write, with their new content, by start address.
	Changed map[netip.Addr]*GrantBlock
	// Unmet is, per node, how many addresses of its need nothing could give this round
	// (after asking other nodes to give back what they do not need).
	Unmet map[string]int
	// Granted counts the addresses granted this round, per node.
	Granted map[string]int
	// Reclaimed counts the addresses this round asks their nodes to give back.
	Reclaimed int
	// Returned counts the addresses nodes gave back that this round takes from them.
	Returned int
	// Dropped counts the addresses this round takes from gone nodes.
	Dropped int
	// Migrated are the pending addresses granted to their node after this round: they
	// leave the records once the round's blocks are written.
	Migrated []netip.Addr
}

// planner is one round's working state.
type planner struct {
	in      GrantInput
	granted int // how many addresses are granted
	blocks  map[netip.Addr]*GrantBlock
	changed map[netip.Addr]*GrantBlock
	count   map[string]int                 // grants per node
	byNode  map[string]map[netip.Addr]bool // block starts a node has grants in
	plan    GrantPlan
}

// PlanGrants decides one round: specific addresses first, then every node's need, then
// buffers from what no node needs; when a need is left unmet and nothing is ungranted,
// it asks nodes holding more than they need to give back their unused addresses. It
// never moves a granted address from one node to another: only the node's own give-back
// frees it.
func PlanGrants(in GrantInput) GrantPlan {
	p := &planner{
		in: in, blocks: make(map[netip.Addr]*GrantBlock, len(in.Blocks)),
		changed: map[netip.Addr]*GrantBlock{}, count: map[string]int{}, byNode: map[string]map[netip.Addr]bool{},
		plan: GrantPlan{Unmet: map[string]int{}, Granted: map[string]int{}},
	}
	for start, b := range in.Blocks {
		p.blocks[start] = b
		last := ""
		for _, n := range b.Owners {
			p.count[n]++
			if n != last { // a block is mostly one node's
				p.affine(n, start)
				last = n
			}
		}
		p.granted += len(b.Owners)
	}
	demands := slices.Clone(in.Demands)
	slices.SortFunc(demands, func(a, b Demand) int { return cmp.Compare(a.Node, b.Node) })
	// 0. The nodes' answers to reclaim requests: what they gave back is free for this
	// round already. An answer counts only for the request its token names.
	for _, d := range demands {
		p.answer(d)
	}
	p.dropGone(demands)
	p.migrate()
	need := map[string]int{}
	for _, d := range demands {
		need[d.Node] = d.Need // a specific address is met in step 1 or not at all
	}
	for a, n := range in.Held {
		if _, asked := need[n]; !asked && p.owner(a) == n {
			need[n]++ // a node with no demand needs what its pods hold
		}
	}

	// 1. Specific addresses.
	for _, d := range demands {
		for _, a := range d.IPs {
			switch n, granted := p.ownerOf(a); {
			case !granted && in.Usable.Contains(a):
				p.grant(d.Node, a)
			case granted && n != d.Node:
				// Ask the other node for it. It gives it back only once no pod of its
				// own holds it (the pod that asks may be the one that left that node).
				p.reclaim(a)
			}
		}
	}
	// 2. Needs, the longest-waiting first, then 3. buffers.
	byAge := slices.Clone(demands)
	slices.SortStableFunc(byAge, func(a, b Demand) int {
		sa, oka := p.in.Since[a.Node]
		sb, okb := p.in.Since[b.Node]
		switch {
		case oka && okb:
			return sa.Compare(sb)
		case oka:
			return -1
		case okb:
			return 1
		}
		return 0
	})
	for _, d := range byAge {
		if k := need[d.Node] - p.count[d.Node]; k > 0 {
			if got := p.grantAny(d.Node, k); got < k {
				p.plan.Unmet[d.Node] = k - got
			}
		}
	}
	if len(p.plan.Unmet) == 0 {
		p.grantBuffers(demands)
	}
	// 4. Reclaim what nodes hold beyond their need, for the needs left unmet.
	if len(p.plan.Unmet) > 0 {
		p.reclaimSurplus(need)
	}
	p.plan.Changed = p.changed
	return p.plan
}

// migrate grants each pending address to the node that holds it in the records, and
// takes every pending address that is not its node's out of what the rest of the round
// may grant.
func (p *planner) migrate() {
	if len(p.in.Pending) == 0 {
		return
	}
	var taken []ip.Range
	for _, a := range slices.SortedFunc(maps.Keys(p.in.Pending), netip.Addr.Compare) {
		n := p.in.Pending[a]
		if owner, granted := p.ownerOf(a); !granted && n != "" && !p.in.Gone[n] {
			p.grant(n, a)
		} else if granted && owner != n {
			taken = append(taken, ip.Range{From: a, To: a}) // a leftover grant: wait
			continue
		}
		if p.owner(a) == n && n != "" {
			p.plan.Migrated = append(p.plan.Migrated, a)
			continue
		}
		taken = append(taken, ip.Range{From: a, To: a})
	}
	if set, err := ip.SetOfRanges(taken...); err == nil && !set.IsEmpty() {
		p.in.Usable = p.in.Usable.Subtract(set)
	}
}

// dropGone takes from gone nodes what no endpoint holds, and moves an address an
// endpoint holds to the node that asks for it by address. No agent of a gone node can
// hand anything out any more, so this is the one case where the controller moves or
// frees a granted address without its node's answer.
func (p *planner) dropGone(demands []Demand) {
	if len(p.in.Gone) == 0 {
		return
	}
	askedBy := map[netip.Addr]string{}
	for _, d := range demands {
		for _, a := range d.IPs {
			askedBy[a] = d.Node
		}
	}
	var theirs []netip.Addr
	for _, b := range p.blocks {
		for a, n := range b.Owners {
			if p.in.Gone[n] {
				theirs = append(theirs, a)
			}
		}
	}
	slices.SortFunc(theirs, netip.Addr.Compare)
	for _, a := range theirs {
		n := p.owner(a)
		to, asked := askedBy[a]
		if p.in.Held[a] != "" && !asked {
			continue // a pod's, until GC frees it or its StatefulSet pod asks for it
		}
		e := p.edit(BlockStart(p.in.Subnet, a))
		delete(e.Owners, a)
		delete(e.Reclaim, a)
		p.granted--
		p.count[n]--
		p.plan.Dropped++
		if asked && !p.in.Gone[to] && p.in.Usable.Contains(a) {
			p.grant(to, a)
		}
	}
}

// grantBuffers grants what nodes want beyond their need from what is left, no node
// more than an even share of it, so that a few nodes' buffers never take what many
// nodes will need next.
func (p *planner) grantBuffers(demands []Demand) {
	var wanting []Demand
	for _, d := range demands {
		if d.Want > p.count[d.Node] {
			wanting = append(wanting, d)
		}
	}
	if len(wanting) == 0 {
		return
	}
	left := p.ungranted(int64(len(wanting)) * int64(slices.MaxFunc(wanting, func(a, b Demand) int { return cmp.Compare(a.Want, b.Want) }).Want))
	share := max(int(left/int64(len(wanting))), 0)
	if share == 0 {
		share = 1 // fewer addresses than nodes: the first ones get one each
	}
	for _, d := range wanting {
		p.grantAny(d.Node, min(d.Want-p.count[d.Node], share))
	}
}

// ungranted counts usable addresses granted to no node, up to limit (a /64 is never
// counted through).
func (p *planner) ungranted(limit int64) int64 {
	total := p.in.Usable.Count()
	if n, ok := total.Uint64(); ok && n <= uint64(limit)+uint64(p.granted) {
		free := int64(n)
		for _, b := range p.blocks {
			for a := range b.Owners {
				if p.in.Usable.Contains(a) {
					free--
				}
			}
		}
		return free
	}
	return limit
}

// ownerOf returns the node a is granted to.
func (p *planner) ownerOf(a netip.Addr) (string, bool) {
	b := p.blocks[BlockStart(p.in.Subnet, a)]
	if b == nil {
		return "", false
	}
	n, ok := b.Owners[a]
	return n, ok
}

// owner returns the node a is granted to, "" when none.
func (p *planner) owner(a netip.Addr) string {
	n, _ := p.ownerOf(a)
	return n
}

func (p *planner) affine(node string, start netip.Addr) {
	if p.byNode[node] == nil {
		p.byNode[node] = map[netip.Addr]bool{}
	}
	p.byNode[node][start] = true
}

// edit returns the block starting at start, copied into changed on first edit.
func (p *planner) edit(start netip.Addr) *GrantBlock {
	if b := p.changed[start]; b != nil {
		return b
	}
	b := p.blocks[start]
	if b == nil {
		b = &GrantBlock{Start: start, Owners: map[netip.Addr]string{}, Reclaim: map[netip.Addr]string{}}
	} else {
		b = b.clone()
		if b.Reclaim == nil {
			b.Reclaim = map[netip.Addr]string{}
		}
	}
	p.changed[start], p.blocks[start] = b, b
	return b
}

func (p *planner) grant(node string, a netip.Addr) {
	start := BlockStart(p.in.Subnet, a)
	p.edit(start).Owners[a] = node
	p.granted++
	p.count[node]++
	p.plan.Granted[node]++
	p.affine(node, start)
}

func (p *planner) reclaim(a netip.Addr) {
	start := BlockStart(p.in.Subnet, a)
	if b := p.blocks[start]; b != nil && b.Reclaim[a] != "" {
		return // asked already: no write
	}
	p.edit(start).Reclaim[a] = p.in.Token
	p.plan.Reclaimed++
}

// answer applies a node's answers to reclaim requests: an address given back under the
// token of its current request leaves the node; a kept one loses its request.
func (p *planner) answer(d Demand) {
	for a, tok := range d.Released {
		start := BlockStart(p.in.Subnet, a)
		b := p.blocks[start]
		if b == nil || b.Owners[a] != d.Node || b.Reclaim[a] != tok {
			continue // a late answer to a request that is gone
		}
		e := p.edit(start)
		delete(e.Owners, a)
		delete(e.Reclaim, a)
		p.granted--
		p.count[d.Node]--
		p.plan.Returned++
	}
	for a, tok := range d.Kept {
		start := BlockStart(p.in.Subnet, a)
		if b := p.blocks[start]; b != nil && b.Owners[a] == d.Node && b.Reclaim[a] == tok {
			delete(p.edit(start).Reclaim, a)
		}
	}
}

// grantAny grants up to k free addresses to node: first in blocks it already has, then
// in blocks no node has, then anywhere. It returns how many it granted.
func (p *planner) grantAny(node string, k int) int {
	got := 0
	take := func(start netip.Addr) {
		for a := range p.freeIn(start) {
			if got == k {
				return
			}
			p.grant(node, a)
			got++
		}
	}
	mine := slices.SortedFunc(maps.Keys(p.byNode[node]), netip.Addr.Compare)
	for _, start := range mine {
		take(start)
	}
	for _, empty := range []bool{true, false} {
		for start := range p.blockStarts() {
			if got == k {
				return got
			}
			b := p.blocks[start]
			if empty != (b == nil || len(b.Owners) == 0) {
				continue
			}
			take(start)
		}
	}
	return got
}

// blockStarts yields the start of every block that holds a usable address, in address
// order. It stops as soon as the consumer does, so a /64 costs what is looked at.
func (p *planner) blockStarts() func(func(netip.Addr) bool) {
	return func(yield func(netip.Addr) bool) {
		last := netip.Addr{}
		for _, r := range p.in.Usable.Ranges() {
			for start := BlockStart(p.in.Subnet, r.From); ; {
				if start != last && !yield(start) {
					return
				}
				last = start
				end := blockEnd(p.in.Subnet, start)
				if end.Compare(r.To) >= 0 || !end.Next().IsValid() {
					break
				}
				start = end.Next()
			}
		}
	}
}

// freeIn yields the usable, ungranted addresses of the block starting at start that no
// SpiderEndpoint holds: an address an endpoint holds without a grant (its grant lost, an
// endpoint written by hand) is its pod's until GC frees it, never another node's.
func (p *planner) freeIn(start netip.Addr) func(func(netip.Addr) bool) {
	return func(yield func(netip.Addr) bool) {
		end := blockEnd(p.in.Subnet, start)
		for a := start; a.IsValid() && a.Compare(end) <= 0; a = a.Next() {
			if _, taken := p.ownerOf(a); taken || !p.in.Usable.Contains(a) || p.in.Held[a] != "" {
				continue
			}
			if !yield(a) {
				return
			}
		}
	}
}

// reclaimSurplus asks nodes that hold more than they need to give back unused addresses
// (granted, not held by an endpoint, not already asked for), as many as the unmet needs,
// from the node with the largest surplus first.
func (p *planner) reclaimSurplus(need map[string]int) {
	short := 0
	for _, k := range p.plan.Unmet {
		short += k
	}
	asked := map[string]int{}
	spare := map[string][]netip.Addr{}
	for _, b := range p.blocks {
		for a, n := range b.Owners {
			switch {
			case b.Reclaim[a] != "":
				asked[n]++
			case p.in.Held[a] == "":
				spare[n] = append(spare[n], a)
			}
		}
	}
	for _, k := range asked {
		short -= k // already on their way back
	}
	type surplus struct {
		node string
		k    int
	}
	var nodes []surplus
	for n, free := range spare {
		if k := min(p.count[n]-asked[n]-need[n], len(free)); k > 0 {
			nodes = append(nodes, surplus{n, k})
		}
	}
	slices.SortFunc(nodes, func(a, b surplus) int { return cmp.Or(cmp.Compare(b.k, a.k), cmp.Compare(a.node, b.node)) })
	for _, s := range nodes {
		if short <= 0 {
			return
		}
		free := spare[s.node]
		slices.SortFunc(free, func(a, b netip.Addr) int { return b.Compare(a) }) // highest first
		for _, a := range free[:min(s.k, short)] {
			p.reclaim(a)
			short--
		}
	}
}
