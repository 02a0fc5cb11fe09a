package gc

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// TestGCImportedRecords: records imported from SpiderPool (owner: the pod UID and
// interface, no sandbox) are collected like orbweaver's own. A migrated pod that
// vanished loses its address and the endpoint SpiderPool wrote; one whose endpoint
// SpiderPool never wrote loses its address too; a live migrated pod keeps its address.
func TestGCImportedRecords(t *testing.T) {
	h := startGC(t, nil)
	node, pool := h.node(true), h.pool("")
	imported := func(pod *corev1.Pod) ipam.ForeignRecord {
		return ipam.ForeignRecord{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID)}
	}
	gone, noEndpoint, live := h.pod("gone", node, nil), h.pod("no-endpoint", node, nil), h.pod("live", node, nil)
	goneAddr := h.allocate(pool, ipam.ForeignOwner(imported(gone), "", "eth0"))
	noEndpointAddr := h.allocate(pool, ipam.ForeignOwner(imported(noEndpoint), "", "eth0"))
	liveAddr := h.allocate(pool, ipam.ForeignOwner(imported(live), "", "eth0"))
	endpoint := func(pod *corev1.Pod, a netip.Addr) *v2beta1.SpiderEndpoint {
		se := &v2beta1.SpiderEndpoint{ // as SpiderPool writes it: no sandbox
			ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}}},
			Status: v2beta1.WorkloadEndpointStatus{
				Current: v2beta1.PodIPAllocation{UID: string(pod.UID), Node: node,
					IPs: []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv4: ptr.To(netip.PrefixFrom(a, 24).String()), IPv4Pool: ptr.To(pool)}}},
				OwnerControllerType: "Pod", OwnerControllerName: pod.Name,
			},
		}
		h.create(se)
		return se
	}
	goneSE, liveSE := endpoint(gone, goneAddr), endpoint(live, liveAddr)
	h.passes(2)
	if !h.holds(pool, goneAddr, ipam.ForeignOwner(imported(gone), "", "eth0")) || !h.holds(pool, noEndpointAddr, ipam.ForeignOwner(imported(noEndpoint), "", "eth0")) {
		t.Fatal("a live migrated pod lost its address")
	}

	h.forceDelete(gone)
	h.forceDelete(noEndpoint)
	testenv.WaitFor(t, "the vanished migrated pods' addresses released", func() (bool, error) {
		_, a := h.holder(pool, goneAddr)
		_, b := h.holder(pool, noEndpointAddr)
		return !a && !b && !h.endpointExists(goneSE), nil
	})
	h.passes(2)
	if !h.holds(pool, liveAddr, ipam.ForeignOwner(imported(live), "", "eth0")) || !h.endpointExists(liveSE) {
		t.Fatal("the live migrated pod lost its address or endpoint")
	}
}
