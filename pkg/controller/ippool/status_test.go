package ippool

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

func newPool(subnet string, ips, exclude []v2beta1.IPOrRange) *v2beta1.SpiderIPPool {
	return &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: 4},
		Spec:       v2beta1.IPPoolSpec{Subnet: v2beta1.CIDR(subnet), IPs: ips, ExcludeIPs: exclude},
	}
}

func podOwner(i int) records.Owner {
	return records.OwnerOf(fmt.Sprintf("uid-%d", i), fmt.Sprintf("ctr-%d", i), "eth0")
}

// allocate records n pod allocations (pods distinct) and reserve addresses for node in
// sp's status, the way an agent writes them.
func allocate(t *testing.T, sp *v2beta1.SpiderIPPool, n, reserve int) *v2beta1.SpiderIPPool {
	t.Helper()
	p, err := ipam.NewPool(sp, ip.Set{})
	if err != nil {
		t.Fatal(err)
	}
	owners := make([]records.Owner, n)
	for i := range owners {
		owners[i] = podOwner(i)
	}
	if p, _, err = p.Allocate(owners, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if reserve > 0 {
		var took []netip.Addr
		if p, took = p.Reserve(records.ReserveOwner("node-a"), reserve, netip.Addr{}); len(took) != reserve {
			t.Fatalf("reserved %d, want %d", len(took), reserve)
		}
	}
	if err := p.WriteStatus(sp); err != nil {
		t.Fatal(err)
	}
	return sp
}

func set(t *testing.T, tokens ...string) ip.Set {
	t.Helper()
	s, err := ip.ParseRanges(tokens)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type wantCond struct {
	status metav1.ConditionStatus
	reason string
	// message holds these substrings.
	message []string
}

// TestDesiredStatus: counts and conditions computed from the spec, the records and the
// reserved addresses: allocatedIPCount counts the pods' addresses, spareIPCount the node
// reserves', freeIPCount what neither holds nor SpiderReservedIPs reserve; Ready sums
// the conditions up.
func TestDesiredStatus(t *testing.T) {
	v4 := func(ips ...v2beta1.IPOrRange) *v2beta1.SpiderIPPool { return newPool("10.0.0.0/24", ips, nil) }
	serving := wantCond{status: metav1.ConditionTrue, reason: v2beta1.IPPoolServingReason}
	tests := []struct {
		name          string
		pool          func(t *testing.T) *v2beta1.SpiderIPPool
		reserved      []string
		blocked       bool
		wantTotal     int64
		wantAllocated *int64              // nil: status.allocatedIPCount must be nil
		wantSpare     *int64              // nil: status.orbweaver.spareIPCount must be nil
		wantFree      int64               // facts.free, and status.orbweaver.freeIPCount unless the records are corrupt
		want          map[string]wantCond // by condition type; absent types must be absent
		wantReady     wantCond
	}{
		{
			name: "no status yet",
			pool: func(t *testing.T) *v2beta1.SpiderIPPool {
				return newPool("10.0.0.0/24", []v2beta1.IPOrRange{"10.0.0.10-10.0.0.19"}, []v2beta1.IPOrRange{"10.0.0.15"})
			},
			wantTotal: 9, wantAllocated: ptr.To[int64](0), wantSpare: ptr.To[int64](0), wantFree: 9,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition:    {status: metav1.ConditionFalse, reason: v2beta1.IPPoolFreeAddressesReason},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolRecordsDecodedReason},
			},
			wantReady: serving,
		},
		{
			name:      "pods and a node reserve",
			pool:      func(t *testing.T) *v2beta1.SpiderIPPool { return allocate(t, v4("10.0.0.10-10.0.0.19"), 3, 2) },
			wantTotal: 10, wantAllocated: ptr.To[int64](3), wantSpare: ptr.To[int64](2), wantFree: 5,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition:    {status: metav1.ConditionFalse, reason: v2beta1.IPPoolFreeAddressesReason},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolRecordsDecodedReason},
			},
			wantReady: serving,
		},
		{
			// A full pool is sound: Ready stays True, Exhausted says it is full.
			name:      "full",
			pool:      func(t *testing.T) *v2beta1.SpiderIPPool { return allocate(t, v4("10.0.0.10-10.0.0.13"), 4, 0) },
			wantTotal: 4, wantAllocated: ptr.To[int64](4), wantSpare: ptr.To[int64](0), wantFree: 0,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition:    {status: metav1.ConditionTrue, reason: v2beta1.IPPoolNoFreeAddressReason, message: []string{"all 4 usable addresses are held"}},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolRecordsDecodedReason},
			},
			wantReady: serving,
		},
		{
			name:      "full of spares",
			pool:      func(t *testing.T) *v2beta1.SpiderIPPool { return allocate(t, v4("10.0.0.10-10.0.0.13"), 1, 3) },
			wantTotal: 4, wantAllocated: ptr.To[int64](1), wantSpare: ptr.To[int64](3), wantFree: 0,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition:    {status: metav1.ConditionTrue, reason: v2beta1.IPPoolNoFreeAddressReason, message: []string{"held by pods or node agents' reserves"}},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolRecordsDecodedReason},
			},
			wantReady: serving,
		},
		{
			name: "disabled",
			pool: func(t *testing.T) *v2beta1.SpiderIPPool {
				sp := allocate(t, v4("10.0.0.10-10.0.0.13"), 1, 0)
				sp.Spec.Disable = ptr.To(true)
				return sp
			},
			wantTotal: 4, wantAllocated: ptr.To[int64](1), wantSpare: ptr.To[int64](0), wantFree: 3,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition:    {status: metav1.ConditionFalse, reason: v2beta1.IPPoolFreeAddressesReason},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolRecordsDecodedReason},
			},
			wantReady: wantCond{status: metav1.ConditionFalse, reason: v2beta1.IPPoolDisabledReason, message: []string{"spec.disable"}},
		},
		{
			// Reserved addresses narrow what is free, not totalIPCount (as SpiderPool).
			name:      "the free rest reserved",
			pool:      func(t *testing.T) *v2beta1.SpiderIPPool { return allocate(t, v4("10.0.0.10-10.0.0.13"), 2, 0) },
			reserved:  []string{"10.0.0.12-10.0.0.13", "10.0.0.200"},
			wantTotal: 4, wantAllocated: ptr.To[int64](2), wantSpare: ptr.To[int64](0), wantFree: 0,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition:    {status: metav1.ConditionTrue, reason: v2beta1.IPPoolNoFreeAddressReason, message: []string{"all 2 usable addresses are held", "2 more are reserved by SpiderReservedIPs"}},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolRecordsDecodedReason},
			},
			wantReady: serving,
		},
		{
			name:      "no address at all",
			pool:      func(t *testing.T) *v2beta1.SpiderIPPool { return v4() },
			wantTotal: 0, wantAllocated: ptr.To[int64](0), wantSpare: ptr.To[int64](0), wantFree: 0,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition:    {status: metav1.ConditionTrue, reason: v2beta1.IPPoolNoFreeAddressReason, message: []string{"spec.ips minus spec.excludeIPs is empty"}},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolRecordsDecodedReason},
			},
			wantReady: serving,
		},
		{
			name: "corrupt records leave the counts alone",
			pool: func(t *testing.T) *v2beta1.SpiderIPPool {
				sp := v4("10.0.0.10-10.0.0.19")
				sp.Status = v2beta1.IPPoolStatus{AllocatedIPCount: ptr.To[int64](7),
					Orbweaver: &v2beta1.IPPoolOrbweaverStatus{Records: []byte{9, 9, 9}, SpareIPCount: ptr.To[int64](2), FreeIPCount: ptr.To[int64](1)}}
				return sp
			},
			wantTotal: 10, wantAllocated: ptr.To[int64](7), wantSpare: ptr.To[int64](2), wantFree: 10,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition:    {status: metav1.ConditionUnknown, reason: v2beta1.IPPoolRecordsCorruptReason},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionFalse, reason: v2beta1.IPPoolRecordsCorruptReason, message: []string{"status.orbweaver.records"}},
			},
			wantReady: wantCond{status: metav1.ConditionFalse, reason: v2beta1.IPPoolRecordsCorruptReason, message: []string{"do not decode"}},
		},
		{
			name: "corrupt records and no count",
			pool: func(t *testing.T) *v2beta1.SpiderIPPool {
				sp := v4("10.0.0.10-10.0.0.19")
				sp.Status = v2beta1.IPPoolStatus{Orbweaver: &v2beta1.IPPoolOrbweaverStatus{Records: []byte{1}}}
				return sp
			},
			wantTotal: 10, wantAllocated: nil, wantFree: 10,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition:    {status: metav1.ConditionUnknown, reason: v2beta1.IPPoolRecordsCorruptReason},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionFalse, reason: v2beta1.IPPoolRecordsCorruptReason},
			},
			wantReady: wantCond{status: metav1.ConditionFalse, reason: v2beta1.IPPoolRecordsCorruptReason},
		},
		{
			// Records of addresses that left spec.ips (a write that bypassed the webhook).
			name: "records outside the pool",
			pool: func(t *testing.T) *v2beta1.SpiderIPPool {
				sp := allocate(t, v4("10.0.0.10-10.0.0.19"), 8, 0) // 10.0.0.10-17
				sp.Spec.IPs = []v2beta1.IPOrRange{"10.0.0.10-10.0.0.11"}
				return sp
			},
			wantTotal: 2, wantAllocated: ptr.To[int64](8), wantSpare: ptr.To[int64](0), wantFree: 0,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolNoFreeAddressReason},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionFalse, reason: v2beta1.IPPoolAddressesOutsidePoolReason,
					message: []string{"6 records hold addresses outside", "10.0.0.12, 10.0.0.13, 10.0.0.14, 10.0.0.15, 10.0.0.16 and 1 more"}},
			},
			wantReady: serving, // their owners keep them; the pool still serves
		},
		{
			name: "deleted while held",
			pool: func(t *testing.T) *v2beta1.SpiderIPPool {
				sp := allocate(t, v4("10.0.0.10-10.0.0.19"), 2, 3)
				sp.DeletionTimestamp = ptr.To(metav1.Unix(1700000000, 0))
				return sp
			},
			blocked:   true,
			wantTotal: 10, wantAllocated: ptr.To[int64](2), wantSpare: ptr.To[int64](3), wantFree: 5,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition:    {status: metav1.ConditionFalse, reason: v2beta1.IPPoolFreeAddressesReason},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolRecordsDecodedReason},
				v2beta1.IPPoolDeletionBlockedCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolAddressesHeldReason,
					message: []string{"5 addresses are still held", "2 held by 2 pods", "3 in the reserve of 1 node agent"}},
			},
			wantReady: wantCond{status: metav1.ConditionFalse, reason: v2beta1.IPPoolDeletingReason},
		},
		{
			name: "deleted, only spares left",
			pool: func(t *testing.T) *v2beta1.SpiderIPPool {
				sp := allocate(t, v4("10.0.0.10-10.0.0.19"), 0, 2)
				sp.DeletionTimestamp = ptr.To(metav1.Unix(1700000000, 0))
				return sp
			},
			blocked:   true,
			wantTotal: 10, wantAllocated: ptr.To[int64](0), wantSpare: ptr.To[int64](2), wantFree: 8,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition:    {status: metav1.ConditionFalse, reason: v2beta1.IPPoolFreeAddressesReason},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolRecordsDecodedReason},
				v2beta1.IPPoolDeletionBlockedCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolAddressesHeldReason,
					message: []string{"2 addresses are still held", "2 in the reserve of 1 node agent"}},
			},
			wantReady: wantCond{status: metav1.ConditionFalse, reason: v2beta1.IPPoolDeletingReason},
		},
		{
			// Unreadable records come first: they block whether deleted or not.
			name: "deleted with unreadable records",
			pool: func(t *testing.T) *v2beta1.SpiderIPPool {
				sp := v4("10.0.0.10")
				sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Records: []byte{7}}
				sp.DeletionTimestamp = ptr.To(metav1.Unix(1700000000, 0))
				return sp
			},
			blocked:   true,
			wantTotal: 1, wantAllocated: nil, wantFree: 1,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition:       {status: metav1.ConditionUnknown, reason: v2beta1.IPPoolRecordsCorruptReason},
				v2beta1.IPPoolRecordsValidCondition:    {status: metav1.ConditionFalse, reason: v2beta1.IPPoolRecordsCorruptReason},
				v2beta1.IPPoolDeletionBlockedCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolRecordsUnreadableReason},
			},
			wantReady: wantCond{status: metav1.ConditionFalse, reason: v2beta1.IPPoolRecordsCorruptReason},
		},
		{
			name: "IPv6",
			pool: func(t *testing.T) *v2beta1.SpiderIPPool {
				return allocate(t, newPool("fd00::/64", []v2beta1.IPOrRange{"fd00::10-fd00::1f"}, nil), 1, 0)
			},
			reserved:  []string{"fd00::1f"},
			wantTotal: 16, wantAllocated: ptr.To[int64](1), wantSpare: ptr.To[int64](0), wantFree: 14,
			want: map[string]wantCond{
				v2beta1.IPPoolExhaustedCondition:    {status: metav1.ConditionFalse, reason: v2beta1.IPPoolFreeAddressesReason},
				v2beta1.IPPoolRecordsValidCondition: {status: metav1.ConditionTrue, reason: v2beta1.IPPoolRecordsDecodedReason},
			},
			wantReady: serving,
		},
	}
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := tt.pool(t)
			var recsBefore []byte
			if sp.Status.Orbweaver != nil {
				recsBefore = bytes.Clone(sp.Status.Orbweaver.Records)
			}
			f, err := observe(sp, set(t, tt.reserved...))
			if err != nil {
				t.Fatal(err)
			}
			if f.free != tt.wantFree {
				t.Errorf("free = %d, want %d", f.free, tt.wantFree)
			}
			st := desiredStatus(sp, f, tt.blocked, now)
			if got := ptr.Deref(st.TotalIPCount, -1); got != tt.wantTotal {
				t.Errorf("totalIPCount = %d, want %d", got, tt.wantTotal)
			}
			switch {
			case tt.wantAllocated == nil && st.AllocatedIPCount != nil:
				t.Errorf("allocatedIPCount = %d, want unset", *st.AllocatedIPCount)
			case tt.wantAllocated != nil && ptr.Deref(st.AllocatedIPCount, -1) != *tt.wantAllocated:
				t.Errorf("allocatedIPCount = %d, want %d", ptr.Deref(st.AllocatedIPCount, -1), *tt.wantAllocated)
			}
			switch got := st.Orbweaver.SpareIPCount; {
			case tt.wantSpare == nil && got != nil:
				t.Errorf("spareIPCount = %d, want unset", *got)
			case tt.wantSpare != nil && ptr.Deref(got, -1) != *tt.wantSpare:
				t.Errorf("spareIPCount = %d, want %d", ptr.Deref(got, -1), *tt.wantSpare)
			}
			if f.recordsErr == nil && ptr.Deref(st.Orbweaver.FreeIPCount, -1) != tt.wantFree {
				t.Errorf("freeIPCount = %d, want %d", ptr.Deref(st.Orbweaver.FreeIPCount, -1), tt.wantFree)
			}
			if f.recordsErr != nil && !equalPtr(st.Orbweaver.FreeIPCount, sp.Status.Orbweaver.FreeIPCount) {
				t.Errorf("freeIPCount = %v with corrupt records, want it left as it was (%v)", st.Orbweaver.FreeIPCount, sp.Status.Orbweaver.FreeIPCount)
			}
			if !bytes.Equal(st.Orbweaver.Records, recsBefore) {
				t.Errorf("records changed")
			}
			checkCond(t, st.Conditions, v2beta1.IPPoolReadyCondition, tt.wantReady, now)
			if len(st.Conditions) != 1 {
				t.Errorf("status.conditions = %+v, want Ready only", st.Conditions)
			}
			if len(st.Orbweaver.Conditions) != len(tt.want) {
				t.Errorf("conditions = %+v, want types %v", st.Orbweaver.Conditions, tt.want)
			}
			for typ, w := range tt.want {
				c := meta.FindStatusCondition(st.Orbweaver.Conditions, typ)
				if c == nil {
					t.Errorf("no %s condition", typ)
					continue
				}
				if c.Status != w.status || c.Reason != w.reason || c.ObservedGeneration != 4 || !c.LastTransitionTime.Time.Equal(now) {
					t.Errorf("%s = %s/%s gen %d at %v, want %s/%s gen 4 at %v", typ, c.Status, c.Reason, c.ObservedGeneration, c.LastTransitionTime, w.status, w.reason, now)
				}
				for _, sub := range w.message {
					if !strings.Contains(c.Message, sub) {
						t.Errorf("%s message %q lacks %q", typ, c.Message, sub)
					}
				}
			}

			// A second pass over the written status changes nothing, however much later.
			written := sp.DeepCopy()
			written.Status = st
			f2, err := observe(written, set(t, tt.reserved...))
			if err != nil {
				t.Fatal(err)
			}
			if again := desiredStatus(written, f2, tt.blocked, now.Add(time.Hour)); statusChanged(&written.Status, &again) {
				t.Errorf("second pass changed the status:\n%+v\nto\n%+v", written.Status, again)
			}
		})
	}
}

