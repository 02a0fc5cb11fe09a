package ipam

import (
	"errors"
	"maps"
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
)

func TestBlockStartAndName(t *testing.T) {
	tests := []struct {
		subnet, addr, start, name string
	}{
		// Blocks of 16 in a subnet of at most 65,536 addresses.
		{"10.0.0.0/16", "10.0.0.0", "10.0.0.0", "p.10.0.0.0"},
		{"10.0.0.0/16", "10.0.1.127", "10.0.1.112", "p.10.0.1.112"},
		{"10.0.0.0/29", "10.0.0.7", "10.0.0.0", "p.10.0.0.0"},     // the subnet is one block
		{"10.0.0.32/27", "10.0.0.63", "10.0.0.48", "p.10.0.0.48"}, // two blocks
		{"fd00::/120", "fd00::7f", "fd00::70", "p.fd00--70"},
		{"fd00::/112", "fd00::ffff", "fd00::fff0", "p.fd00--fff0"},
		// Blocks of 64 in a larger one.
		{"10.0.0.0/15", "10.0.1.127", "10.0.1.64", "p.10.0.1.64"},
		{"10.0.0.0/8", "10.0.0.9", "10.0.0.0", "p.10.0.0.0"},
		{"fd00::/64", "fd00::1:ff", "fd00::1:c0", "p.fd00--1-c0"},
		{"fd00::/111", "fd00::1:ffff", "fd00::1:ffc0", "p.fd00--1-ffc0"},
		// A name starts and ends with a letter or digit: a 0 where "::" would be at
		// either end.
		{"fd00:10:128::/120", "fd00:10:128::c", "fd00:10:128::", "p.fd00-10-128--0"},
		{"::/64", "::5", "::", "p.0--0"},
		{"::/64", "::1:0:0:5", "::1:0:0:0", "p.0--1-0-0-0"},
	}
	for _, tt := range tests {
		start := BlockStart(netip.MustParsePrefix(tt.subnet), netip.MustParseAddr(tt.addr))
		if start.String() != tt.start {
			t.Errorf("BlockStart(%s, %s) = %s, want %s", tt.subnet, tt.addr, start, tt.start)
		}
		if n := BlockName("p", start); n != tt.name {
			t.Errorf("BlockName(p, %s) = %s, want %s", start, n, tt.name)
		}
		if errs := validation.IsDNS1123Subdomain(BlockName("p", start)); len(errs) > 0 {
			t.Errorf("BlockName(p, %s) is not an object name: %v", start, errs)
		}
	}
	long := BlockName(strings.Repeat("a", 199)+"-"+strings.Repeat("b", 53), netip.MustParseAddr("fd00::ffff:ffff:ffff:ffc0"))
	if len(long) > 253 || strings.Contains(long, "-.") {
		t.Errorf("long BlockName %q (%d characters) is not a valid name", long, len(long))
	}
}

func TestGrantBlockSize(t *testing.T) {
	for subnet, want := range map[string]int{"10.0.0.0/24": 16, "10.0.0.0/16": 16, "10.0.0.0/15": 64, "10.0.0.0/8": 64,
		"fd00::/120": 16, "fd00::/112": 16, "fd00::/111": 64, "fd00::/64": 64} {
		if got := GrantBlockSize(netip.MustParsePrefix(subnet)); got != want {
			t.Errorf("GrantBlockSize(%s) = %d, want %d", subnet, got, want)
		}
	}
}

func TestGrantBlockRoundTrip(t *testing.T) {
	subnet := netip.MustParsePrefix("10.0.0.0/8")
	g := &GrantBlock{Start: netip.MustParseAddr("10.0.0.64"), Owners: map[netip.Addr]string{}, Reclaim: map[netip.Addr]string{}}
	for _, a := range []string{"10.0.0.64", "10.0.0.65", "10.0.0.66", "10.0.0.70"} {
		g.Owners[netip.MustParseAddr(a)] = "node-a"
	}
	g.Owners[netip.MustParseAddr("10.0.0.127")] = "node-b"
	g.Reclaim[netip.MustParseAddr("10.0.0.70")] = "tok"
	obj := &ipamv1.IPBlock{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{BlockNodeLabel("gone"): "gone", "keep": "x"}}}
	g.Write("p", obj)
	wantGrants := []ipamv1.NodeAddresses{{Node: "node-a", IPs: []string{"10.0.0.64-10.0.0.66", "10.0.0.70"}}, {Node: "node-b", IPs: []string{"10.0.0.127"}}}
	if len(obj.Spec.Grants) != 2 || strings.Join(obj.Spec.Grants[0].IPs, ",") != strings.Join(wantGrants[0].IPs, ",") || obj.Spec.Grants[1].Node != "node-b" {
		t.Errorf("grants %+v, want %+v", obj.Spec.Grants, wantGrants)
	}
	if len(obj.Spec.Reclaim) != 1 || obj.Spec.Reclaim[0].IPs[0] != "10.0.0.70" || obj.Spec.Reclaim[0].Token != "tok" || obj.Spec.Reclaim[0].Node != "node-a" {
		t.Errorf("reclaim %+v", obj.Spec.Reclaim)
	}
	wantLabels := map[string]string{"keep": "x", BlockPoolLabel: "p", BlockNodeLabel("node-a"): "node-a", BlockNodeLabel("node-b"): "node-b"}
	if !maps.Equal(obj.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", obj.Labels, wantLabels)
	}
	back, err := GrantBlockOf(subnet, obj)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(back.Owners, g.Owners) || !maps.Equal(back.Reclaim, g.Reclaim) || back.Start != g.Start {
		t.Errorf("read back %+v, want %+v", back, g)
	}
}

func TestGrantBlockOfRefuses(t *testing.T) {
	subnet := netip.MustParsePrefix("10.0.0.0/16")
	block := func(start string, grants ...ipamv1.NodeAddresses) *ipamv1.IPBlock {
		return &ipamv1.IPBlock{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: ipamv1.IPBlockSpec{Pool: "p", Start: start, Grants: grants}}
	}
	tests := []struct {
		name string
		b    *ipamv1.IPBlock
		want string
	}{
		{"unaligned start", block("10.0.0.65"), "not the start of a block"},
		{"start outside the subnet", block("10.1.0.0"), "not the start of a block"},
		{"address outside the block", block("10.0.0.64", ipamv1.NodeAddresses{Node: "a", IPs: []string{"10.0.0.128"}}), "outside the block"},
		{"range leaving the block", block("10.0.0.64", ipamv1.NodeAddresses{Node: "a", IPs: []string{"10.0.0.120-10.0.0.130"}}), "outside the block"},
		// A block of 64 where blocks are 16: never read as granting the addresses of
		// the next three blocks.
		{"a block of 64 in a subnet of blocks of 16", block("10.0.0.64", ipamv1.NodeAddresses{Node: "a", IPs: []string{"10.0.0.80"}}), "outside the block"},
		{"two owners", block("10.0.0.64", ipamv1.NodeAddresses{Node: "a", IPs: []string{"10.0.0.64-10.0.0.66"}}, ipamv1.NodeAddresses{Node: "b", IPs: []string{"10.0.0.66"}}), `granted to "a" and "b"`},
		{"not an address", block("10.0.0.64", ipamv1.NodeAddresses{Node: "a", IPs: []string{"ten"}}), "spec.grants"},
	}
	for _, tt := range tests {
		_, err := GrantBlockOf(subnet, tt.b)
		if !errors.Is(err, ErrInvalidBlock) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want ErrInvalidBlock mentioning %q", tt.name, err, tt.want)
		}
	}
}
