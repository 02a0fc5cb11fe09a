package ipam

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
)

// ErrInvalidBlock wraps every reason an IPBlock cannot be read.
var ErrInvalidBlock = errors.New("invalid IPBlock")

// Labels of an IPBlock.
const (
	// BlockPoolLabel carries the block's pool name.
	BlockPoolLabel = "ipam.orbweaver.io/pool"
	// blockNodeLabelPrefix prefixes the label a block carries for each node it names.
	blockNodeLabelPrefix = "node.ipam.orbweaver.io/"
)

// BlockNodeLabel is the label key a block carries while it names node (in its grants or
// its reclaim list): an agent watches the blocks with its own key. The key is a digest,
// because a node name may be longer than a label key may be.
func BlockNodeLabel(node string) string {
	sum := sha256.Sum256([]byte(node))
	return blockNodeLabelPrefix + hex.EncodeToString(sum[:8])
}

// BlockName is the name of pool's block starting at start: the pool's name, a dot and
// the address with ":" written "-" (which keeps names unique: canonical addresses have
// no "-"), or a digest of those when that is longer than an object name may be. An
// IPv6 address that starts or ends with "::" (fd00::, the first block of most IPv6
// subnets) gets a 0 there ("fd00::0", "fd00--0"): a name must start and end with a
// letter or digit, and no canonical address ends in "::0" or starts with "0::", so the
// names stay unique, and every other address keeps the name it had.
func BlockName(pool string, start netip.Addr) string {
	s := start.String()
	if strings.HasSuffix(s, "::") {
		s += "0"
	}
	if strings.HasPrefix(s, "::") {
		s = "0" + s
	}
	name := pool + "." + strings.ReplaceAll(s, ":", "-")
	if len(name) <= 253 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return strings.TrimRight(pool[:200], "-.") + "." + hex.EncodeToString(sum[:16])
}

// GrantBlockOf reads an IPBlock of a pool with the given subnet. It refuses a block
// that does not belong there and an address granted to two nodes.
func GrantBlockOf(subnet netip.Prefix, b *ipamv1.IPBlock) (*GrantBlock, error) {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidBlock, b.Name, fmt.Sprintf(format, args...))
	}
	start, err := netip.ParseAddr(b.Spec.Start)
	if err != nil || !subnet.Contains(start) || BlockStart(subnet, start) != start {
		return nil, invalid("spec.start %q is not the start of a block of %s", b.Spec.Start, subnet)
	}
	g := &GrantBlock{Start: start, Owners: map[netip.Addr]string{}, Reclaim: map[netip.Addr]string{}}
	inBlock := func(field, node string, ips []string) ([]netip.Addr, error) {
		set, err := ip.ParseRanges(ips)
		if err != nil {
			return nil, invalid("%s of node %q: %v", field, node, err)
		}
		var out []netip.Addr
		for _, r := range set.Ranges() {
			if BlockStart(subnet, r.From) != start || BlockStart(subnet, r.To) != start || !subnet.Contains(r.To) {
				return nil, invalid("%s of node %q: %s is outside the block", field, node, r)
			}
			for a := r.From; a.Compare(r.To) <= 0; a = a.Next() {
				out = append(out, a)
			}
		}
		return out, nil
	}
	for _, na := range b.Spec.Grants {
		as, err := inBlock("spec.grants", na.Node, na.IPs)
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			if other, dup := g.Owners[a]; dup {
				return nil, invalid("%s is granted to %q and %q", a, other, na.Node)
			}
			g.Owners[a] = na.Node
		}
	}
	for _, rr := range b.Spec.Reclaim {
		as, err := inBlock("spec.reclaim", rr.Node, rr.IPs)
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			if g.Owners[a] == rr.Node {
				g.Reclaim[a] = rr.Token // a request for an address the node no longer has means nothing
			}
		}
	}
	return g, nil
}

// Write sets b's spec and node labels from g, for pool. Grants and reclaim marks are
// written per node in name order, as ranges.
func (g *GrantBlock) Write(pool string, b *ipamv1.IPBlock) {
	b.Spec.Pool, b.Spec.Start = pool, g.Start.String()
	per := map[string][]netip.Addr{}
	type request struct{ node, token string }
	marked := map[request][]netip.Addr{}
	for a, n := range g.Owners {
		per[n] = append(per[n], a)
		if tok := g.Reclaim[a]; tok != "" {
			marked[request{n, tok}] = append(marked[request{n, tok}], a)
		}
	}
	b.Spec.Grants = nodeAddresses(per)
	b.Spec.Reclaim = nil
	for _, r := range slices.SortedFunc(maps.Keys(marked), func(x, y request) int {
		return cmp.Or(cmp.Compare(x.node, y.node), cmp.Compare(x.token, y.token))
	}) {
		b.Spec.Reclaim = append(b.Spec.Reclaim, ipamv1.ReclaimRequest{Node: r.node, Token: r.token, IPs: RangeStrings(marked[r])})
	}
	if b.Labels == nil {
		b.Labels = map[string]string{}
	}
	for k := range b.Labels {
		if strings.HasPrefix(k, blockNodeLabelPrefix) {
			delete(b.Labels, k)
		}
	}
	b.Labels[BlockPoolLabel] = pool
	for n := range per {
		b.Labels[BlockNodeLabel(n)] = labelValue(n)
	}
}

// labelValue is the node's name when it fits in a label value, else empty.
func labelValue(node string) string {
	if len(node) > 63 {
		return ""
	}
	return node
}

func nodeAddresses(per map[string][]netip.Addr) []ipamv1.NodeAddresses {
	out := make([]ipamv1.NodeAddresses, 0, len(per))
	for _, n := range slices.Sorted(maps.Keys(per)) {
		out = append(out, ipamv1.NodeAddresses{Node: n, IPs: RangeStrings(per[n])})
	}
	slices.SortFunc(out, func(a, b ipamv1.NodeAddresses) int { return cmp.Compare(a.Node, b.Node) })
	return out
}

// RangeStrings writes addresses as ascending single addresses and ranges.
func RangeStrings(as []netip.Addr) []string {
	as = slices.Clone(as)
	slices.SortFunc(as, netip.Addr.Compare)
	var rs []string
	for i := 0; i < len(as); {
		j := i
		for j+1 < len(as) && as[j].Next() == as[j+1] {
			j++
		}
		rs = append(rs, ip.Range{From: as[i], To: as[j]}.String())
		i = j + 1
	}
	return rs
}
