package ipam

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// TestPoolFamily: spec.ipVersion decides, spec.subnet when it is unset; neither telling
// is an error with family 0. A SpiderSubnet's family is decided the same way.
func TestPoolFamily(t *testing.T) {
	for _, tt := range []struct {
		name      string
		ipVersion *int64
		subnet    string
		want      int64
		err       string
	}{
		{name: "IPv4 subnet", subnet: "10.0.0.0/24", want: v2beta1.IPv4},
		{name: "IPv6 subnet", subnet: "fd00::/64", want: v2beta1.IPv6},
		{name: "ipVersion 4", ipVersion: ptr.To(v2beta1.IPv4), subnet: "10.0.0.0/24", want: v2beta1.IPv4},
		{name: "ipVersion 6", ipVersion: ptr.To(v2beta1.IPv6), subnet: "fd00::/64", want: v2beta1.IPv6},
		{name: "ipVersion decides over the subnet", ipVersion: ptr.To(v2beta1.IPv6), subnet: "10.0.0.0/24", want: v2beta1.IPv6},
		{name: "ipVersion with an invalid subnet", ipVersion: ptr.To(v2beta1.IPv6), subnet: "bad", want: v2beta1.IPv6},
		{name: "invalid subnet, no ipVersion", subnet: "bad", err: "spec.ipVersion is unset and spec.subnet is invalid"},
		{name: "empty subnet, no ipVersion", err: "spec.ipVersion is unset and spec.subnet is invalid"},
		{name: "ipVersion neither 4 nor 6", ipVersion: ptr.To(int64(5)), subnet: "10.0.0.0/24", err: "spec.ipVersion 5 is neither 4 nor 6"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pool := &v2beta1.SpiderIPPool{Spec: v2beta1.IPPoolSpec{IPVersion: tt.ipVersion, Subnet: v2beta1.CIDR(tt.subnet)}}
			subnet := &v2beta1.SpiderSubnet{Spec: v2beta1.SubnetSpec{IPVersion: tt.ipVersion, Subnet: v2beta1.CIDR(tt.subnet)}}
			for kind, f := range map[string]func() (int64, error){
				"PoolFamily":   func() (int64, error) { return PoolFamily(pool) },
				"SubnetFamily": func() (int64, error) { return SubnetFamily(subnet) },
			} {
				got, err := f()
				if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
					t.Errorf("%s: error %v, want %q", kind, err, tt.err)
				}
				if got != tt.want {
					t.Errorf("%s = %d, want %d", kind, got, tt.want)
				}
			}
		})
	}
}

// TestReservedAddresses: only the entries of the family count, entries that do
// not parse are skipped, and a family that is neither 4 nor 6 reserves nothing.
func TestReservedAddresses(t *testing.T) {
	items := []v2beta1.SpiderReservedIP{
		{Spec: v2beta1.ReservedIPSpec{IPs: ranges("10.0.0.1", "10.0.0.3-10.0.0.4")}},
		{Spec: v2beta1.ReservedIPSpec{IPs: ranges("fd00::1", "bad", "10.0.0.2")}},
	}
	for _, tt := range []struct {
		name   string
		items  []v2beta1.SpiderReservedIP
		family int64
		want   []string
	}{
		{name: "IPv4", items: items, family: v2beta1.IPv4, want: []string{"10.0.0.1-10.0.0.4"}},
		{name: "IPv6", items: items, family: v2beta1.IPv6, want: []string{"fd00::1"}},
		{name: "IPv6 ranges of two objects", family: v2beta1.IPv6, want: []string{"fd00::1-fd00::2", "fd00::8-fd00::9"}, items: []v2beta1.SpiderReservedIP{
			{Spec: v2beta1.ReservedIPSpec{IPs: ranges("fd00::8-fd00::9", "fd00::2")}},
			{Spec: v2beta1.ReservedIPSpec{IPs: ranges("fd00::1", "10.0.0.1")}},
		}},
		{name: "unknown family", items: items, family: 0},
		{name: "none", family: v2beta1.IPv4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := ReservedAddresses(tt.items, tt.family), mustRanges(t, tt.want...); !got.Equal(want) {
				t.Errorf("ReservedAddresses = %v, want %v", got, want)
			}
		})
	}
}

func TestReservedFamilies(t *testing.T) {
	for _, tt := range []struct {
		name   string
		ips    []string
		v4, v6 bool
	}{
		{name: "none"},
		{name: "IPv4", ips: []string{"10.0.0.1"}, v4: true},
		{name: "IPv6 range", ips: []string{"fd00::1-fd00::3"}, v6: true},
		{name: "both", ips: []string{"fd00::1", "10.0.0.1-10.0.0.2"}, v4: true, v6: true},
		{name: "bad entries skipped", ips: []string{"bad", "10.0.0.9-10.0.0.1", "fd00::1"}, v6: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &v2beta1.SpiderReservedIP{Spec: v2beta1.ReservedIPSpec{IPs: ranges(tt.ips...)}}
			if v4, v6 := ReservedFamilies(r); v4 != tt.v4 || v6 != tt.v6 {
				t.Errorf("ReservedFamilies = %v, %v, want %v, %v", v4, v6, tt.v4, tt.v6)
			}
		})
	}
}
