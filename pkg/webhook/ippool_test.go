package webhook

import (
	"testing"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ipPoolCreateCase is one pool create and the errors admission must report.
type ipPoolCreateCase struct {
	name     string
	config   *Config // both families when nil
	pool     *poolT
	existing Existing
	want     []want
}

// ipPoolCreateCases are TestValidateIPPoolCreate's cases; the API-server test replays
// the invalid ones through a real API server.
func ipPoolCreateCases() []ipPoolCreateCase {
	return []ipPoolCreateCase{
		{
			name: "valid IPv4 pool with every field",
			pool: pool("p", "10.0.0.0/24", version(4), ips("10.0.0.10-10.0.0.20", "10.0.0.30"), exclude("10.0.0.15"),
				gateway("10.0.0.1"), route("10.96.0.0/12", "10.0.0.2"), route("172.16.0.0/16", "10.0.0.3"),
				podAffinity(&metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}),
				nodeAffinity(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "rack", Operator: metav1.LabelSelectorOpIn, Values: []string{"r1"}}}}),
				multus("kube-system/macvlan-conf", "ipvlan-conf")),
		},
		{
			name: "valid IPv6 pool whose gateway is excluded from its ips",
			pool: pool("p", "fd00:10::/120", ips("fd00:10::1-fd00:10::ff"), exclude("fd00:10::1"), gateway("fd00:10::1"),
				route("fd00:99::/64", "fd00:10::2")),
		},
		{
			name: "valid pool with a subnet and nothing else",
			pool: pool("p", "10.0.0.0/24"),
		},
		{
			name: "subnet missing",
			pool: pool("p", "", ips("10.0.0.1")),
			want: []want{required("spec.subnet")},
		},
		{
			name: "subnet with host bits names the canonical form",
			pool: pool("p", "10.0.0.1/24"),
			want: []want{invalid("spec.subnet", "the canonical form is 10.0.0.0/24")},
		},
		{
			name: "IPv6 subnet with host bits",
			pool: pool("p", "fd00::1/64"),
			want: []want{invalid("spec.subnet", "the canonical form is fd00::/64")},
		},
		{
			name: "subnet not a CIDR, and an ips entry not an IP",
			pool: pool("p", "10.0.0.0/33", ips("10.0.0.300")),
			want: []want{invalid("spec.subnet", "10.0.0.0/33"), invalid("spec.ips[0]", "10.0.0.300")},
		},
		{
			name: "IPv4-mapped IPv6 subnet",
			pool: pool("p", "::ffff:10.0.0.0/120"),
			want: []want{invalid("spec.subnet", "IPv4-mapped")},
		},
		{
			name: "ipVersion neither 4 nor 6",
			pool: pool("p", "10.0.0.0/24", version(5)),
			want: []want{notSupported("spec.ipVersion")},
		},
		{
			name: "ipVersion contradicts the subnet",
			pool: pool("p", "10.0.0.0/24", version(6)),
			want: []want{invalid("spec.ipVersion", "subnet 10.0.0.0/24 is IPv4")},
		},
		{
			name:   "IPv6 pool while IPv6 is disabled",
			config: &v4only,
			pool:   pool("p", "fd00::/64", version(6)),
			want:   []want{forbidden("spec.ipVersion", "IPv6 is not enabled in this cluster (enableIPv6 is false)")},
		},
		{
			name:   "IPv4 pool without ipVersion while IPv4 is disabled is reported at the subnet",
			config: &v6only,
			pool:   pool("p", "10.0.0.0/24"),
			want:   []want{forbidden("spec.subnet", "IPv4 is not enabled")},
		},
		{
			name: "ips malformed, reversed, of the other family, outside and reaching outside the subnet",
			pool: pool("p", "10.0.0.0/24", ips("10.0.0.1-10.0.0.x", "10.0.0.9-10.0.0.1", "fd00::1", "10.0.1.5", "10.0.0.250-10.0.1.5", "10.0.0.5")),
			want: []want{
				invalid("spec.ips[0]", `end "10.0.0.x"`),
				invalid("spec.ips[1]", "start 10.0.0.9 is after end 10.0.0.1"),
				invalid("spec.ips[2]", "is IPv6, but subnet 10.0.0.0/24 is IPv4"),
				invalid("spec.ips[3]", "is outside subnet 10.0.0.0/24"),
				invalid("spec.ips[4]", "reaches outside subnet 10.0.0.0/24"),
			},
		},
		{
			name: "a range mixing families",
			pool: pool("p", "10.0.0.0/24", ips("10.0.0.1-fd00::1")),
			want: []want{invalid("spec.ips[0]", "mixes IPv4 and IPv6")},
		},
		{
			name: "excludeIPs are checked like ips",
			pool: pool("p", "10.0.0.0/24", ips("10.0.0.1-10.0.0.9"), exclude("10.0.0.1 ", "10.0.1.1")),
			want: []want{invalid("spec.excludeIPs[0]", "contains whitespace"), invalid("spec.excludeIPs[1]", "is outside subnet")},
		},
		{
			name: "gateway not an IP",
			pool: pool("p", "10.0.0.0/24", gateway("10.0.0.256")),
			want: []want{invalid("spec.gateway", "10.0.0.256")},
		},
		{
			name: "gateway outside the subnet",
			pool: pool("p", "10.0.0.0/24", gateway("10.0.1.1")),
			want: []want{invalid("spec.gateway", "is outside subnet 10.0.0.0/24")},
		},
		{
			name: "gateway of the other family",
			pool: pool("p", "10.0.0.0/24", gateway("fd00::1")),
			want: []want{invalid("spec.gateway", "is IPv6, but subnet 10.0.0.0/24 is IPv4")},
		},
		{
			name: "gateway inside ips is reported at the entry holding it",
			pool: pool("p", "10.0.0.0/24", ips("10.0.0.20", "10.0.0.1-10.0.0.10"), gateway("10.0.0.1")),
			want: []want{invalid("spec.ips[1]", "contains the gateway 10.0.0.1; add it to spec.excludeIPs")},
		},
		{
			name: "a malformed ips entry hides neither the gateway in another entry nor an overlapping subnet",
			pool: pool("p", "10.0.0.0/24", ips("10.0.0.1-10.0.0.x", "10.0.0.1-10.0.0.10"), gateway("10.0.0.1")),
			existing: Existing{
				IPPools: pools(pool("wide", "10.0.0.0/16")),
				Subnets: subnets(subnet("s", "10.0.0.0/20")),
			},
			want: []want{
				invalid("spec.ips[0]", `end "10.0.0.x"`),
				invalid("spec.ips[1]", "contains the gateway 10.0.0.1"),
				forbidden("spec.subnet", `SpiderIPPool "wide"`),
				forbidden("spec.subnet", `SpiderSubnet "s"`),
			},
		},
		{
			name: "a malformed excludeIPs entry leaves open whether the gateway is excluded",
			pool: pool("p", "10.0.0.0/24", ips("10.0.0.1-10.0.0.10"), exclude("10.0.0.1/32"), gateway("10.0.0.1")),
			want: []want{invalid("spec.excludeIPs[0]", "10.0.0.1/32")},
		},
		{
			name: "route destination not a CIDR",
			pool: pool("p", "10.0.0.0/24", route("10.96.0.0", "10.0.0.2")),
			want: []want{invalid("spec.routes[0].dst", "no '/'")},
		},
		{
			name: "route destination with host bits",
			pool: pool("p", "10.0.0.0/24", route("10.96.0.1/12", "10.0.0.2")),
			want: []want{invalid("spec.routes[0].dst", "the canonical form is 10.96.0.0/12")},
		},
		{
			name: "default routes are the gateway's job",
			pool: pool("p", "10.0.0.0/24", route("10.96.0.0/12", "10.0.0.2"), route("0.0.0.0/0", "10.0.0.1")),
			want: []want{invalid("spec.routes[1].dst", "is the default route; set spec.gateway instead")},
		},
		{
			name: "duplicate route destination",
			pool: pool("p", "10.0.0.0/24", route("10.96.0.0/12", "10.0.0.2"), route("10.97.0.0/16", "10.0.0.2"), route("10.96.0.0/12", "10.0.0.3")),
			want: []want{duplicate("spec.routes[2].dst")},
		},
		{
			name: "route next hop outside the subnet, and a route with neither field",
			pool: pool("p", "10.0.0.0/24", route("10.96.0.0/12", "10.0.1.1"), route("", "")),
			want: []want{invalid("spec.routes[0].gw", "is outside subnet"), required("spec.routes[1].dst"), required("spec.routes[1].gw")},
		},
		{
			name: "IPv6 route in an IPv4 pool",
			pool: pool("p", "10.0.0.0/24", route("fd00:99::/64", "fd00::2")),
			want: []want{invalid("spec.routes[0].dst", "is IPv6"), invalid("spec.routes[0].gw", "is IPv6")},
		},
		{
			name: "auto pool with the podAffinity the auto-pool controller writes",
			pool: pool("auto4-web-eth0-52c0d", "10.0.0.0/24", ips("10.0.0.10-10.0.0.14"), auto()),
		},
		{
			name: "auto pool whose podAffinity selects more than its application",
			pool: pool("auto4-web-eth0-52c0d", "10.0.0.0/24", ips("10.0.0.10-10.0.0.14"), auto(), func(p *poolT) {
				p.Spec.PodAffinity.MatchLabels["team"] = "net"
				p.Spec.PodAffinity.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpExists}}
			}),
			want: []want{
				forbidden("spec.podAffinity.matchLabels[team]", "an auto pool's podAffinity selects its application's pods by ipam.spidernet.io/app-api-group, ipam.spidernet.io/app-api-version, ipam.spidernet.io/app-kind, ipam.spidernet.io/app-name, ipam.spidernet.io/app-namespace only"),
				forbidden("spec.podAffinity.matchExpressions", "by matchLabels only"),
			},
		},
		{
			name: "empty podAffinity",
			pool: pool("p", "10.0.0.0/24", podAffinity(&metav1.LabelSelector{})),
			want: []want{invalid("spec.podAffinity", "would admit every pod")},
		},
		{
			name: "malformed selectors",
			pool: pool("p", "10.0.0.0/24",
				podAffinity(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}}),
				nodeAffinity(&metav1.LabelSelector{MatchLabels: map[string]string{"bad key!": "x"}})),
			want: []want{invalid("spec.podAffinity.matchExpressions[0].operator", "not a valid selector operator"), invalid("spec.nodeAffinity.matchLabels", "bad key!")},
		},
		{
			name: "multusName entries not ns/name or name, and a duplicate",
			pool: pool("p", "10.0.0.0/24", multus("kube-system/macvlan", "Bad_Name", "a/b/c", "kube-system/macvlan", "/x")),
			want: []want{
				invalid("spec.multusName[1]", `name "Bad_Name" is not a DNS subdomain`),
				invalid("spec.multusName[2]", `name "b/c" is not a DNS subdomain`),
				duplicate("spec.multusName[3]"),
				invalid("spec.multusName[4]", `namespace "" is not a DNS label`),
			},
		},
		{
			name:     "subnet overlapping another pool's different subnet",
			pool:     pool("p", "10.0.0.0/24"),
			existing: Existing{IPPools: pools(pool("wide", "10.0.0.0/16"), pool("other", "10.1.0.0/24"))},
			want:     []want{forbidden("spec.subnet", `overlaps subnet 10.0.0.0/16 of SpiderIPPool "wide"`)},
		},
		{
			name:     "pools of the other family never collide",
			pool:     pool("p", "10.0.0.0/24", ips("10.0.0.1-10.0.0.9")),
			existing: Existing{IPPools: pools(pool("v6", "fd00::/64", ips("fd00::1-fd00::9")))},
		},
		{
			name:     "same subnet, shared addresses",
			pool:     pool("p", "10.0.0.0/24", ips("10.0.0.15-10.0.0.30")),
			existing: Existing{IPPools: pools(pool("a", "10.0.0.0/24", ips("10.0.0.10-10.0.0.20")), pool("b", "10.0.0.0/24", ips("10.0.0.100")))},
			want:     []want{forbidden("spec.ips", `shares 10.0.0.15-10.0.0.20 (6 addresses) with SpiderIPPool "a"`)},
		},
		{
			name:     "same subnet, shared addresses only where one of them excludes them",
			pool:     pool("p", "10.0.0.0/24", ips("10.0.0.15-10.0.0.30"), exclude("10.0.0.15-10.0.0.17")),
			existing: Existing{IPPools: pools(pool("a", "10.0.0.0/24", ips("10.0.0.10-10.0.0.20"), exclude("10.0.0.18-10.0.0.20")))},
		},
		{
			name: "addresses outside the owning SpiderSubnet's",
			pool: pool("p", "10.0.0.0/24", ips("10.0.0.40-10.0.0.60")),
			existing: Existing{Subnets: subnets(
				subnet("s", "10.0.0.0/24", ips("10.0.0.0-10.0.0.99"), exclude("10.0.0.50")),
				subnet("s6", "fd00::/64", ips("fd00::1")))},
			want: []want{forbidden("spec.ips", `holds 10.0.0.50 (1 address) outside the addresses of SpiderSubnet "s"`)},
		},
		{
			name:     "pool inside a SpiderSubnet's range with a different subnet",
			pool:     pool("p", "10.0.1.0/24"),
			existing: Existing{Subnets: subnets(subnet("s", "10.0.0.0/16"))},
			want:     []want{forbidden("spec.subnet", `overlaps subnet 10.0.0.0/16 of SpiderSubnet "s"`)},
		},
		{
			name: "malformed existing objects are skipped, not blamed",
			pool: pool("p", "10.0.0.0/24", ips("10.0.0.1-10.0.0.9")),
			existing: Existing{
				IPPools: pools(pool("junk", "junk"), pool("bad-ips", "10.0.0.0/24", ips("10.0.0.x"))),
				Subnets: subnets(subnet("bad-ips", "10.0.0.0/24", ips("x"))),
			},
		},
		{
			name:     "the pool itself in the list is not a conflict",
			pool:     pool("p", "10.0.0.0/24", ips("10.0.0.1-10.0.0.9")),
			existing: Existing{IPPools: pools(pool("p", "10.0.0.0/24", ips("10.0.0.1-10.0.0.9")))},
		},
		{
			name: "every problem of an IPv6 pool at once",
			pool: pool("p", "fd00::/64", version(4),
				ips("fd00::10-fd00::1", "10.0.0.1", "fd00:1::1"), exclude("fd00::zz"), gateway("fd00:1::1"),
				route("::/0", "fd00::1"), route("fd00:99::/64", "fd00:1::2"),
				podAffinity(&metav1.LabelSelector{}), multus("ns/")),
			want: []want{
				invalid("spec.ipVersion", "subnet fd00::/64 is IPv6"),
				invalid("spec.ips[0]", "start fd00::10 is after end fd00::1"),
				invalid("spec.ips[1]", "is IPv4, but subnet fd00::/64 is IPv6"),
				invalid("spec.ips[2]", "is outside subnet fd00::/64"),
				invalid("spec.excludeIPs[0]", "fd00::zz"),
				invalid("spec.gateway", "is outside subnet fd00::/64"),
				invalid("spec.routes[0].dst", "is the default route"),
				invalid("spec.routes[1].gw", "is outside subnet fd00::/64"),
				invalid("spec.podAffinity", "empty"),
				invalid("spec.multusName[0]", `name "" is not a DNS subdomain`),
			},
		},
		{
			name: "dual-stack mix-up: IPv6 values in an IPv4 pool",
			pool: pool("p", "10.0.0.0/24", version(6), ips("fd00::1-fd00::5"), gateway("fd00::1"), route("fd00:99::/64", "10.0.0.1")),
			want: []want{
				invalid("spec.ipVersion", "subnet 10.0.0.0/24 is IPv4"),
				invalid("spec.ips[0]", "is IPv6, but subnet 10.0.0.0/24 is IPv4"),
				invalid("spec.gateway", "is IPv6"),
				invalid("spec.routes[0].dst", "is IPv6"),
			},
		},
		{
			name: "valid Auto EIP pool with attributes",
			pool: pool("p", "10.0.0.0/24", ips("10.0.0.10-10.0.0.20"), withEIP(&v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPAuto,
				Bandwidth: ptr[int32](100), ISP: "BGP", Tags: map[string]string{"team": "probe"}, ReleaseStrategy: ptr(v2beta1.ReclaimPolicy("10m"))})),
		},
		{
			name: "valid Static EIP pool",
			pool: pool("p", "10.0.0.0/24", ips("10.0.0.10-10.0.0.11"), withEIP(&v2beta1.EIPSpec{Provider: "alibaba", Mode: v2beta1.EIPStatic, Static: []string{"eip-a", "eip-b"}})),
		},
		{
			name: "Static EIP pool without EIPs",
			pool: pool("p", "10.0.0.0/24", ips("10.0.0.10"), withEIP(&v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPStatic})),
			want: []want{required("spec.orbweaver.eip.static")},
		},
		{
			name: "Static EIP pool with Auto's attributes, and an EIP listed twice",
			pool: pool("p", "10.0.0.0/24", ips("10.0.0.10"), withEIP(&v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPStatic,
				Static: []string{"eip-a", "eip-a"}, Bandwidth: ptr[int32](5), ReleaseStrategy: ptr(v2beta1.ReclaimNever)})),
			want: []want{forbidden("spec.orbweaver.eip.bandwidth", "Auto only"), forbidden("spec.orbweaver.eip.releaseStrategy", "never released"),
				duplicate("spec.orbweaver.eip.static[1]")},
		},
		{
			name: "Auto EIP pool listing EIPs, with a zero release strategy",
			pool: pool("p", "10.0.0.0/24", ips("10.0.0.10"), withEIP(&v2beta1.EIPSpec{Provider: "tencent", Mode: v2beta1.EIPAuto,
				Static: []string{"eip-a"}, ReleaseStrategy: ptr(v2beta1.ReclaimPolicy("0s"))})),
			want: []want{forbidden("spec.orbweaver.eip.static", "mode Static"), invalid("spec.orbweaver.eip.releaseStrategy", "positive duration")},
		},
		{
			name: "Auto EIP pool with the StatefulSet-only reclaim policy Reserved",
			pool: pool("p", "10.0.0.0/24", ips("10.0.0.10"), withEIP(&v2beta1.EIPSpec{Provider: "alibaba", Mode: v2beta1.EIPAuto,
				ReleaseStrategy: ptr(v2beta1.ReclaimReserved)})),
			want: []want{invalid("spec.orbweaver.eip.releaseStrategy", "applies to IPs only")},
		},
		{
			name: "a pool keeping StatefulSet IPs until the StatefulSet is deleted",
			pool: pool("p", "10.0.0.0/24", ips("10.0.0.10"), func(sp *v2beta1.SpiderIPPool) {
				sp.Spec.Orbweaver = &v2beta1.IPPoolOrbweaverSpec{ReclaimPolicy: ptr(v2beta1.ReclaimReserved)}
			}),
		},
		{
			name: "a Static EIP another pool lists",
			pool: pool("p", "10.0.0.0/24", ips("10.0.0.10"), withEIP(&v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPStatic, Static: []string{"eip-b", "eip-x"}})),
			existing: Existing{IPPools: []v2beta1.SpiderIPPool{*pool("other", "10.1.0.0/24", ips("10.1.0.10"),
				withEIP(&v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPStatic, Static: []string{"eip-x"}}))}},
			want: []want{forbidden("spec.orbweaver.eip.static[1]", `listed by SpiderIPPool "other"`)},
		},
		{
			name: "subnet unusable: the family comes from ipVersion",
			pool: pool("p", "fd00::/200", version(6), ips("10.0.0.1"), gateway("fd00::1")),
			want: []want{invalid("spec.subnet", "fd00::/200"), invalid("spec.ips[0]", "is IPv4, but spec.ipVersion is 6")},
		},
	}
}