func equalPtr(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// checkCond checks the condition typ of conds against w: status, reason, message
// substrings, observed generation 4 and transition time at.
func checkCond(t *testing.T, conds []metav1.Condition, typ string, w wantCond, at time.Time) {
	t.Helper()
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		t.Errorf("no %s condition in %+v", typ, conds)
		return
	}
	if c.Status != w.status || c.Reason != w.reason || c.ObservedGeneration != 4 || !c.LastTransitionTime.Time.Equal(at) {
		t.Errorf("%s = %s/%s gen %d at %v, want %s/%s gen 4 at %v", typ, c.Status, c.Reason, c.ObservedGeneration, c.LastTransitionTime, w.status, w.reason, at)
	}
	for _, sub := range w.message {
		if !strings.Contains(c.Message, sub) {
			t.Errorf("%s message %q lacks %q", typ, c.Message, sub)
		}
	}
}

// TestReady: Ready is False with the first reason that keeps agents from allocating
// (a spec that does not parse, SpiderPool's records not imported, undecodable records,
// deletion, spec.disable), else True; a full pool, or records outside the pool, do not
// make it False.
func TestReady(t *testing.T) {
	cond := func(typ string, s metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg}
	}
	running := cond(v2beta1.IPPoolImportedCondition, metav1.ConditionFalse, v2beta1.IPPoolSpiderPoolRunningReason, "SpiderPool is still installed (pod kube-system/spiderpool-agent-x)")
	invalid := cond(v2beta1.IPPoolImportedCondition, metav1.ConditionFalse, v2beta1.IPPoolForeignRecordsInvalidReason, "record 10.0.0.300: not an address")
	imported := cond(v2beta1.IPPoolImportedCondition, metav1.ConditionTrue, v2beta1.IPPoolImportedReason, "imported 3 addresses")
	corrupt := cond(v2beta1.IPPoolRecordsValidCondition, metav1.ConditionFalse, v2beta1.IPPoolRecordsCorruptReason, "records: bad version")
	outside := cond(v2beta1.IPPoolRecordsValidCondition, metav1.ConditionFalse, v2beta1.IPPoolAddressesOutsidePoolReason, "1 record holds an address outside")
	exhausted := cond(v2beta1.IPPoolExhaustedCondition, metav1.ConditionTrue, v2beta1.IPPoolNoFreeAddressReason, "no free address")
	deleted := ptr.To(metav1.Unix(1700000000, 0))
	tests := []struct {
		name         string
		allocatedIPs bool // status.allocatedIPs set
		conds        []metav1.Condition
		deleting     bool
		disable      bool
		specErr      error
		want         wantCond
	}{
		{name: "a fresh pool", want: wantCond{status: metav1.ConditionTrue, reason: v2beta1.IPPoolServingReason}},
		{name: "exhausted still serves", conds: []metav1.Condition{exhausted}, want: wantCond{status: metav1.ConditionTrue, reason: v2beta1.IPPoolServingReason}},
		{name: "records outside the pool still serve", conds: []metav1.Condition{outside}, want: wantCond{status: metav1.ConditionTrue, reason: v2beta1.IPPoolServingReason}},
		{name: "imported", conds: []metav1.Condition{imported}, want: wantCond{status: metav1.ConditionTrue, reason: v2beta1.IPPoolServingReason}},
		{name: "spec invalid", specErr: fmt.Errorf("%w \"p\": spec.subnet: bad", ipam.ErrInvalidPool), allocatedIPs: true, conds: []metav1.Condition{running}, disable: true,
			want: wantCond{status: metav1.ConditionFalse, reason: v2beta1.IPPoolSpecInvalidReason, message: []string{"spec.subnet: bad"}}},
		{name: "SpiderPool still runs", allocatedIPs: true, conds: []metav1.Condition{running, corrupt}, deleting: true,
			want: wantCond{status: metav1.ConditionFalse, reason: v2beta1.IPPoolSpiderPoolRunningReason, message: []string{"not imported", "spiderpool-agent-x"}}},
		{name: "SpiderPool's records invalid", allocatedIPs: true, conds: []metav1.Condition{invalid},
			want: wantCond{status: metav1.ConditionFalse, reason: v2beta1.IPPoolForeignRecordsInvalidReason, message: []string{"10.0.0.300"}}},
		{name: "SpiderPool's records not looked at yet", allocatedIPs: true,
			want: wantCond{status: metav1.ConditionFalse, reason: v2beta1.IPPoolImportPendingReason}},
		{name: "SpiderPool's records written again after an import", allocatedIPs: true, conds: []metav1.Condition{imported},
			want: wantCond{status: metav1.ConditionFalse, reason: v2beta1.IPPoolImportPendingReason}},
		{name: "records corrupt", conds: []metav1.Condition{corrupt}, deleting: true, disable: true,
			want: wantCond{status: metav1.ConditionFalse, reason: v2beta1.IPPoolRecordsCorruptReason, message: []string{"bad version"}}},
		{name: "deleting", deleting: true, disable: true, want: wantCond{status: metav1.ConditionFalse, reason: v2beta1.IPPoolDeletingReason}},
		{name: "disabled", disable: true, conds: []metav1.Condition{exhausted}, want: wantCond{status: metav1.ConditionFalse, reason: v2beta1.IPPoolDisabledReason}},
	}
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := newPool("10.0.0.0/24", []v2beta1.IPOrRange{"10.0.0.10-10.0.0.19"}, nil)
			if tt.deleting {
				sp.DeletionTimestamp = deleted
			}
			sp.Spec.Disable = ptr.To(tt.disable)
			st := &v2beta1.IPPoolStatus{Orbweaver: &v2beta1.IPPoolOrbweaverStatus{Conditions: tt.conds}}
			if tt.allocatedIPs {
				st.AllocatedIPs = ptr.To(`{"10.0.0.10":{"pod":"default/a","podUid":"u"}}`)
			}
			setReady(sp, st, tt.specErr, now)
			checkCond(t, st.Conditions, v2beta1.IPPoolReadyCondition, tt.want, now)

			// Set again later with the same outcome: the transition time stays.
			setReady(sp, st, tt.specErr, now.Add(time.Hour))
			checkCond(t, st.Conditions, v2beta1.IPPoolReadyCondition, tt.want, now)
		})
	}
}

