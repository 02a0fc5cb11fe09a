package ipam

import (
	"errors"
	"fmt"
	"net/netip"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
)

// Carving auto pools out of a SpiderSubnet: which addresses a new or growing pool takes,
// and which a shrinking pool gives back. Pure functions over the objects as read; the
// controller reads them fresh, decides here, and writes with a resourceVersion.
//
// The rules (docs/guides/auto-pools.md, section 6):
//   - A subnet's free addresses are its spec.ips inside spec.subnet, minus its
//     spec.excludeIPs, minus the spec.ips of every pool (pools being deleted too: they
//     keep their addresses until their finalizer goes), minus the SpiderReservedIPs.
//   - A pool grows by the lowest free addresses, all it needs or none.
//   - A pool shrinks only by addresses no record holds (a pod's, or a node's reserve;
//     in Grants mode, a pod's SpiderEndpoint), reserved ones first, then from the
//     highest down; what records hold stays, and the pool is smaller later, when they
//     are released.

// ErrSubnetExhausted: a SpiderSubnet has fewer free addresses than an auto pool needs.
var ErrSubnetExhausted = errors.New("subnet exhausted")

// SubnetExhaustedError says how short a subnet is. It matches ErrSubnetExhausted.
type SubnetExhaustedError struct {
	// Subnet is the SpiderSubnet's name.
	Subnet string
	// Want is the pool's wanted size; Need the addresses it lacks (Want for a new pool);
	// Free the subnet's free addresses, saturated at the int64 maximum.
	Want, Need, Free int64
}

func (e *SubnetExhaustedError) Error() string {
	return fmt.Sprintf("SpiderSubnet %q has %d free addresses, and the pool needs %d more to hold %d: %v",
		e.Subnet, e.Free, e.Need, e.Want, ErrSubnetExhausted)
}

// Is makes errors.Is(err, ErrSubnetExhausted) hold.
func (e *SubnetExhaustedError) Is(target error) bool { return target == ErrSubnetExhausted }

// SubnetAddresses returns a SpiderSubnet's network and the addresses it hands to its
// pools: spec.ips inside spec.subnet, minus spec.excludeIPs.
func SubnetAddresses(s *v2beta1.SpiderSubnet) (netip.Prefix, ip.Set, error) {
	prefix, err := ip.ParseCanonicalCIDR(string(s.Spec.Subnet))
	if err != nil {
		return netip.Prefix{}, ip.Set{}, fmt.Errorf("SpiderSubnet %q spec.subnet: %w", s.Name, err)
	}
	addrs, err := EffectiveAddresses(prefix, s.Spec.IPs, s.Spec.ExcludeIPs)
	if err != nil {
		return netip.Prefix{}, ip.Set{}, fmt.Errorf("SpiderSubnet %q %w", s.Name, err)
	}
	return prefix, addrs, nil
}

// SubnetFree returns the addresses of a SpiderSubnet that a new or growing pool may
// take: SubnetAddresses minus the spec.ips of every pool, minus reserved (the
// SpiderReservedIPs of the subnet's family, see ReservedAddresses).
//
// Every pool counts, whatever its spec.subnet says and whether or not it is being
// deleted: the webhook keeps pools of another subnet off this one's addresses, but an
// address must never be handed to two pools even if something slipped past it. A pool
// whose spec.ips do not parse is an error (ErrInvalidPool) when its subnet may overlap
// this one, since its addresses cannot be known; otherwise it is ignored.
func SubnetFree(subnet *v2beta1.SpiderSubnet, pools []v2beta1.SpiderIPPool, reserved ip.Set) (ip.Set, error) {
	prefix, free, err := SubnetAddresses(subnet)
	if err != nil {
		return ip.Set{}, err
	}
	var taken []ip.Range
	for i := range pools {
		p := &pools[i]
		ips, err := ip.ParseRanges(tokens(p.Spec.IPs))
		if err != nil {
			if other, perr := ip.ParseCIDR(string(p.Spec.Subnet)); perr == nil && !other.Overlaps(prefix) {
				continue
			}
			return ip.Set{}, fmt.Errorf("%w %q: spec.ips: %v; cannot tell which addresses of SpiderSubnet %q it holds", ErrInvalidPool, p.Name, err, subnet.Name)
		}
		taken = append(taken, ips.Intersect(free).Ranges()...)
	}
	if len(taken) > 0 {
		t, err := ip.SetOfRanges(taken...) // all of free's family
		if err != nil {
			return ip.Set{}, fmt.Errorf("SpiderSubnet %q: %w", subnet.Name, err)
		}
		free = free.Subtract(t)
	}
	return free.Subtract(reserved), nil
}

// AutoPoolSizing is what ResizeAutoPool decides from.
type AutoPoolSizing struct {
	// Subnet is the SpiderSubnet the pool is cut from.
	Subnet *v2beta1.SpiderSubnet
	// Pool is the pool as stored; nil for a pool to create.
	Pool *v2beta1.SpiderIPPool
	// Pools is every pool, as stored; Pool may be among them or not.
	Pools []v2beta1.SpiderIPPool
	// Reserved are the addresses of every SpiderReservedIP of the subnet's family.
	Reserved ip.Set
	// Held are addresses of Pool that pods hold besides its records: for a pool in
	// Grants mode, which records nothing, the addresses its SpiderEndpoints hold
	// (HeldSet of EndpointHolds). A shrink never gives them back. Addresses granted to
	// nodes and held by no pod may go: the agents give back what leaves the pool.
	Held ip.Set
	// Want is the pool's wanted size (DesiredIPNumber).
	Want int64
}

