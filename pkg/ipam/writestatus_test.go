package ipam

import (
	"net/netip"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// TestWriteStatusKeepsConditions: an agent's write (records and counts) keeps the
// pool controller's conditions (status.conditions and status.orbweaver.conditions) and
// the EIP controller's bindings, whether records remain or not. A pool in Grants mode
// keeps the counts it had: they are the pool controller's.
func TestWriteStatusKeepsConditions(t *testing.T) {
	exhausted := metav1.Condition{
		Type: v2beta1.IPPoolExhaustedCondition, Status: metav1.ConditionTrue,
		Reason: v2beta1.IPPoolNoFreeAddressReason, Message: "no free address",
		LastTransitionTime: metav1.Unix(1700000000, 0), ObservedGeneration: 3,
	}
	ready := metav1.Condition{
		Type: v2beta1.IPPoolReadyCondition, Status: metav1.ConditionTrue,
		Reason: v2beta1.IPPoolServingReason, Message: "agents allocate from the pool",
		LastTransitionTime: metav1.Unix(1700000000, 0), ObservedGeneration: 3,
	}
	tests := []struct {
		name       string
		conditions []metav1.Condition   // in sp before the write
		eips       []v2beta1.EIPBinding // in sp before the write
		mode       v2beta1.AllocationMode
		allocate   int // records after the write
		// wantAllocated and wantFree are the counts after the write.
		wantAllocated, wantFree int64
	}{
		{name: "records and conditions", conditions: []metav1.Condition{exhausted}, allocate: 2, wantAllocated: 2, wantFree: 0},
		{name: "conditions, no records left", conditions: []metav1.Condition{exhausted}, allocate: 0, wantAllocated: 0, wantFree: 2},
		{name: "records, no conditions", allocate: 1, wantAllocated: 1, wantFree: 1},
		{name: "neither", allocate: 0, wantAllocated: 0, wantFree: 2},
		{name: "EIP bindings, no records left", allocate: 0, wantAllocated: 0, wantFree: 2,
			eips: []v2beta1.EIPBinding{{IP: "10.0.0.10", Phase: v2beta1.EIPAllocated, AllocationID: "eip-1", PublicIP: "203.0.113.1"}}},
		// A writer of records never turns a pool back from Grants mode, and leaves its
		// counts (those of the first write here) to the pool controller.
		{name: "the allocation mode, no records left", mode: v2beta1.AllocationGrants, allocate: 0, wantAllocated: 1, wantFree: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := spec("p", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.11"}, nil)
			// The pool as an agent reads it: an earlier allocation plus the controller's
			// conditions.
			p := mustPool(t, sp)
			p, _, err := p.Allocate(owners(0, 1), netip.Addr{})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.WriteStatus(sp); err != nil {
				t.Fatal(err)
			}
			if tt.conditions != nil {
				sp.Status.Orbweaver.Conditions = append([]metav1.Condition(nil), tt.conditions...)
			}
			sp.Status.Conditions = []metav1.Condition{ready}
			sp.Status.Orbweaver.EIPs = append([]v2beta1.EIPBinding(nil), tt.eips...)
			sp.Status.Orbweaver.Allocation = tt.mode

			p = mustPool(t, sp)
			p, _ = p.ReleaseOwner(owner(0))
			if tt.allocate > 0 {
				if p, _, err = p.Allocate(owners(1, tt.allocate), netip.Addr{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.WriteStatus(sp); err != nil {
				t.Fatal(err)
			}

			if got := *sp.Status.AllocatedIPCount; got != tt.wantAllocated {
				t.Fatalf("allocatedIPCount = %d, want %d", got, tt.wantAllocated)
			}
			if *sp.Status.TotalIPCount != 2 {
				t.Fatalf("totalIPCount = %d, want 2", *sp.Status.TotalIPCount)
			}
			st := sp.Status.Orbweaver
			if st == nil {
				t.Fatal("status.orbweaver is gone: it holds the counts")
			}
			if got := ptr.Deref(st.FreeIPCount, -1); got != tt.wantFree {
				t.Fatalf("freeIPCount = %d, want %d", got, tt.wantFree)
			}
			if got := ptr.Deref(st.SpareIPCount, -1); got != 0 {
				t.Fatalf("spareIPCount = %d, want 0 (no node reserve)", got)
			}
			if !reflect.DeepEqual(st.Conditions, tt.conditions) {
				t.Fatalf("conditions = %+v, want %+v", st.Conditions, tt.conditions)
			}
			if !reflect.DeepEqual(sp.Status.Conditions, []metav1.Condition{ready}) {
				t.Fatalf("status.conditions = %+v, want Ready kept", sp.Status.Conditions)
			}
			if len(st.EIPs) != len(tt.eips) || len(tt.eips) > 0 && !reflect.DeepEqual(st.EIPs, tt.eips) {
				t.Fatalf("eips = %+v, want %+v", st.EIPs, tt.eips)
			}
			if st.Allocation != tt.mode {
				t.Fatalf("allocation = %q, want %q", st.Allocation, tt.mode)
			}
			if (len(st.Records) > 0) != (tt.allocate > 0) {
				t.Fatalf("records = %d bytes with %d allocations", len(st.Records), tt.allocate)
			}
			if back := mustPool(t, sp); back.AllocatedCount() != int64(tt.allocate) {
				t.Fatalf("records decode to %d allocations, want %d", back.AllocatedCount(), tt.allocate)
			}
		})
	}
}

// TestWriteStatusCounts: allocatedIPCount counts the addresses pods hold, spareIPCount
// those node agents' reserves hold, freeIPCount what neither holds nor a
// SpiderReservedIP reserves; together with the reserved ones they make totalIPCount. A
// Grants pool's counts are not the records' (the pool controller counts endpoints).
func TestWriteStatusCounts(t *testing.T) {
	tests := []struct {
		name     string
		reserved []string // SpiderReservedIP addresses
		pods     int      // records of pods
		spares   int      // records of node-a's reserve
		mode     v2beta1.AllocationMode
		// before, when set, is every count before the write; a Grants pool keeps it.
		before                        *int64
		wantPods, wantSpare, wantFree int64
		wantTotal                     int64
	}{
		{name: "empty", wantFree: 10, wantTotal: 10},
		{name: "pods only", pods: 3, wantPods: 3, wantFree: 7, wantTotal: 10},
		{name: "spares only", spares: 4, wantSpare: 4, wantFree: 6, wantTotal: 10},
		{name: "pods and spares", pods: 3, spares: 4, wantPods: 3, wantSpare: 4, wantFree: 3, wantTotal: 10},
		{name: "reserved addresses are neither held nor free", reserved: []string{"10.0.0.18-10.0.0.19"},
			pods: 2, spares: 2, wantPods: 2, wantSpare: 2, wantFree: 4, wantTotal: 10}, // 2 reserved
		{name: "full", pods: 6, spares: 4, wantPods: 6, wantSpare: 4, wantFree: 0, wantTotal: 10},
		{name: "Grants mode: leftover records leave the controller's counts", mode: v2beta1.AllocationGrants,
			pods: 2, spares: 3, before: ptr.To[int64](9), wantPods: 9, wantSpare: 9, wantFree: 9, wantTotal: 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := spec("p", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.19"}, nil)
			if tt.before != nil {
				sp.Status.AllocatedIPCount, sp.Status.TotalIPCount = tt.before, tt.before
				sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{SpareIPCount: tt.before, FreeIPCount: tt.before}
			}
			if tt.mode != "" {
				if sp.Status.Orbweaver == nil {
					sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{}
				}
				sp.Status.Orbweaver.Allocation = tt.mode
			}
			p := mustPool(t, sp, tt.reserved...)
			p, _, err := p.Allocate(owners(0, tt.pods), netip.Addr{})
			if err != nil {
				t.Fatal(err)
			}
			if tt.spares > 0 {
				var got []netip.Addr
				if p, got = p.Reserve(records.ReserveOwner("node-a"), tt.spares, netip.Addr{}); len(got) != tt.spares {
					t.Fatalf("reserved %d spares, want %d", len(got), tt.spares)
				}
			}
			if p.PodCount() != int64(tt.pods) || p.SpareCount() != int64(tt.spares) || p.AllocatedCount() != int64(tt.pods+tt.spares) {
				t.Fatalf("PodCount/SpareCount/AllocatedCount = %d/%d/%d, want %d/%d/%d",
					p.PodCount(), p.SpareCount(), p.AllocatedCount(), tt.pods, tt.spares, tt.pods+tt.spares)
			}
			if err := p.WriteStatus(sp); err != nil {
				t.Fatal(err)
			}
			st := sp.Status
			got := [4]int64{ptr.Deref(st.AllocatedIPCount, -1), ptr.Deref(st.Orbweaver.SpareIPCount, -1), ptr.Deref(st.Orbweaver.FreeIPCount, -1), ptr.Deref(st.TotalIPCount, -1)}
			want := [4]int64{tt.wantPods, tt.wantSpare, tt.wantFree, tt.wantTotal}
			if got != want {
				t.Fatalf("allocated/spare/free/total = %v, want %v", got, want)
			}
			if back := mustPool(t, sp, tt.reserved...); back.AllocatedCount() != int64(tt.pods+tt.spares) {
				t.Fatalf("records decode to %d allocations, want %d", back.AllocatedCount(), tt.pods+tt.spares)
			}
		})
	}
}
