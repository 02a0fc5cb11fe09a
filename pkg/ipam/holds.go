package ipam

import (
	"cmp"
	"net/netip"
	"slices"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
)

// A pool in Grants mode (v2beta1.SpiderIPPool.GrantsMode, docs/design/node-grants.md)
// records no allocation in its status: the pods' SpiderEndpoints are the records. An
// endpoint holds an address of a pool when one of its interfaces names the address
// and the pool (status.current.ips[].ipv4 with ipv4Pool, ipv6 with ipv6Pool). Grants
// to nodes are not holds: an address granted to a node and not handed to a pod is free
// as far as users see (allocatedIPCount, shrinking the pool).

// EndpointHold is one address a SpiderEndpoint holds in a pool.
type EndpointHold struct {
	Addr netip.Addr
	// Namespace and Name are the endpoint's, which are its pod's.
	Namespace, Name string
	// PodUID and Node are the endpoint's status.current.uid and status.current.node.
	PodUID, Node string
}

// EndpointPools lists the pools an endpoint names addresses of, each once, in the order
// of its interfaces.
func EndpointPools(se *v2beta1.SpiderEndpoint) []string {
	var out []string
	for _, nic := range se.Status.Current.IPs {
		for _, p := range []*string{nic.IPv4Pool, nic.IPv6Pool} {
			if p != nil && *p != "" && !slices.Contains(out, *p) {
				out = append(out, *p)
			}
		}
	}
	return out
}

// EndpointAddrs returns the addresses an endpoint names in a pool, in the order of its
// interfaces. The agent writes them in CIDR form ("10.0.0.5/24"); a bare address is
// read too, and an entry that is neither is left out.
func EndpointAddrs(se *v2beta1.SpiderEndpoint, pool string) []netip.Addr {
	var out []netip.Addr
	for _, nic := range se.Status.Current.IPs {
		for _, f := range []struct{ addr, pool *string }{{nic.IPv4, nic.IPv4Pool}, {nic.IPv6, nic.IPv6Pool}} {
			if f.addr == nil || f.pool == nil || *f.pool != pool {
				continue
			}
			if p, err := netip.ParsePrefix(*f.addr); err == nil {
				out = append(out, p.Addr())
			} else if a, err := netip.ParseAddr(*f.addr); err == nil {
				out = append(out, a)
			}
		}
	}
	return out
}

// EndpointHolds returns what the endpoints hold in the pool of this name and subnet,
// ascending by address, then by endpoint. Endpoints that do not name the pool add
// nothing, and an address outside the subnet is no address of the pool and is left
// out. Two entries with one address (two endpoints naming it, which the agents never
// write) are both returned: the caller decides what that means.
func EndpointHolds(pool string, subnet netip.Prefix, eps []v2beta1.SpiderEndpoint) []EndpointHold {
	var out []EndpointHold
	for i := range eps {
		se := &eps[i]
		for _, a := range EndpointAddrs(se, pool) {
			if !subnet.Contains(a) {
				continue
			}
			out = append(out, EndpointHold{Addr: a, Namespace: se.Namespace, Name: se.Name,
				PodUID: se.Status.Current.UID, Node: se.Status.Current.Node})
		}
	}
	slices.SortFunc(out, func(x, y EndpointHold) int {
		return cmp.Or(x.Addr.Compare(y.Addr), cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
	})
	return slices.Compact(out)
}

// HeldAddrs returns the distinct addresses of holds, ascending (holds as EndpointHolds
// returns them).
func HeldAddrs(holds []EndpointHold) []netip.Addr {
	out := make([]netip.Addr, 0, len(holds))
	for _, h := range holds {
		if n := len(out); n == 0 || out[n-1] != h.Addr {
			out = append(out, h.Addr)
		}
	}
	return out
}

// HeldSet is the set of the addresses of holds, which EndpointHolds took from one
// subnet, so of one family.
func HeldSet(holds []EndpointHold) ip.Set {
	if len(holds) == 0 {
		return ip.Set{}
	}
	rs := make([]ip.Range, len(holds))
	for i, h := range holds {
		rs[i] = ip.Range{From: h.Addr, To: h.Addr}
	}
	return mustSet(rs)
}
