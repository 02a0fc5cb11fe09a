// Package inspect answers operators' questions about pools from what the API server
// holds, for `kubectl orbweaver`: who holds an address. It reads; it never writes.
package inspect

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// States of an address in a pool.
const (
	// StateHeld: a pod holds it (its SpiderEndpoint names it, or the pool's records do).
	StateHeld = "Held"
	// StateSpare: a node holds it for its next pods (a records-mode reserve, or a node
	// grant no pod holds yet).
	StateSpare = "Spare"
	// StateSpiderPool: SpiderPool's record, not imported yet (status.allocatedIPs).
	StateSpiderPool = "SpiderPoolRecord"
	// StateFree: nothing holds it; the next allocation may take it.
	StateFree = "Free"
	// StateExcluded: in spec.ips but also in spec.excludeIPs, or a SpiderReservedIP.
	StateExcluded = "Excluded"
)

// Snapshot is what the answer is read from.
type Snapshot struct {
	Pools     []v2beta1.SpiderIPPool
	Endpoints []v2beta1.SpiderEndpoint
	Blocks    []ipamv1.IPBlock
	Pods      []corev1.Pod
	Nodes     []corev1.Node
	Reserved  []v2beta1.SpiderReservedIP
}

// Holding is what one pool says of an address.
type Holding struct {
	Pool  string `json:"pool"`
	Mode  string `json:"mode"`
	State string `json:"state"`
	// Namespace, Pod and PodUID name the pod that holds it (Held, SpiderPoolRecord).
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	PodUID    string `json:"podUID,omitempty"`
	// Node is the pod's node, or the node a spare belongs to.
	Node      string `json:"node,omitempty"`
	Interface string `json:"interface,omitempty"`
	// ContainerID is the sandbox the endpoint records ("" for one SpiderPool wrote).
	ContainerID string `json:"containerID,omitempty"`
	// Since is when the pod's endpoint was created.
	Since *time.Time `json:"since,omitempty"`
	// EIP is the address's elastic public IP and its phase, when the pool has EIPs.
	EIP      string `json:"eip,omitempty"`
	EIPPhase string `json:"eipPhase,omitempty"`
	// Notes say what is odd: two holders, a record without its endpoint, an address held
	// outside the pool's usable addresses.
	Notes []string `json:"notes,omitempty"`
}

// Read lists what WhoHolds needs.
func Read(ctx context.Context, c client.Reader) (Snapshot, error) {
	var s Snapshot
	lists := []struct {
		what string
		list client.ObjectList
		into func(client.ObjectList)
	}{
		{"SpiderIPPools", &v2beta1.SpiderIPPoolList{}, func(l client.ObjectList) { s.Pools = l.(*v2beta1.SpiderIPPoolList).Items }},
		{"SpiderEndpoints", &v2beta1.SpiderEndpointList{}, func(l client.ObjectList) { s.Endpoints = l.(*v2beta1.SpiderEndpointList).Items }},
		{"IPBlocks", &ipamv1.IPBlockList{}, func(l client.ObjectList) { s.Blocks = l.(*ipamv1.IPBlockList).Items }},
		{"pods", &corev1.PodList{}, func(l client.ObjectList) { s.Pods = l.(*corev1.PodList).Items }},
		{"nodes", &corev1.NodeList{}, func(l client.ObjectList) { s.Nodes = l.(*corev1.NodeList).Items }},
		{"SpiderReservedIPs", &v2beta1.SpiderReservedIPList{}, func(l client.ObjectList) { s.Reserved = l.(*v2beta1.SpiderReservedIPList).Items }},
	}
	for _, l := range lists {
		if err := c.List(ctx, l.list); err != nil {
			return s, fmt.Errorf("list %s: %w", l.what, err)
		}
		l.into(l.list)
	}
	return s, nil
}

// WhoHolds says, for every pool whose subnet contains a, what holds a in it. A pool
// whose spec.ips does not contain a appears only when something holds a there anyway.
func WhoHolds(a netip.Addr, s Snapshot) []Holding {
	var out []Holding
	for i := range s.Pools {
		sp := &s.Pools[i]
		subnet, err := ip.ParseCanonicalCIDR(string(sp.Spec.Subnet))
		if err != nil || !subnet.Contains(a) {
			continue
		}
		h := poolHolding(a, sp, subnet, s)
		out = append(out, h...)
	}
	return out
}