func TestValidateIPPoolCreate(t *testing.T) {
	for _, tt := range ipPoolCreateCases() {
		t.Run(tt.name, func(t *testing.T) {
			c := both
			if tt.config != nil {
				c = *tt.config
			}
			expectErrors(t, c.ValidateIPPoolCreate(tt.pool, tt.existing), tt.want...)
		})
	}
}

func TestValidateIPPoolUpdate(t *testing.T) {
	base := pool("p", "10.0.0.0/24", version(4), ips("10.0.0.10-10.0.0.20"))
	held := with(base, allocated(t, []string{"10.0.0.12", "10.0.0.13", "10.0.0.19"}, []string{"10.0.0.20"}))
	inGrants := with(base, grants())
	v6 := pool("p6", "fd00::/64", version(6), ips("fd00::10-fd00::ff"))
	v6held := with(v6, allocated(t, []string{"fd00::80"}, nil))
	tests := []struct {
		name     string
		old, new *poolT
		existing Existing
		want     []want
	}{
		{
			name: "subnet and ipVersion are immutable",
			old:  base,
			new:  with(base, func(p *poolT) { p.Spec.Subnet = "10.0.1.0/24"; p.Spec.IPs = nil }, version(6)),
			want: []want{
				forbidden("spec.subnet", "is immutable; it was 10.0.0.0/24"),
				forbidden("spec.ipVersion", "is immutable; it was 4"),
				invalid("spec.ipVersion", "subnet 10.0.1.0/24 is IPv4"),
			},
		},
		{
			name: "ipVersion may be set where it was unset",
			old:  pool("p", "10.0.0.0/24"),
			new:  pool("p", "10.0.0.0/24", version(4)),
		},
		{
			name: "ipVersion may not be cleared",
			old:  base,
			new:  with(base, func(p *poolT) { p.Spec.IPVersion = nil }),
			want: []want{forbidden("spec.ipVersion", "is immutable")},
		},
		{
			name: "removing an address a pod holds",
			old:  held,
			new:  with(held, ips("10.0.0.10-10.0.0.18", "10.0.0.20")),
			want: []want{forbidden("spec.ips", "would remove 10.0.0.19 (1 address) allocated to pods")},
		},
		{
			name: "excluding addresses pods hold",
			old:  held,
			new:  with(held, exclude("10.0.0.11-10.0.0.13")),
			want: []want{forbidden("spec.excludeIPs", "would exclude 10.0.0.12-10.0.0.13 (2 addresses) allocated to pods")},
		},
		{
			name: "removing an address in a node's reserve",
			old:  held,
			new:  with(held, ips("10.0.0.10-10.0.0.19")),
			want: []want{forbidden("spec.ips", "would remove 10.0.0.20 (1 address) held in reserve by node agents")},
		},
		{
			name: "every in-use removal and a format error at once",
			old:  held,
			new:  with(held, ips("10.0.0.10-10.0.0.18", "10.0.0.20"), exclude("10.0.0.13", "10.0.0.20"), route("10.96.0.0/12", "10.0.1.1")),
			want: []want{
				forbidden("spec.ips", "would remove 10.0.0.19 (1 address) allocated to pods"),
				forbidden("spec.excludeIPs", "would exclude 10.0.0.13 (1 address) allocated to pods"),
				forbidden("spec.excludeIPs", "would exclude 10.0.0.20 (1 address) held in reserve"),
				invalid("spec.routes[0].gw", "is outside subnet"),
			},
		},
		{
			name: "removing free addresses is fine",
			old:  held,
			new:  with(held, ips("10.0.0.12-10.0.0.13", "10.0.0.19-10.0.0.20")),
		},
		{
			name: "an IPv6 pool shrunk past an allocated address",
			old:  v6held,
			new:  with(v6held, ips("fd00::10-fd00::7f")),
			want: []want{forbidden("spec.ips", "would remove fd00::80 (1 address) allocated to pods")},
		},
		{
			name: "records that do not decode block a shrink",
			old:  with(base, rawRecords([]byte{9, 9, 9})),
			new:  with(base, ips("10.0.0.10-10.0.0.15")),
			want: []want{internal("status.orbweaver.records", "cannot tell which of the removed addresses are allocated")},
		},
		{
			name: "records that do not decode do not block other edits",
			old:  with(base, rawRecords([]byte{9, 9, 9})),
			new:  with(base, rawRecords([]byte{9, 9, 9}), gateway("10.0.0.1"), label("team", "net")),
		},
		{
			name: "a malformed update is reported without guessing at allocations",
			old:  held,
			new:  with(held, ips("10.0.0.10-10.0.0.1x")),
			want: []want{invalid("spec.ips[0]", `end "10.0.0.1x"`)},
		},
		{
			name:     "Grants: excluding an address an endpoint holds",
			old:      inGrants,
			new:      with(inGrants, exclude("10.0.0.12-10.0.0.14")),
			existing: Existing{Endpoints: endpoints("p", "10.0.0.12", "10.0.0.13")},
			want:     []want{forbidden("spec.excludeIPs", "would exclude 10.0.0.12-10.0.0.13 (2 addresses) allocated to pods")},
		},
		{
			name:     "Grants: dropping an address an endpoint holds from ips",
			old:      inGrants,
			new:      with(inGrants, ips("10.0.0.10-10.0.0.18")),
			existing: Existing{Endpoints: endpoints("p", "10.0.0.12", "10.0.0.19")},
			want:     []want{forbidden("spec.ips", "would remove 10.0.0.19 (1 address) allocated to pods")},
		},
		{
			// Granted to a node or not, an address no pod holds may go: the node's agent
			// gives back what leaves the pool.
			name:     "Grants: addresses no endpoint holds may go",
			old:      inGrants,
			new:      with(inGrants, ips("10.0.0.10-10.0.0.15"), exclude("10.0.0.13")),
			existing: Existing{Endpoints: append(endpoints("p", "10.0.0.12"), endpoints("q", "10.0.0.13", "10.0.0.19")...)},
		},
		{
			name:     "Records: endpoints are not what holds",
			old:      base,
			new:      with(base, ips("10.0.0.10-10.0.0.15")),
			existing: Existing{Endpoints: endpoints("p", "10.0.0.19")},
		},
		{
			name: "an auto pool's podAffinity given another label",
			old:  pool("auto4-web-eth0-52c0d", "10.0.0.0/24", version(4), auto()),
			new:  pool("auto4-web-eth0-52c0d", "10.0.0.0/24", version(4), auto(), func(p *poolT) { p.Spec.PodAffinity.MatchLabels["team"] = "net" }),
			want: []want{forbidden("spec.podAffinity.matchLabels[team]", "by ipam.spidernet.io/app-api-group")},
		},
		{
			name: "an auto pool's podAffinity stored with another label does not block unrelated edits",
			old:  pool("auto4-web-eth0-52c0d", "10.0.0.0/24", version(4), auto(), func(p *poolT) { p.Spec.PodAffinity.MatchLabels["team"] = "net" }),
			new: pool("auto4-web-eth0-52c0d", "10.0.0.0/24", version(4), auto(), func(p *poolT) { p.Spec.PodAffinity.MatchLabels["team"] = "net" },
				gateway("10.0.0.1")),
		},
		{
			name:     "adding addresses another pool has",
			old:      base,
			new:      with(base, ips("10.0.0.10-10.0.0.20", "10.0.0.105")),
			existing: Existing{IPPools: pools(base, pool("q", "10.0.0.0/24", ips("10.0.0.100-10.0.0.110")))},
			want:     []want{forbidden("spec.ips", `shares 10.0.0.105 (1 address) with SpiderIPPool "q"`)},
		},
		{
			name:     "an older overlap does not block unrelated edits",
			old:      pool("p", "10.0.0.0/24", ips("10.0.0.1-10.0.0.9")),
			new:      pool("p", "10.0.0.0/24", ips("10.0.0.1-10.0.0.9"), gateway("10.0.0.254")),
			existing: Existing{IPPools: pools(pool("q", "10.0.0.0/24", ips("10.0.0.5"))), Subnets: subnets(subnet("s", "10.0.0.0/24", ips("10.0.0.1")))},
		},
		{
			name:     "adding addresses outside the owning SpiderSubnet's",
			old:      base,
			new:      with(base, ips("10.0.0.10-10.0.0.60")),
			existing: Existing{Subnets: subnets(subnet("s", "10.0.0.0/24", ips("10.0.0.0-10.0.0.50")))},
			want:     []want{forbidden("spec.ips", `holds 10.0.0.51-10.0.0.60 (10 addresses) outside the addresses of SpiderSubnet "s"`)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectErrors(t, both.ValidateIPPoolUpdate(tt.old, tt.new, tt.existing), tt.want...)
		})
	}
}

func TestInUseMessageStaysShort(t *testing.T) {
	// 200 scattered allocations removed at once: the message lists a few and counts the rest.
	var held []string
	for i := 0; i < 200; i++ {
		held = append(held, "10.0."+itoa(i)+".1")
	}
	old := pool("p", "10.0.0.0/16", ips("10.0.0.0-10.0.255.255"))
	old = with(old, allocated(t, held, nil))
	errs := both.ValidateIPPoolUpdate(old, with(old, ips("10.0.255.0-10.0.255.255")), Existing{})
	expectErrors(t, errs, forbidden("spec.ips", "10.0.0.1, 10.0.1.1, 10.0.2.1, 10.0.3.1 and 196 more ranges (200 addresses in all)"))
}
