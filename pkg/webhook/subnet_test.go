package webhook

import (
	"testing"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// subnetCreateCase is one subnet create and the errors admission must report.
type subnetCreateCase struct {
	name     string
	config   *Config // both families when nil
	subnet   *v2beta1.SpiderSubnet
	existing Existing
	want     []want
}

// subnetCreateCases are TestValidateSubnetCreate's cases; the API-server test replays
// the invalid ones.
func subnetCreateCases() []subnetCreateCase {
	return []subnetCreateCase{
		{
			name: "valid IPv4 subnet with gateway and routes",
			subnet: subnet("s", "10.244.0.0/16", version(4), ips("10.244.100.0-10.244.200.1"), exclude("10.244.150.0-10.244.150.255"),
				gateway("10.244.0.1"), route("10.96.0.0/12", "10.244.0.2")),
		},
		{
			name:   "valid IPv6 subnet without ipVersion",
			subnet: subnet("s", "fd00:10:244::/64", ips("fd00:10:244::100-fd00:10:244::1ff"), gateway("fd00:10:244::1")),
		},
		{
			name: "an Auto EIP template for the auto pools",
			subnet: subnet("s", "10.245.0.0/16", ips("10.245.0.10-10.245.0.200"),
				withEIP(&v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPAuto, ReleaseStrategy: ptr(v2beta1.ReclaimPolicy("10m"))})),
		},
		{
			name: "a Static EIP template, which pools cannot share",
			subnet: subnet("s", "10.245.0.0/16", ips("10.245.0.10-10.245.0.200"),
				withEIP(&v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPStatic, Static: []string{"eipalloc-1"}})),
			want: []want{forbidden("spec.orbweaver.eip.mode", "must be mode Auto")},
		},
		{
			name:   "subnet with host bits",
			subnet: subnet("s", "fd00::1/64"),
			want:   []want{invalid("spec.subnet", "the canonical form is fd00::/64")},
		},
		{
			name:   "IPv6 subnet while IPv6 is disabled",
			config: &v4only,
			subnet: subnet("s", "fd00::/64", version(6)),
			want:   []want{forbidden("spec.ipVersion", "IPv6 is not enabled")},
		},
		{
			name:     "overlapping another SpiderSubnet",
			subnet:   subnet("s", "10.0.5.0/24"),
			existing: Existing{Subnets: subnets(subnet("wide", "10.0.0.0/16"), subnet("v6", "fd00::/64"))},
			want:     []want{forbidden("spec.subnet", `overlaps subnet 10.0.0.0/16 of SpiderSubnet "wide"`)},
		},
		{
			name:     "the same subnet twice",
			subnet:   subnet("s2", "10.0.0.0/24"),
			existing: Existing{Subnets: subnets(subnet("s1", "10.0.0.0/24"))},
			want:     []want{forbidden("spec.subnet", `SpiderSubnet "s1"`)},
		},
		{
			name:     "subnets of the other family never collide",
			subnet:   subnet("s", "10.0.0.0/8"),
			existing: Existing{Subnets: subnets(subnet("v6", "fd00::/8"))},
		},
		{
			name:     "covering a pool with a different subnet",
			subnet:   subnet("s", "10.0.0.0/16"),
			existing: Existing{IPPools: pools(pool("p", "10.0.5.0/24"))},
			want:     []want{forbidden("spec.subnet", `overlaps subnet 10.0.5.0/24 of SpiderIPPool "p"`)},
		},
		{
			name:   "not covering the addresses of an orphan pool of its subnet",
			subnet: subnet("s", "10.0.0.0/24", ips("10.0.0.0-10.0.0.15")),
			existing: Existing{IPPools: pools(
				pool("orphan", "10.0.0.0/24", ips("10.0.0.10-10.0.0.20")),
				pool("inside", "10.0.0.0/24", ips("10.0.0.1-10.0.0.5")))},
			want: []want{forbidden("spec.ips", `do not cover 10.0.0.16-10.0.0.20 (5 addresses) of SpiderIPPool "orphan"`)},
		},
		{
			name:   "gateway inside ips",
			subnet: subnet("s", "10.0.0.0/24", ips("10.0.0.1-10.0.0.100"), gateway("10.0.0.1")),
			want:   []want{invalid("spec.ips[0]", "contains the gateway 10.0.0.1")},
		},
		{
			name:   "IPv6 default route",
			subnet: subnet("s", "fd00::/64", route("::/0", "fd00::1")),
			want:   []want{invalid("spec.routes[0].dst", "is the default route")},
		},
		{
			name: "every problem of a subnet at once",
			subnet: subnet("s", "10.0.0.0/24", version(6), ips("10.0.0.1-10.0.0.300", "fd00::1"), exclude("10.0.1.0"),
				gateway("10.0.0.0.1"), route("10.96.0.0/12", "10.0.0.2"), route("10.96.0.0/12", "10.0.2.2")),
			existing: Existing{Subnets: subnets(subnet("wide", "10.0.0.0/8"))},
			want: []want{
				invalid("spec.ipVersion", "subnet 10.0.0.0/24 is IPv4"),
				invalid("spec.ips[0]", `end "10.0.0.300"`),
				invalid("spec.ips[1]", "is IPv6"),
				invalid("spec.excludeIPs[0]", "is outside subnet"),
				invalid("spec.gateway", "10.0.0.0.1"),
				duplicate("spec.routes[1].dst"),
				invalid("spec.routes[1].gw", "is outside subnet"),
				forbidden("spec.subnet", `SpiderSubnet "wide"`),
			},
		},
	}
}

