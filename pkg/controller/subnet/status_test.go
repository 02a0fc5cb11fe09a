package subnet

import (
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
)

func newSubnet(name, cidr string, ips, exclude []v2beta1.IPOrRange) *v2beta1.SpiderSubnet {
	return &v2beta1.SpiderSubnet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 2},
		Spec:       v2beta1.SubnetSpec{Subnet: v2beta1.CIDR(cidr), IPs: ips, ExcludeIPs: exclude},
	}
}

func newPool(name, cidr string, labels map[string]string, ips, exclude []v2beta1.IPOrRange) v2beta1.SpiderIPPool {
	return v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       v2beta1.IPPoolSpec{Subnet: v2beta1.CIDR(cidr), IPs: ips, ExcludeIPs: exclude},
	}
}

func owner(subnet string) map[string]string {
	return map[string]string{ipam.LabelOwnerSpiderSubnet: subnet}
}

func autoLabels(apiVersion, kind, ns, name, subnet string) map[string]string {
	app := ipam.Application{APIVersion: apiVersion, Kind: kind, Namespace: ns, Name: name, UID: "9a2b3c4d-0000-0000-0000-000000000001"}
	return ipam.AutoPoolLabels(app, subnet, "eth0", v2beta1.IPv4, true)
}

func reservedOf(t *testing.T, tokens ...string) ip.Set {
	t.Helper()
	s, err := ip.ParseRanges(tokens)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBelongs(t *testing.T) {
	s := newSubnet("sn", "10.244.0.0/16", nil, nil)
	tests := []struct {
		name string
		pool v2beta1.SpiderIPPool
		want bool
	}{
		{"label names it", newPool("p", "10.9.0.0/24", owner("sn"), nil, nil), true},
		{"label names another, same subnet", newPool("p", "10.244.0.0/16", owner("other"), nil, nil), false},
		{"no label, same subnet", newPool("p", "10.244.0.0/16", nil, nil, nil), true},
		{"empty label, same subnet", newPool("p", "10.244.0.0/16", owner(""), nil, nil), true},
		{"no label, other subnet", newPool("p", "10.244.0.0/24", nil, nil, nil), false},
		{"no label, subnet does not parse", newPool("p", "10.244.0.0/33", nil, nil, nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := belongs(&tt.pool, s, mustPrefix(t, "10.244.0.0/16")); got != tt.want {
				t.Fatalf("belongs = %t, want %t", got, tt.want)
			}
		})
	}
}

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := ip.ParseCanonicalCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDesiredStatus: controlledIPPools in SpiderPool's JSON, the counts and the
// conditions, from the subnet, all pools and the reserved addresses.
func TestDesiredStatus(t *testing.T) {
	const cidr = "10.244.0.0/16"
	big := newSubnet("nginx-subnet-v4", cidr, []v2beta1.IPOrRange{"10.244.100.0-10.244.100.255"}, nil)
	small := newSubnet("small", cidr, []v2beta1.IPOrRange{"10.244.100.10-10.244.100.14"}, []v2beta1.IPOrRange{"10.244.100.14"})
	type cond struct {
		status  metav1.ConditionStatus
		reason  string
		message []string
	}
	tests := []struct {
		name          string
		subnet        *v2beta1.SpiderSubnet
		pools         []v2beta1.SpiderIPPool
		reserved      []string
		blocking      []string
		wantPools     *string // exact controlledIPPools
		wantTotal     int64
		wantAllocated int64
		wantFree      int64
		want          map[string]cond
	}{
		{
			name:   "an auto pool and a manual pool, as SpiderPool writes them",
			subnet: big,
			pools: []v2beta1.SpiderIPPool{
				newPool("auto4-nginx-eth0-9a2b3", cidr, autoLabels("apps/v1", "Deployment", "default", "nginx", "nginx-subnet-v4"), []v2beta1.IPOrRange{"10.244.100.0-10.244.100.4"}, nil),
				newPool("manual", cidr, nil, []v2beta1.IPOrRange{"10.244.100.10", "10.244.100.20-10.244.100.21"}, []v2beta1.IPOrRange{"10.244.100.21"}),
				newPool("elsewhere", "10.9.0.0/24", nil, []v2beta1.IPOrRange{"10.9.0.1-10.9.0.9"}, nil),
			},
			wantPools: ptr.To(`{"auto4-nginx-eth0-9a2b3":{"ips":["10.244.100.0-10.244.100.4"],"application":"apps_v1_Deployment_default_nginx"},` +
				`"manual":{"ips":["10.244.100.10","10.244.100.20"]}}`),
			wantTotal: 256, wantAllocated: 7, wantFree: 248, // 10.244.100.21 is the manual pool's: spec.ips
			want: map[string]cond{
				v2beta1.SubnetExhaustedCondition:    {status: metav1.ConditionFalse, reason: v2beta1.SubnetFreeAddressesReason},
				v2beta1.SubnetPoolsOutsideCondition: {status: metav1.ConditionFalse, reason: v2beta1.SubnetPoolsInsideReason},
			},
		},
		{
			name:   "core-group application; a labelled pool; an empty manual pool is not listed",
			subnet: big,
			pools: []v2beta1.SpiderIPPool{
				newPool("auto4-web-eth0-9a2b3", cidr, autoLabels("v1", "Pod", "ns", "web", "nginx-subnet-v4"), []v2beta1.IPOrRange{"10.244.100.7"}, nil),
				newPool("empty", cidr, owner("nginx-subnet-v4"), nil, nil),
			},
			wantPools: ptr.To(`{"auto4-web-eth0-9a2b3":{"ips":["10.244.100.7"],"application":"v1_Pod_ns_web"}}`),
			wantTotal: 256, wantAllocated: 1, wantFree: 255,
			want: map[string]cond{
				v2beta1.SubnetExhaustedCondition:    {status: metav1.ConditionFalse, reason: v2beta1.SubnetFreeAddressesReason},
				v2beta1.SubnetPoolsOutsideCondition: {status: metav1.ConditionFalse, reason: v2beta1.SubnetPoolsInsideReason},
			},
		},
		{
			name:      "no pool",
			subnet:    big,
			wantPools: nil,
			wantTotal: 256, wantAllocated: 0, wantFree: 256,
			want: map[string]cond{
				v2beta1.SubnetExhaustedCondition:    {status: metav1.ConditionFalse, reason: v2beta1.SubnetFreeAddressesReason},
				v2beta1.SubnetPoolsOutsideCondition: {status: metav1.ConditionFalse, reason: v2beta1.SubnetPoolsInsideReason},
			},
		},
		{
			// A pool of the same subnet that a label gives to another SpiderSubnet is not
			// listed, but its addresses are not left for new pools either.
			name:   "exhausted by pools and a reservation",
			subnet: small,
			pools: []v2beta1.SpiderIPPool{
				newPool("a", cidr, nil, []v2beta1.IPOrRange{"10.244.100.10-10.244.100.11"}, nil),
				newPool("b", cidr, owner("other"), []v2beta1.IPOrRange{"10.244.100.12"}, nil),
			},
			reserved:  []string{"10.244.100.13", "10.244.100.14"},
			wantPools: ptr.To(`{"a":{"ips":["10.244.100.10-10.244.100.11"]}}`),
			wantTotal: 4, wantAllocated: 2, wantFree: 0,
			want: map[string]cond{
				v2beta1.SubnetExhaustedCondition: {status: metav1.ConditionTrue, reason: v2beta1.SubnetNoFreeAddressReason,
					message: []string{"of the subnet's 4 addresses", "3 are in pools and 1 reserved by SpiderReservedIPs"}},
				v2beta1.SubnetPoolsOutsideCondition: {status: metav1.ConditionFalse, reason: v2beta1.SubnetPoolsInsideReason},
			},
		},
		{
			name:      "no address at all",
			subnet:    newSubnet("none", cidr, nil, nil),
			wantTotal: 0, wantAllocated: 0, wantFree: 0,
			want: map[string]cond{
				v2beta1.SubnetExhaustedCondition:    {status: metav1.ConditionTrue, reason: v2beta1.SubnetNoFreeAddressReason, message: []string{"spec.ips minus spec.excludeIPs is empty"}},
				v2beta1.SubnetPoolsOutsideCondition: {status: metav1.ConditionFalse, reason: v2beta1.SubnetPoolsInsideReason},
			},
		},
		{
			// allocatedIPCount counts only what controlledIPPools lists: the addresses
			// inside the subnet's.
			name:   "pools outside",
			subnet: small,
			pools: []v2beta1.SpiderIPPool{
				newPool("over", cidr, nil, []v2beta1.IPOrRange{"10.244.100.13-10.244.100.16"}, nil),
				newPool("labelled", "10.9.0.0/24", owner("small"), []v2beta1.IPOrRange{"10.9.0.1"}, nil),
			},
			wantPools: ptr.To(`{"labelled":{"ips":[]},"over":{"ips":["10.244.100.13"]}}`),
			wantTotal: 4, wantAllocated: 1, wantFree: 3,
			want: map[string]cond{
				v2beta1.SubnetExhaustedCondition: {status: metav1.ConditionFalse, reason: v2beta1.SubnetFreeAddressesReason},
				v2beta1.SubnetPoolsOutsideCondition: {status: metav1.ConditionTrue, reason: v2beta1.SubnetAddressesOutsideSubnetReason,
					message: []string{`SpiderIPPool "labelled" has 10.9.0.1 (1 address)`, `SpiderIPPool "over" has 10.244.100.14-10.244.100.16 (3 addresses)`}},
			},
		},
		{
			name: "deleted while pools remain",
			subnet: func() *v2beta1.SpiderSubnet {
				s := big.DeepCopy()
				s.DeletionTimestamp = ptr.To(metav1.Unix(1700000000, 0))
				return s
			}(),
			pools:     []v2beta1.SpiderIPPool{newPool("p", cidr, nil, []v2beta1.IPOrRange{"10.244.100.1"}, nil)},
			blocking:  []string{"p", "q"},
			wantPools: ptr.To(`{"p":{"ips":["10.244.100.1"]}}`),
			wantTotal: 256, wantAllocated: 1, wantFree: 255,
			want: map[string]cond{
				v2beta1.SubnetExhaustedCondition:       {status: metav1.ConditionFalse, reason: v2beta1.SubnetFreeAddressesReason},
				v2beta1.SubnetPoolsOutsideCondition:    {status: metav1.ConditionFalse, reason: v2beta1.SubnetPoolsInsideReason},
				v2beta1.SubnetDeletionBlockedCondition: {status: metav1.ConditionTrue, reason: v2beta1.SubnetPoolsRemainReason, message: []string{"belong to the subnet: p, q"}},
			},
		},
		{
			name:   "IPv6",
			subnet: newSubnet("v6", "fd00::/64", []v2beta1.IPOrRange{"fd00::10-fd00::1f"}, nil),
			pools: []v2beta1.SpiderIPPool{
				newPool("auto6-db-eth0-9a2b3", "fd00::/64", autoLabels("apps/v1", "StatefulSet", "db", "pg", "v6"), []v2beta1.IPOrRange{"fd00::10-fd00::13"}, nil),
			},
			reserved:  []string{"fd00::1f"},
			wantPools: ptr.To(`{"auto6-db-eth0-9a2b3":{"ips":["fd00::10-fd00::13"],"application":"apps_v1_StatefulSet_db_pg"}}`),
			wantTotal: 16, wantAllocated: 4, wantFree: 11,
			want: map[string]cond{
				v2beta1.SubnetExhaustedCondition:    {status: metav1.ConditionFalse, reason: v2beta1.SubnetFreeAddressesReason},
				v2beta1.SubnetPoolsOutsideCondition: {status: metav1.ConditionFalse, reason: v2beta1.SubnetPoolsInsideReason},
			},
		},
	}
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := observe(tt.subnet, tt.pools, reservedOf(t, tt.reserved...))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.free.Count().Int64Saturating(); got != tt.wantFree {
				t.Errorf("free = %d, want %d", got, tt.wantFree)
			}
			st, err := desiredStatus(tt.subnet, f, tt.blocking, now)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := ptr.Deref(st.ControlledIPPools, "<nil>"), ptr.Deref(tt.wantPools, "<nil>"); got != want {
				t.Errorf("controlledIPPools =\n%s\nwant\n%s", got, want)
			}
			if *st.TotalIPCount != tt.wantTotal || *st.AllocatedIPCount != tt.wantAllocated {
				t.Errorf("total/allocated = %d/%d, want %d/%d", *st.TotalIPCount, *st.AllocatedIPCount, tt.wantTotal, tt.wantAllocated)
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
				if c.Status != w.status || c.Reason != w.reason || c.ObservedGeneration != 2 || !c.LastTransitionTime.Time.Equal(now) {
					t.Errorf("%s = %s/%s gen %d at %v, want %s/%s gen 2 at %v", typ, c.Status, c.Reason, c.ObservedGeneration, c.LastTransitionTime, w.status, w.reason, now)
				}
				for _, sub := range w.message {
					if !strings.Contains(c.Message, sub) {
						t.Errorf("%s message %q lacks %q", typ, c.Message, sub)
					}
				}
			}

			wantReady := [2]string{string(metav1.ConditionTrue), v2beta1.SubnetServingReason}
			if tt.subnet.DeletionTimestamp != nil {
				wantReady = [2]string{string(metav1.ConditionFalse), v2beta1.SubnetDeletingReason}
			}
			if c := meta.FindStatusCondition(st.Conditions, v2beta1.SubnetReadyCondition); c == nil ||
				[2]string{string(c.Status), c.Reason} != wantReady || c.ObservedGeneration != 2 || !c.LastTransitionTime.Time.Equal(now) {
				t.Errorf("Ready = %+v, want %v gen 2 at %v", c, wantReady, now)
			}

			// The same state later gives the same status: nothing to write.
			written := tt.subnet.DeepCopy()
			written.Status = st
			again, err := desiredStatus(written, f, tt.blocking, now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if statusChanged(&written.Status, &again) {
				t.Errorf("second pass changed the status")
			}
		})
	}
}

