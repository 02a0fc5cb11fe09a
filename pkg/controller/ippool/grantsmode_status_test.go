package ippool

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// grantsPool is a pool named "p" in Grants mode.
func grantsPool(subnet string, ips ...v2beta1.IPOrRange) *v2beta1.SpiderIPPool {
	sp := newPool(subnet, ips, nil)
	sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Allocation: v2beta1.AllocationGrants}
	return sp
}

// endpoint is a pod's SpiderEndpoint holding addr (CIDR or bare) of pool on eth0.
func endpoint(name, pool, addr string) v2beta1.SpiderEndpoint {
	return v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Status: v2beta1.WorkloadEndpointStatus{Current: v2beta1.PodIPAllocation{
			UID: "uid-" + name, Node: "node-a",
			IPs: []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv4: ptr.To(addr), IPv4Pool: ptr.To(pool)}},
		}},
	}
}

// TestDesiredStatusGrants: a Grants pool's counts and conditions come from the addresses
// its endpoints hold; grants are not allocations, other pools' endpoints and addresses
// outside the subnet count for nothing, and an address two endpoints name counts once;
// spareIPCount is 0 (leftover records of node reserves, not moved to grants yet, are not
// counted either). The allocation mode survives the controller's status, and Ready is
// True unless the pool is deleted.
func TestDesiredStatusGrants(t *testing.T) {
	tests := []struct {
		name          string
		pool          *v2beta1.SpiderIPPool
		eps           []v2beta1.SpiderEndpoint
		reserved      []string
		blocked       bool
		wantAllocated int64
		wantFree      int64
		want          map[string]wantCond
		wantReady     string // the reason; Serving when empty
	}{
		{
			name: "no endpoint: nothing held, records not corrupt",
			pool: grantsPool("10.0.0.0/24", "10.0.0.10-10.0.0.19"),
			eps:  []v2beta1.SpiderEndpoint{endpoint("other", "q", "10.0.0.10/24")},
			// 10 free whatever is granted: the pool's blocks are not read.
			wantAllocated: 0, wantFree: 10,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition:    {status: metav1.ConditionFalse, reason: v2beta1.IPPoolFreeAddressesReason},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolRecordsDecodedReason, message: []string{"node grants"}},
			},
		},
		{
			name: "three endpoints, one address named twice, one outside the subnet",
			pool: grantsPool("10.0.0.0/24", "10.0.0.10-10.0.0.19"),
			eps: []v2beta1.SpiderEndpoint{
				endpoint("a", "p", "10.0.0.10/24"), endpoint("b", "p", "10.0.0.11"), endpoint("c", "p", "10.0.0.12/24"),
				endpoint("dup", "p", "10.0.0.12/24"), endpoint("stray", "p", "192.168.0.1/24"), endpoint("bad", "p", "not-an-ip"),
			},
			wantAllocated: 3, wantFree: 7,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition:    {status: metav1.ConditionFalse, reason: v2beta1.IPPoolFreeAddressesReason},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolRecordsDecodedReason},
			},
		},
		{
			name:          "full with a reservation",
			pool:          grantsPool("10.0.0.0/24", "10.0.0.10-10.0.0.12"),
			eps:           []v2beta1.SpiderEndpoint{endpoint("a", "p", "10.0.0.10/24"), endpoint("b", "p", "10.0.0.11/24")},
			reserved:      []string{"10.0.0.12"},
			wantAllocated: 2, wantFree: 0,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolNoFreeAddressReason,
					message: []string{"all 2 usable addresses are held by pods", "1 more is reserved"}},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolRecordsDecodedReason},
			},
		},
		{
			name:          "an endpoint holds an address the spec no longer has",
			pool:          grantsPool("10.0.0.0/24", "10.0.0.10-10.0.0.11"),
			eps:           []v2beta1.SpiderEndpoint{endpoint("a", "p", "10.0.0.10/24"), endpoint("b", "p", "10.0.0.50/24")},
			wantAllocated: 2, wantFree: 1,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition: {status: metav1.ConditionFalse, reason: v2beta1.IPPoolFreeAddressesReason},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionFalse, reason: v2beta1.IPPoolAddressesOutsidePoolReason,
					message: []string{"1 address SpiderEndpoints hold is outside", "10.0.0.50"}},
			},
		},
		{
			name: "leftover records: a pod's and a node reserve's",
			pool: func() *v2beta1.SpiderIPPool {
				sp := allocate(t, newPool("10.0.0.0/24", []v2beta1.IPOrRange{"10.0.0.10-10.0.0.19"}, nil), 1, 2)
				sp.Status.Orbweaver.Allocation = v2beta1.AllocationGrants
				return sp
			}(),
			eps:           []v2beta1.SpiderEndpoint{endpoint("a", "p", "10.0.0.15/24")},
			wantAllocated: 1, wantFree: 9,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition:    {status: metav1.ConditionFalse, reason: v2beta1.IPPoolFreeAddressesReason},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolRecordsDecodedReason},
			},
		},
		{
			name: "deleted while endpoints hold addresses",
			pool: func() *v2beta1.SpiderIPPool {
				sp := grantsPool("10.0.0.0/24", "10.0.0.10-10.0.0.19")
				sp.DeletionTimestamp = ptr.To(metav1.Unix(1700000000, 0))
				return sp
			}(),
			eps:           []v2beta1.SpiderEndpoint{endpoint("a", "p", "10.0.0.10/24"), endpoint("b", "p", "10.0.0.11/24")},
			blocked:       true,
			wantAllocated: 2, wantFree: 8,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition:    {status: metav1.ConditionFalse, reason: v2beta1.IPPoolFreeAddressesReason},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolRecordsDecodedReason},
				v2beta1.IPPoolDeletionBlockedCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolAddressesHeldReason,
					message: []string{"2 addresses are still held (2 held by 2 pods)"}},
			},
			wantReady: v2beta1.IPPoolDeletingReason,
		},
	}
	now := time.Date(2026, 12, 8, 12, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := observeGrants(tt.pool, set(t, tt.reserved...), tt.eps)
			if err != nil {
				t.Fatal(err)
			}
			if f.free != tt.wantFree || f.held() != (tt.wantAllocated > 0) {
				t.Errorf("free = %d, held %t; want %d, %t", f.free, f.held(), tt.wantFree, tt.wantAllocated > 0)
			}
			st := desiredStatus(tt.pool, f, tt.blocked, now)
			if got := ptr.Deref(st.AllocatedIPCount, -1); got != tt.wantAllocated {
				t.Errorf("allocatedIPCount = %d, want %d", got, tt.wantAllocated)
			}
			if got := ptr.Deref(st.Orbweaver.SpareIPCount, -1); got != 0 {
				t.Errorf("spareIPCount = %d, want 0: grants are not held", got)
			}
			if got := ptr.Deref(st.Orbweaver.FreeIPCount, -1); got != tt.wantFree {
				t.Errorf("freeIPCount = %d, want %d", got, tt.wantFree)
			}
			if st.Orbweaver.Allocation != v2beta1.AllocationGrants {
				t.Errorf("status.orbweaver allocation %q, want Grants", st.Orbweaver.Allocation)
			}
			if !bytes.Equal(st.Orbweaver.Records, tt.pool.Status.Orbweaver.Records) {
				t.Errorf("records changed")
			}
			ready := wantCond{status: metav1.ConditionTrue, reason: v2beta1.IPPoolServingReason}
			if tt.wantReady != "" {
				ready = wantCond{status: metav1.ConditionFalse, reason: tt.wantReady}
			}
			checkCond(t, st.Conditions, v2beta1.IPPoolReadyCondition, ready, now)
			if len(st.Orbweaver.Conditions) != len(tt.want) {
				t.Errorf("conditions = %+v, want types %v", st.Orbweaver.Conditions, tt.want)
			}
			for typ, w := range tt.want {
				c := meta.FindStatusCondition(st.Orbweaver.Conditions, typ)
				if c == nil {
					t.Errorf("no %s condition", typ)
					continue
				}
				if c.Status != w.status || c.Reason != w.reason {
					t.Errorf("%s = %s/%s (%q), want %s/%s", typ, c.Status, c.Reason, c.Message, w.status, w.reason)
				}
				for _, sub := range w.message {
					if !strings.Contains(c.Message, sub) {
						t.Errorf("%s message %q lacks %q", typ, c.Message, sub)
					}
				}
			}
		})
	}
}

// TestLastWrites: a pool's next status write waits for what is left of the interval
// since its last one; other pools, and a forgotten pool, do not wait.
func TestLastWrites(t *testing.T) {
	w := &lastWrites{at: map[string]time.Time{}}
	t0 := time.Date(2026, 12, 8, 12, 0, 0, 0, time.UTC)
	const interval = 2 * time.Second
	for i, step := range []struct {
		pool string
		at   time.Duration
		want time.Duration
	}{
		{"a", 0, 0},
		{"a", 500 * time.Millisecond, 1500 * time.Millisecond},
		{"b", 500 * time.Millisecond, 0},
		{"a", interval, 0},
		{"a", 3 * time.Second, 0},
	} {
		if i == 1 {
			w.note("a", t0)
		}
		if got := w.wait(step.pool, t0.Add(step.at), interval); got != step.want {
			t.Errorf("%s at %v: wait %v, want %v", step.pool, step.at, got, step.want)
		}
	}
	w.forget("a")
	if got := w.wait("a", t0, interval); got != 0 {
		t.Errorf("after forget: wait %v, want 0", got)
	}
}
