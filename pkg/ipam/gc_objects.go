package ipam

import (
	"errors"
	"fmt"
	"net/netip"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// GCEndpointOf reads what GC needs from a SpiderEndpoint: its metadata for the
// deletion's preconditions, the pod instance, and each address with the owner the agent
// recorded it under (pod UID, container ID, interface). StatefulSet and ReclaimPolicy
// are left for the caller. An address that does not parse is left out and reported in
// the error; the rest of the result is usable (a record of the endpoint's pod UID is
// decided with the endpoint whether or not the endpoint lists it).
func GCEndpointOf(se *v2beta1.SpiderEndpoint) (GCEndpoint, error) {
	cur := se.Status.Current
	e := GCEndpoint{
		Namespace: se.Namespace, Name: se.Name,
		ObjectUID: string(se.UID), ResourceVersion: se.ResourceVersion,
		PodUID: cur.UID, Node: cur.Node,
	}
	var ctr string
	if cur.Orbweaver != nil {
		ctr = cur.Orbweaver.ContainerID
	}
	var errs []error
	for _, nic := range cur.IPs {
		owner := records.OwnerOf(cur.UID, ctr, nic.NIC)
		for _, f := range []struct{ cidr, pool *string }{{nic.IPv4, nic.IPv4Pool}, {nic.IPv6, nic.IPv6Pool}} {
			if f.cidr == nil || f.pool == nil {
				continue
			}
			p, err := netip.ParsePrefix(*f.cidr)
			if err != nil {
				errs = append(errs, fmt.Errorf("SpiderEndpoint %s interface %s: %w", e.Key(), nic.NIC, err))
				continue
			}
			e.Addresses = append(e.Addresses, GCAddress{NIC: nic.NIC, Pool: *f.pool, Addr: p.Addr(), Owner: owner})
		}
	}
	return e, errors.Join(errs...)
}

// GCPoolOf decodes a SpiderIPPool for GC: its records and its reclaim policy.
// SpiderReservedIPs do not matter to GC (they narrow what is handed out, not who holds
// what).
func GCPoolOf(sp *v2beta1.SpiderIPPool) (GCPool, error) {
	p, err := NewPool(sp, ip.Set{})
	if err != nil {
		return GCPool{}, err
	}
	gp := GCPool{Pool: p}
	if o := sp.Spec.Orbweaver; o != nil && o.ReclaimPolicy != nil {
		rp := *o.ReclaimPolicy
		gp.ReclaimPolicy = &rp
	}
	return gp, nil
}
