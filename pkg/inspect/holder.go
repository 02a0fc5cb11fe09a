// Package inspect answers operators' questions about pools from what the API server
// holds, for `kubectl orbweaver ipam ...`: who holds an address (WhoHolds), what each
// pool holds (Summarize), what is wrong (Check), and how to release an address whose
// pod is gone (PlanRelease, then Release, the one part that writes).
//
// Every answer comes from one Snapshot and one classification of an address in a
// pool (classify, rules.go): the notes WhoHolds prints, the counts Summarize adds up,
// the problems Check reports and the holders PlanRelease frees are the same facts.
package inspect

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
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

// Sources: the object that says what a Holding says.
const (
	// SourceEndpoint: the pod's SpiderEndpoint names the address.
	SourceEndpoint = "SpiderEndpoint"
	// SourceRecords: the pool's status.orbweaver.records record it for a pod.
	SourceRecords = "Records"
	// SourceReserve: the pool's records hold it in a node's reserve.
	SourceReserve = "Reserve"
	// SourceGrant: an IPBlock grants it to a node.
	SourceGrant = "Grant"
	// SourceAllocatedIPs: SpiderPool's status.allocatedIPs.
	SourceAllocatedIPs = "AllocatedIPs"
)

// Snapshot is what every answer is read from.
type Snapshot struct {
	Pools     []v2beta1.SpiderIPPool
	Endpoints []v2beta1.SpiderEndpoint
	Blocks    []ipamv1.IPBlock
	Pods      []corev1.Pod
	Nodes     []corev1.Node
	Reserved  []v2beta1.SpiderReservedIP
	// StatefulSets say whether an endpoint kept for a StatefulSet pod that is gone is
	// still wanted (GC keeps it) or not (GC frees it per the reclaim policy).
	StatefulSets []appsv1.StatefulSet
}

// Holding is what one pool says of an address.
type Holding struct {
	Pool  string `json:"pool"`
	Mode  string `json:"mode"`
	State string `json:"state"`
	// Source is the object that says so (SourceEndpoint, SourceRecords, ...); empty for
	// Free and Excluded.
	Source string `json:"source,omitempty"`
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
	// outside the pool's usable addresses, a pod that is gone and what GC does about it.
	Notes []string `json:"notes,omitempty"`
	// Problems are the kinds of what is wrong, as `ipam check` reports them; the notes
	// say it in words.
	Problems []ProblemKind `json:"problems,omitempty"`

	// What Check and PlanRelease need besides (rules.go fills them).
	podKey   uint64                  // records.PodKey of the pod instance; 0 for none
	owner    records.Owner           // the record's owner, when the pool's records hold it
	endpoint *v2beta1.SpiderEndpoint // the endpoint that names it (SourceEndpoint)
	podState string                  // the pod instance, in words: "gone", "Succeeded", "on node n1", ...
	live     bool                    // the pod instance exists and has not finished
	kept     string                  // why GC keeps it though the pod is gone (a StatefulSet wants it)
	gcFrees  bool                    // for a Leak: GC frees it by itself
	pool     bool                    // about the whole pool (records that do not decode), not this address
	findings []finding               // the problems with their notes
}

// Read lists what the answers need.
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
		{"StatefulSets", &appsv1.StatefulSetList{}, func(l client.ObjectList) { s.StatefulSets = l.(*appsv1.StatefulSetList).Items }},
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
// whose spec.ips does not contain a appears only when something holds a there anyway;
// an endpoint that names a in a pool that does not exist, or outside its pool's subnet,
// appears under the pool it names.
func WhoHolds(a netip.Addr, s Snapshot) []Holding {
	v := newView(s)
	var out []Holding
	for _, pv := range v.pools {
		if pv.subnetErr == nil && pv.subnet.Contains(a) {
			out = append(out, v.classify(pv, a)...)
		}
	}
	return append(out, v.strayHoldings(a, "")...)
}