// AutoPoolResize is ResizeAutoPool's decision.
type AutoPoolResize struct {
	// IPs is the pool's new spec.ips (write IPs.Strings()).
	IPs ip.Set
	// Added and Removed are what changed.
	Added, Removed ip.Set
	// Kept is how many addresses the pool keeps above Want because records hold them:
	// it shrinks further once they are released.
	Kept int64
}

// Changed tells whether spec.ips changes.
func (r AutoPoolResize) Changed() bool { return !r.Added.IsEmpty() || !r.Removed.IsEmpty() }

// ResizeAutoPool decides the spec.ips of an auto pool that should hold in.Want addresses.
// The size counted is the pool's spec.ips inside its subnet minus its spec.excludeIPs
// (status.totalIPCount).
//
//   - New pool: the Want lowest free addresses of the subnet (SubnetFree).
//   - Growing: the current addresses plus the lowest free ones it lacks.
//   - Shrinking: the current addresses minus ones no record holds (a node's reserve
//     holds too, and so does in.Held): SpiderReservedIPs first, which the pool cannot
//     hand out anyway, then from the highest down. An address a record holds is never
//     removed; Kept counts those the pool holds above Want.
//
// Growing is all or nothing: when the subnet has fewer free addresses than the pool
// lacks, the error is a *SubnetExhaustedError and nothing changes. A pool whose spec or
// records cannot be read is ErrInvalidPool.
func ResizeAutoPool(in AutoPoolSizing) (AutoPoolResize, error) {
	want := max(in.Want, 0)
	var (
		current ip.Set // spec.ips as written
		pool    Pool
		exclude ip.Set
	)
	if in.Pool != nil {
		var err error
		if pool, err = NewPool(in.Pool, in.Reserved); err != nil {
			return AutoPoolResize{}, err
		}
		if current, err = ip.ParseRanges(tokens(in.Pool.Spec.IPs)); err != nil {
			return AutoPoolResize{}, fmt.Errorf("%w %q: spec.ips: %v", ErrInvalidPool, in.Pool.Name, err)
		}
		if exclude, err = ip.ParseRanges(tokens(in.Pool.Spec.ExcludeIPs)); err != nil {
			return AutoPoolResize{}, fmt.Errorf("%w %q: spec.excludeIPs: %v", ErrInvalidPool, in.Pool.Name, err)
		}
		// Addresses of another network would never count towards the pool's size.
		if prefix, err := ip.ParseCanonicalCIDR(string(in.Subnet.Spec.Subnet)); err == nil && prefix != pool.Subnet() {
			return AutoPoolResize{}, fmt.Errorf("%w %q: spec.subnet %s is not %s of SpiderSubnet %q", ErrInvalidPool, in.Pool.Name, pool.Subnet(), prefix, in.Subnet.Name)
		}
	}
	size := ip.CountFromUint64(uint64(want))
	have := pool.total.Count()
	out := AutoPoolResize{IPs: current}
	switch c := have.Cmp(size); {
	case c < 0:
		free, err := SubnetFree(in.Subnet, in.Pools, in.Reserved)
		if err != nil {
			return AutoPoolResize{}, err
		}
		// Addresses the pool lists already, or excludes, are no use to it.
		free = free.Subtract(current).Subtract(exclude)
		need := size.Sub(have)
		if free.Count().Cmp(need) < 0 {
			n, _ := need.Uint64() // below want
			return AutoPoolResize{}, &SubnetExhaustedError{Subnet: in.Subnet.Name, Want: want, Need: int64(n), Free: free.Count().Int64Saturating()}
		}
		out.Added = lowest(free, need)
		u, err := current.Union(out.Added)
		if err != nil {
			return AutoPoolResize{}, fmt.Errorf("%w: spec.ips of the other family than SpiderSubnet %q: %v", ErrInvalidPool, in.Subnet.Name, err)
		}
		out.IPs = u
	case c > 0:
		extra := have.Sub(size)
		unheld := pool.total.Subtract(pool.held).Subtract(in.Held)
		first := lowest(unheld.Intersect(in.Reserved), extra)
		rest := highest(unheld.Subtract(first), extra.Sub(first.Count()))
		out.Removed, _ = first.Union(rest) // both of the pool's family
		out.Kept = extra.Sub(out.Removed.Count()).Int64Saturating()
		out.IPs = current.Subtract(out.Removed)
	}
	return out, nil
}

// lowest returns the n lowest addresses of s (all of s when it has no more).
func lowest(s ip.Set, n ip.Count) ip.Set {
	if n.IsZero() {
		return ip.Set{}
	}
	if s.Count().Cmp(n) <= 0 {
		return s
	}
	first, _ := s.Nth(ip.Count{})
	last, _ := s.Nth(n.Sub(ip.CountFromUint64(1)))
	return s.Intersect(mustSet([]ip.Range{{From: first, To: last}}))
}

// highest returns the n highest addresses of s (all of s when it has no more).
func highest(s ip.Set, n ip.Count) ip.Set {
	if n.IsZero() {
		return ip.Set{}
	}
	if s.Count().Cmp(n) <= 0 {
		return s
	}
	first, _ := s.Nth(s.Count().Sub(n))
	last, _ := s.Nth(s.Count().Sub(ip.CountFromUint64(1)))
	return s.Intersect(mustSet([]ip.Range{{From: first, To: last}}))
}