func TestValidateSubnetCreate(t *testing.T) {
	for _, tt := range subnetCreateCases() {
		t.Run(tt.name, func(t *testing.T) {
			c := both
			if tt.config != nil {
				c = *tt.config
			}
			expectErrors(t, c.ValidateSubnetCreate(tt.subnet, tt.existing), tt.want...)
		})
	}
}

func TestValidateSubnetUpdate(t *testing.T) {
	base := subnet("s", "10.0.0.0/24", version(4), ips("10.0.0.0-10.0.0.99"))
	owned := Existing{IPPools: pools(
		pool("same-cidr", "10.0.0.0/24", ips("10.0.0.10-10.0.0.20")),
		pool("labelled", "10.0.0.0/25", label(LabelOwnerSpiderSubnet, "s"), ips("10.0.0.60-10.0.0.70")),
		pool("stranger", "10.0.0.128/25", ips("10.0.0.130")),
	)}
	tests := []struct {
		name     string
		old, new *v2beta1.SpiderSubnet
		existing Existing
		want     []want
	}{
		{
			name: "subnet and ipVersion are immutable",
			old:  base,
			new:  subnet("s", "fd00::/64", version(6)),
			want: []want{forbidden("spec.subnet", "it was 10.0.0.0/24"), forbidden("spec.ipVersion", "it was 4")},
		},
		{
			name:     "shrinking under a pool with the same subnet",
			old:      base,
			new:      subnet("s", "10.0.0.0/24", version(4), ips("10.0.0.15-10.0.0.99")),
			existing: owned,
			want:     []want{forbidden("spec.ips", `would remove 10.0.0.10-10.0.0.14 (5 addresses) of SpiderIPPool "same-cidr"`)},
		},
		{
			name:     "excluding addresses of a pool the owner label gives it",
			old:      base,
			new:      subnet("s", "10.0.0.0/24", version(4), ips("10.0.0.0-10.0.0.99"), exclude("10.0.0.64")),
			existing: owned,
			want:     []want{forbidden("spec.excludeIPs", `would exclude 10.0.0.64 (1 address) of SpiderIPPool "labelled"`)},
		},
		{
			name:     "both pools at once, and a bad route",
			old:      base,
			new:      subnet("s", "10.0.0.0/24", version(4), ips("10.0.0.20-10.0.0.99"), exclude("10.0.0.70"), route("10.96.0.0/12", "10.0.1.1")),
			existing: owned,
			want: []want{
				forbidden("spec.ips", `10.0.0.10-10.0.0.19 (10 addresses) of SpiderIPPool "same-cidr"`),
				forbidden("spec.excludeIPs", `10.0.0.70 (1 address) of SpiderIPPool "labelled"`),
				invalid("spec.routes[0].gw", "is outside subnet"),
			},
		},
		{
			name:     "shrinking only addresses no pool has",
			old:      base,
			new:      subnet("s", "10.0.0.0/24", version(4), ips("10.0.0.10-10.0.0.20", "10.0.0.60-10.0.0.70")),
			existing: owned,
		},
		{
			name:     "an IPv6 subnet shrunk under its pool",
			old:      subnet("s6", "fd00::/64", ips("fd00::1-fd00::ffff")),
			new:      subnet("s6", "fd00::/64", ips("fd00::1-fd00::ff")),
			existing: Existing{IPPools: pools(pool("p6", "fd00::/64", ips("fd00::f0-fd00::1ff"), exclude("fd00::100-fd00::1fe")))},
			want:     []want{forbidden("spec.ips", `would remove fd00::1ff (1 address) of SpiderIPPool "p6"`)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectErrors(t, both.ValidateSubnetUpdate(tt.old, tt.new, tt.existing), tt.want...)
		})
	}
}