// poolHolding is WhoHolds for one pool.
func poolHolding(a netip.Addr, sp *v2beta1.SpiderIPPool, subnet netip.Prefix, s Snapshot) []Holding {
	mode := string(v2beta1.AllocationRecords)
	if sp.GrantsMode() {
		mode = string(v2beta1.AllocationGrants)
	}
	base := Holding{Pool: sp.Name, Mode: mode}
	if st := sp.Status.Orbweaver; st != nil {
		for _, e := range st.EIPs {
			if e.IP == a.String() {
				base.EIP, base.EIPPhase = e.PublicIP, string(e.Phase)
			}
		}
	}
	inIPs, _ := ipam.EffectiveAddresses(subnet, sp.Spec.IPs, nil)
	usable, _ := ipam.EffectiveAddresses(subnet, sp.Spec.IPs, sp.Spec.ExcludeIPs)
	reserved := ipam.ReservedAddresses(s.Reserved, ipam.FamilyOf(a.Is4())).Contains(a)

	var out []Holding
	// SpiderPool's own records, not imported yet.
	if sp.Status.AllocatedIPs != nil {
		foreign, err := ipam.ParseAllocatedIPs(*sp.Status.AllocatedIPs, subnet, inIPs)
		if err != nil {
			h := base
			h.State, h.Notes = StateSpiderPool, []string{err.Error()}
			out = append(out, h)
		}
		for _, f := range foreign {
			if f.IP == a {
				h := base
				h.State, h.Namespace, h.Pod, h.PodUID = StateSpiderPool, f.Namespace, f.Name, f.UID
				h.Notes = []string{"SpiderPool's record, not imported yet: see the pool's SpiderPoolRecordsImported condition"}
				out = append(out, h)
			}
		}
	}
	// The pods' endpoints.
	for i := range s.Endpoints {
		se := &s.Endpoints[i]
		if !slices.Contains(ipam.EndpointAddrs(se, sp.Name), a) {
			continue
		}
		h := base
		h.State, h.Namespace, h.Pod, h.PodUID, h.Node = StateHeld, se.Namespace, se.Name, se.Status.Current.UID, se.Status.Current.Node
		h.Interface = ipam.EndpointInterface(se, sp.Name, a)
		if o := se.Status.Current.Orbweaver; o != nil {
			h.ContainerID = o.ContainerID
		}
		t := se.CreationTimestamp.Time
		h.Since = &t
		out = append(out, h)
	}
	held := len(out) > 0
	// The records (Records mode; in Grants mode only those not moved to grants yet).
	if st := sp.Status.Orbweaver; st != nil && len(st.Records) > 0 {
		if recs, err := records.Decode(subnet, st.Records); err != nil {
			h := base
			h.State, h.Notes = StateHeld, []string{"status.orbweaver.records do not decode: " + err.Error()}
			out = append(out, h)
		} else if j, ok := slices.BinarySearchFunc(recs, a, func(r records.Record, a netip.Addr) int { return r.IP.Compare(a) }); ok {
			out = recordHolding(out, base, recs[j].Owner, held, s)
			held = true
		}
	}
	// The node grants.
	if node, ok := grantedTo(a, sp, subnet, s.Blocks); ok {
		if !held {
			h := base
			h.State, h.Node = StateSpare, node
			h.Notes = []string{"granted to node " + node + ", which hands it to its next pod"}
			out = append(out, h)
		} else {
			for i := range out {
				if out[i].State == StateHeld && out[i].Node != "" && out[i].Node != node {
					out[i].Notes = append(out[i].Notes, fmt.Sprintf("granted to node %s, not the pod's node", node))
				}
			}
		}
	}
	switch {
	case len(out) == 0 && !inIPs.Contains(a):
		return nil // not the pool's, and nothing holds it there
	case len(out) == 0 && (!usable.Contains(a) || reserved):
		h := base
		h.State = StateExcluded
		if reserved {
			h.Notes = []string{"a SpiderReservedIP names it"}
		} else {
			h.Notes = []string{"in spec.excludeIPs"}
		}
		return []Holding{h}
	case len(out) == 0:
		h := base
		h.State = StateFree
		return []Holding{h}
	}
	pods := 0
	for _, h := range out {
		if h.State == StateHeld || h.State == StateSpiderPool {
			pods++
		}
	}
	for i := range out {
		if pods > 1 && (out[i].State == StateHeld || out[i].State == StateSpiderPool) {
			out[i].Notes = append(out[i].Notes, fmt.Sprintf("one of %d holders of the address", pods))
		}
		if !usable.Contains(a) || reserved {
			out[i].Notes = append(out[i].Notes, "held, though not a usable address of the pool (excluded or reserved since)")
		}
	}
	return out
}

// recordHolding adds what a record says: a node's reserve, or a pod (whose endpoint,
// when it has one, was added already).
func recordHolding(out []Holding, base Holding, o records.Owner, held bool, s Snapshot) []Holding {
	if o.IsReserve() {
		h := base
		h.State = StateSpare
		for i := range s.Nodes {
			if records.ReserveOwner(s.Nodes[i].Name) == o {
				h.Node = s.Nodes[i].Name
			}
		}
		h.Notes = []string{"in the reserve of node " + orUnknown(h.Node)}
		return append(out, h)
	}
	for i := range out {
		if out[i].State == StateHeld && records.PodKey(out[i].PodUID) == o.Pod {
			return out // the endpoint said it
		}
	}
	h := base
	h.State = StateHeld
	for i := range s.Pods {
		if records.PodKey(string(s.Pods[i].UID)) == o.Pod {
			p := &s.Pods[i]
			h.Namespace, h.Pod, h.PodUID, h.Node = p.Namespace, p.Name, string(p.UID), p.Spec.NodeName
		}
	}
	if h.Pod == "" {
		h.Notes = []string{"recorded for a pod that no longer exists: garbage collection frees it"}
	} else {
		h.Notes = []string{"recorded with no SpiderEndpoint (an ADD between its two writes, or a SpiderPool record imported without one)"}
	}
	if held {
		h.Notes = append(h.Notes, "the record's pod is not the endpoint's")
	}
	return append(out, h)
}

// grantedTo returns the node a is granted to in the pool's blocks.
func grantedTo(a netip.Addr, sp *v2beta1.SpiderIPPool, subnet netip.Prefix, blocks []ipamv1.IPBlock) (string, bool) {
	for i := range blocks {
		b := &blocks[i]
		if b.Spec.Pool != sp.Name {
			continue
		}
		g, err := ipam.GrantBlockOf(subnet, b)
		if err != nil || g.Start != ipam.BlockStart(subnet, a) {
			continue
		}
		n, ok := g.Owners[a]
		return n, ok
	}
	return "", false
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown: no Node matches)"
	}
	return s
}
