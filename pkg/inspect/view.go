package inspect

import (
	"net/netip"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// view is one Snapshot indexed once, so that a question about one address and one
// about every address of every pool cost what they look at.
type view struct {
	pools  []*poolView // in the snapshot's order
	byName map[string]*poolView
	// pods by records.PodKey of their UID: how records and endpoints name them.
	pods map[uint64]*corev1.Pod
	// nodes that exist.
	nodes map[string]bool
	// nodeOf names the node of a reserve owner (records.ReserveOwner): every node that
	// exists, and those pods, endpoints and blocks still name.
	nodeOf map[records.Owner]string
	// sets are the StatefulSets by namespace/name.
	sets map[string]*appsv1.StatefulSet
	// strays are endpoint addresses no pool can hold: the pool they name does not
	// exist, or its subnet does not contain them.
	strays map[netip.Addr][]stray
}

// stray is an endpoint naming an address in a pool that cannot hold it.
type stray struct {
	pool string
	se   *v2beta1.SpiderEndpoint
}

// poolView is one pool, decoded.
type poolView struct {
	sp   *v2beta1.SpiderIPPool
	mode string
	// subnetErr is set when spec.subnet or spec.ips do not parse; nothing else is set.
	subnetErr error
	subnet    netip.Prefix
	// inIPs is spec.ips (in the subnet); usable is inIPs minus spec.excludeIPs; reserved
	// is what SpiderReservedIPs reserve of the pool's family.
	inIPs, usable, reserved ip.Set
	eips                    map[netip.Addr]v2beta1.EIPBinding
	// foreign are SpiderPool's records (status.allocatedIPs), not imported yet.
	foreign    map[netip.Addr][]ipam.ForeignRecord
	foreignErr error
	// records are status.orbweaver.records.
	records    map[netip.Addr]records.Owner
	recordsErr error
	// endpoints name addresses of the pool (inside its subnet).
	endpoints map[netip.Addr][]*v2beta1.SpiderEndpoint
	// grants are the IPBlocks' grants: address to node.
	grants map[netip.Addr]string
	// addrs is every address something above names, ascending.
	addrs []netip.Addr
}

func newView(s Snapshot) *view {
	v := &view{
		byName: map[string]*poolView{}, pods: map[uint64]*corev1.Pod{}, nodes: map[string]bool{},
		nodeOf: map[records.Owner]string{}, sets: map[string]*appsv1.StatefulSet{}, strays: map[netip.Addr][]stray{},
	}
	named := func(node string) {
		if node != "" {
			v.nodeOf[records.ReserveOwner(node)] = node
		}
	}
	for i := range s.Pods {
		v.pods[records.PodKey(string(s.Pods[i].UID))] = &s.Pods[i]
		named(s.Pods[i].Spec.NodeName)
	}
	for i := range s.Nodes {
		v.nodes[s.Nodes[i].Name] = true
		named(s.Nodes[i].Name)
	}
	for i := range s.StatefulSets {
		v.sets[s.StatefulSets[i].Namespace+"/"+s.StatefulSets[i].Name] = &s.StatefulSets[i]
	}
	for i := range s.Pools {
		pv := newPoolView(&s.Pools[i], s.Reserved)
		v.pools = append(v.pools, pv)
		v.byName[pv.sp.Name] = pv
	}
	for i := range s.Endpoints {
		se := &s.Endpoints[i]
		named(se.Status.Current.Node)
		for _, pool := range ipam.EndpointPools(se) {
			pv := v.byName[pool]
			for _, a := range ipam.EndpointAddrs(se, pool) {
				switch {
				case pv == nil || pv.subnetErr != nil || !pv.subnet.Contains(a):
					if !slices.ContainsFunc(v.strays[a], func(st stray) bool { return st.se == se && st.pool == pool }) {
						v.strays[a] = append(v.strays[a], stray{pool, se})
					}
				case !slices.Contains(pv.endpoints[a], se):
					pv.endpoints[a] = append(pv.endpoints[a], se)
				}
			}
		}
	}
	for i := range s.Blocks {
		b := &s.Blocks[i]
		pv := v.byName[b.Spec.Pool]
		if pv == nil || pv.subnetErr != nil {
			continue
		}
		g, err := ipam.GrantBlockOf(pv.subnet, b)
		if err != nil {
			continue // the grant controller reports it (an event on the pool)
		}
		for a, n := range g.Owners {
			pv.grants[a] = n
			named(n)
		}
	}
	for _, pv := range v.pools {
		pv.collectAddrs()
	}
	return v
}

// newPoolView decodes a pool; what does not decode is kept as an error beside the rest.
func newPoolView(sp *v2beta1.SpiderIPPool, reserved []v2beta1.SpiderReservedIP) *poolView {
	pv := &poolView{sp: sp, mode: string(v2beta1.AllocationRecords),
		eips: map[netip.Addr]v2beta1.EIPBinding{}, foreign: map[netip.Addr][]ipam.ForeignRecord{},
		records: map[netip.Addr]records.Owner{}, endpoints: map[netip.Addr][]*v2beta1.SpiderEndpoint{},
		grants: map[netip.Addr]string{}}
	if sp.GrantsMode() {
		pv.mode = string(v2beta1.AllocationGrants)
	}
	subnet, err := ip.ParseCanonicalCIDR(string(sp.Spec.Subnet))
	if err != nil {
		pv.subnetErr = err
		return pv
	}
	pv.subnet = subnet
	if pv.inIPs, err = ipam.EffectiveAddresses(subnet, sp.Spec.IPs, nil); err == nil {
		pv.usable, err = ipam.EffectiveAddresses(subnet, sp.Spec.IPs, sp.Spec.ExcludeIPs)
	}
	if err != nil {
		pv.subnetErr = err
		return pv
	}
	family, _ := ipam.PoolFamily(sp)
	pv.reserved = ipam.ReservedAddresses(reserved, family)
	if st := sp.Status.Orbweaver; st != nil {
		for _, e := range st.EIPs {
			if a, err := netip.ParseAddr(e.IP); err == nil {
				pv.eips[a] = e
			}
		}
		if len(st.Records) > 0 {
			recs, err := records.Decode(subnet, st.Records)
			if err != nil {
				pv.recordsErr = err
			}
			for _, r := range recs {
				pv.records[r.IP] = r.Owner
			}
		}
	}
	if sp.Status.AllocatedIPs != nil {
		foreign, err := ipam.ParseAllocatedIPs(*sp.Status.AllocatedIPs, subnet, pv.inIPs)
		pv.foreignErr = err
		for _, f := range foreign {
			pv.foreign[f.IP] = append(pv.foreign[f.IP], f)
		}
	}
	return pv
}

func (pv *poolView) collectAddrs() {
	seen := map[netip.Addr]bool{}
	add := func(a netip.Addr) {
		if !seen[a] {
			seen[a] = true
			pv.addrs = append(pv.addrs, a)
		}
	}
	for a := range pv.foreign {
		add(a)
	}
	for a := range pv.endpoints {
		add(a)
	}
	for a := range pv.records {
		add(a)
	}
	for a := range pv.grants {
		add(a)
	}
	slices.SortFunc(pv.addrs, netip.Addr.Compare)
}

// strayAddrs returns the stray addresses, ascending.
func (v *view) strayAddrs() []netip.Addr {
	out := make([]netip.Addr, 0, len(v.strays))
	for a := range v.strays {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