// TestObserveRefusesInvalidSpec: a spec that does not parse is an error (nothing to
// write), not a condition.
func TestObserveRefusesInvalidSpec(t *testing.T) {
	for _, sp := range []*v2beta1.SpiderIPPool{
		newPool("10.0.0.0/33", nil, nil),
		newPool("10.0.0.0/24", []v2beta1.IPOrRange{"fd00::1"}, nil),
		newPool("10.0.0.0/24", []v2beta1.IPOrRange{"10.0.0.9-10.0.0.1"}, nil),
	} {
		if _, err := observe(sp, ip.Set{}); !errors.Is(err, ipam.ErrInvalidPool) {
			t.Errorf("%s %v: err = %v, want ErrInvalidPool", sp.Spec.Subnet, sp.Spec.IPs, err)
		}
	}
}

// TestTransitions: a condition keeps its transition time while its status holds, takes
// the new time when it changes, and turnedBad reports only the turns to bad.
func TestTransitions(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	sp := allocate(t, newPool("10.0.0.0/24", []v2beta1.IPOrRange{"10.0.0.10-10.0.0.11"}, nil), 1, 0)
	step := func(at time.Time, blocked bool) (old, next []metav1.Condition) {
		t.Helper()
		f, err := observe(sp, ip.Set{})
		if err != nil {
			t.Fatal(err)
		}
		st := desiredStatus(sp, f, blocked, at)
		if sp.Status.Orbweaver != nil {
			old = sp.Status.Orbweaver.Conditions
		}
		sp.Status = st
		return old, st.Orbweaver.Conditions
	}
	old, next := step(t0, false)
	if bad := turnedBad(old, next); len(bad) != 0 {
		t.Fatalf("first pass on a pool with a free address: turned bad %+v", bad)
	}

	// The pool fills: Exhausted turns True at t1, RecordsValid keeps t0.
	t1 := t0.Add(time.Minute)
	p, err := ipam.NewPool(sp, ip.Set{})
	if err != nil {
		t.Fatal(err)
	}
	if p, _, err = p.Allocate([]records.Owner{podOwner(9)}, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteStatus(sp); err != nil {
		t.Fatal(err)
	}
	old, next = step(t1, false)
	bad := turnedBad(old, next)
	if len(bad) != 1 || bad[0].Type != v2beta1.IPPoolExhaustedCondition {
		t.Fatalf("turned bad = %+v, want Exhausted", bad)
	}
	if c := meta.FindStatusCondition(next, v2beta1.IPPoolExhaustedCondition); !c.LastTransitionTime.Time.Equal(t1) {
		t.Fatalf("Exhausted transition at %v, want %v", c.LastTransitionTime, t1)
	}
	if c := meta.FindStatusCondition(next, v2beta1.IPPoolRecordsValidCondition); !c.LastTransitionTime.Time.Equal(t0) {
		t.Fatalf("RecordsValid transition at %v, want %v (unchanged)", c.LastTransitionTime, t0)
	}

	// Still full: nothing new turns bad. Deleted: DeletionBlocked turns bad; no longer
	// deleted (the finalizer gone, say): the condition is removed.
	if old, next = step(t1.Add(time.Minute), false); len(turnedBad(old, next)) != 0 {
		t.Fatal("a condition that stays bad was reported again")
	}
	old, next = step(t1.Add(2*time.Minute), true)
	if bad := turnedBad(old, next); len(bad) != 1 || bad[0].Type != v2beta1.IPPoolDeletionBlockedCondition {
		t.Fatalf("turned bad = %+v, want DeletionBlocked", bad)
	}
	if _, next = step(t1.Add(3*time.Minute), false); meta.FindStatusCondition(next, v2beta1.IPPoolDeletionBlockedCondition) != nil {
		t.Fatal("DeletionBlocked stays on a pool that is not blocked")
	}
}