func TestValidateReservedIP(t *testing.T) {
	reserved := func(v *int64, ss ...string) *v2beta1.SpiderReservedIP {
		return &v2beta1.SpiderReservedIP{Spec: v2beta1.ReservedIPSpec{IPVersion: v, IPs: ranges(ss)}}
	}
	tests := []struct {
		name   string
		config *Config // both families when nil
		old    *v2beta1.SpiderReservedIP
		new    *v2beta1.SpiderReservedIP
		want   []want
	}{
		{
			name: "valid IPv4",
			new:  reserved(ptr[int64](4), "10.244.120.10", "10.244.120.19-10.244.120.20"),
		},
		{
			name: "valid IPv6 without ipVersion",
			new:  reserved(nil, "fd00::10-fd00::1f"),
		},
		{
			name: "ipVersion neither 4 nor 6",
			new:  reserved(ptr[int64](7), "10.0.0.1"),
			want: []want{notSupported("spec.ipVersion")},
		},
		{
			name:   "IPv6 while IPv6 is disabled",
			config: &v4only,
			new:    reserved(ptr[int64](6), "fd00::1"),
			want:   []want{forbidden("spec.ipVersion", "IPv6 is not enabled")},
		},
		{
			name:   "derived family disabled is reported at the first entry",
			config: &v6only,
			new:    reserved(nil, "10.0.0.1"),
			want:   []want{forbidden("spec.ips[0]", "IPv4 is not enabled")},
		},
		{
			name: "entries of the other family, reversed, or CIDRs",
			new:  reserved(ptr[int64](4), "10.0.0.1", "fd00::1", "10.0.0.9-10.0.0.1", "10.0.0.0/24"),
			want: []want{
				invalid("spec.ips[1]", "is IPv6, but spec.ipVersion is 4"),
				invalid("spec.ips[2]", "start 10.0.0.9 is after end 10.0.0.1"),
				invalid("spec.ips[3]", "10.0.0.0/24"),
			},
		},
		{
			name: "no ipVersion and nothing to derive it from",
			new:  reserved(nil),
			want: []want{required("spec.ipVersion")},
		},
		{
			name: "without ipVersion, the first entry sets the family",
			new:  reserved(nil, "10.0.0.1", "fd00::1"),
			want: []want{invalid("spec.ips[1]", "is IPv6, but spec.ips[0] is IPv4")},
		},
		{
			name: "ipVersion is immutable",
			old:  reserved(ptr[int64](4), "10.0.0.1"),
			new:  reserved(ptr[int64](6), "fd00::1"),
			want: []want{forbidden("spec.ipVersion", "is immutable; it was 4")},
		},
		{
			name: "ips may change",
			old:  reserved(ptr[int64](4), "10.0.0.1"),
			new:  reserved(ptr[int64](4), "10.0.0.2-10.0.0.9"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := both
			if tt.config != nil {
				c = *tt.config
			}
			if tt.old == nil {
				expectErrors(t, c.ValidateReservedIPCreate(tt.new), tt.want...)
				return
			}
			expectErrors(t, c.ValidateReservedIPUpdate(tt.old, tt.new), tt.want...)
		})
	}
}
