package ipam

import (
	"net/netip"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// TestWriteStatusKeepsConditions: an agent's write (records and counts) keeps the
// pool controller's conditions and the EIP controller's bindings, whether records
// remain or not; the orbweaver block goes only when it would be empty.
func TestWriteStatusKeepsConditions(t *testing.T) {
	exhausted := metav1.Condition{
		Type: v2beta1.IPPoolExhaustedCondition, Status: metav1.ConditionTrue,
		Reason: v2beta1.IPPoolNoFreeAddressReason, Message: "no free address",
		LastTransitionTime: metav1.Unix(1700000000, 0), ObservedGeneration: 3,
	}
	tests := []struct {
		name       string
		conditions []metav1.Condition   // in sp before the write
		eips       []v2beta1.EIPBinding // in sp before the write
		mode       v2beta1.AllocationMode
		allocate   int  // records after the write
		wantBlock  bool // status.orbweaver present after the write
	}{
		{name: "records and conditions", conditions: []metav1.Condition{exhausted}, allocate: 2, wantBlock: true},
		{name: "conditions, no records left", conditions: []metav1.Condition{exhausted}, allocate: 0, wantBlock: true},
		{name: "records, no conditions", allocate: 1, wantBlock: true},
		{name: "neither", allocate: 0, wantBlock: false},
		{name: "EIP bindings, no records left", allocate: 0, wantBlock: true,
			eips: []v2beta1.EIPBinding{{IP: "10.0.0.10", Phase: v2beta1.EIPAllocated, AllocationID: "eip-1", PublicIP: "203.0.113.1"}}},
		// A writer of records never turns a pool back from Grants mode.
		{name: "the allocation mode, no records left", mode: v2beta1.AllocationGrants, allocate: 0, wantBlock: true},
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

			if got := *sp.Status.AllocatedIPCount; got != int64(tt.allocate) {
				t.Fatalf("allocatedIPCount = %d, want %d", got, tt.allocate)
			}
			if *sp.Status.TotalIPCount != 2 {
				t.Fatalf("totalIPCount = %d, want 2", *sp.Status.TotalIPCount)
			}
			st := sp.Status.Orbweaver
			if (st != nil) != tt.wantBlock {
				t.Fatalf("status.orbweaver = %+v, want present %t", st, tt.wantBlock)
			}
			if st == nil {
				return
			}
			if !reflect.DeepEqual(st.Conditions, tt.conditions) {
				t.Fatalf("conditions = %+v, want %+v", st.Conditions, tt.conditions)
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
