package webhook

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// TestWithPending: which admitted-but-maybe-unstored claims the rules compare against.
func TestWithPending(t *testing.T) {
	now := time.Now()
	pool := func(name string) v2beta1.SpiderIPPool {
		return v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v2beta1.IPPoolSpec{Subnet: "10.0.0.0/24"}}
	}
	claim := func(name string, update bool) Claim {
		p := pool(name)
		p.Spec.IPs = []v2beta1.IPOrRange{"10.0.0.1"}
		return claimOfPool(&p, now, update)
	}
	tests := []struct {
		name    string
		listed  []string
		pending []Claim
		want    []string // pool names compared against, listed ones first
	}{
		{name: "create not stored yet: counts", pending: []Claim{claim("a", false)}, want: []string{"a"}},
		{name: "create stored: the listed object only", listed: []string{"a"}, pending: []Claim{claim("a", false)}, want: []string{"a"}},
		{name: "update of a listed object: both versions", listed: []string{"a"}, pending: []Claim{claim("a", true)}, want: []string{"a", "a"}},
		{name: "update of a deleted object: nothing", pending: []Claim{claim("a", true)}, want: nil},
		{name: "self never", pending: []Claim{claim("me", false), claim("me", true)}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e Existing
			for _, n := range tt.listed {
				e.IPPools = append(e.IPPools, pool(n))
			}
			got := withPending(e, tt.pending, "SpiderIPPool", "me")
			var names []string
			for _, p := range got.IPPools {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("compared against %v, want %v", names, tt.want)
			}
		})
	}
}

// TestPendingStaticEIP: a pool admitted a moment ago, not stored yet, holds its Static
// EIPs for the next decision: two racing pools cannot both list one EIP.
func TestPendingStaticEIP(t *testing.T) {
	first := pool("first", "10.0.0.0/24", ips("10.0.0.10"), withEIP(&v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPStatic, Static: []string{"eip-1"}}))
	second := pool("second", "10.1.0.0/24", ips("10.1.0.10"), withEIP(&v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPStatic, Static: []string{"eip-1"}}))
	pending := []Claim{claimOfPool(first, time.Now(), false)}
	existing := withPending(Existing{}, pending, "SpiderIPPool", second.Name)
	expectErrors(t, both.ValidateIPPoolCreate(second, existing), forbidden("spec.orbweaver.eip.static[0]", `listed by SpiderIPPool "first"`))
}