// TestControlledIPPoolsStable: the JSON does not depend on the order pools are listed
// in.
func TestControlledIPPoolsStable(t *testing.T) {
	const cidr = "10.244.0.0/16"
	s := newSubnet("sn", cidr, []v2beta1.IPOrRange{"10.244.0.0-10.244.0.255"}, nil)
	pools := []v2beta1.SpiderIPPool{
		newPool("c", cidr, nil, []v2beta1.IPOrRange{"10.244.0.30"}, nil),
		newPool("a", cidr, nil, []v2beta1.IPOrRange{"10.244.0.10"}, nil),
		newPool("b", cidr, nil, []v2beta1.IPOrRange{"10.244.0.20"}, nil),
	}
	var first string
	for i := range 3 {
		pools = append(pools[1:], pools[0])
		f, err := observe(s, pools, ip.Set{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := controlledIPPools(f.shares)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = *got
		} else if *got != first {
			t.Fatalf("order %d gave %s, first %s", i, *got, first)
		}
	}
	if want := `{"a":{"ips":["10.244.0.10"]},"b":{"ips":["10.244.0.20"]},"c":{"ips":["10.244.0.30"]}}`; first != want {
		t.Fatalf("controlledIPPools = %s, want %s", first, want)
	}
}

func TestObserveRefusesInvalidSubnet(t *testing.T) {
	for _, s := range []*v2beta1.SpiderSubnet{
		newSubnet("a", "10.0.0.1/24", nil, nil),
		newSubnet("b", "10.0.0.0/24", []v2beta1.IPOrRange{"fd00::1"}, nil),
		newSubnet("c", "10.0.0.0/24", nil, []v2beta1.IPOrRange{"x"}),
	} {
		if _, err := observe(s, nil, ip.Set{}); err == nil {
			t.Errorf("subnet %s %v %v: no error", s.Spec.Subnet, s.Spec.IPs, s.Spec.ExcludeIPs)
		}
	}
}

// TestTurnedBad: only turns to True are reported, once.
func TestTurnedBad(t *testing.T) {
	c := func(typ string, s metav1.ConditionStatus) metav1.Condition {
		return metav1.Condition{Type: typ, Status: s}
	}
	old := []metav1.Condition{c(v2beta1.SubnetExhaustedCondition, metav1.ConditionTrue), c(v2beta1.SubnetPoolsOutsideCondition, metav1.ConditionFalse)}
	next := []metav1.Condition{c(v2beta1.SubnetExhaustedCondition, metav1.ConditionTrue), c(v2beta1.SubnetPoolsOutsideCondition, metav1.ConditionTrue), c(v2beta1.SubnetDeletionBlockedCondition, metav1.ConditionTrue)}
	bad := turnedBad(old, next)
	if len(bad) != 2 || bad[0].Type != v2beta1.SubnetPoolsOutsideCondition || bad[1].Type != v2beta1.SubnetDeletionBlockedCondition {
		t.Fatalf("turned bad = %+v", bad)
	}
}
