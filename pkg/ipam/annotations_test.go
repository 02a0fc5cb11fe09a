package ipam

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// wantBad checks that err wraps ErrBadAnnotation and its message holds every fragment
// (the key, the offending part, the advice).
func wantBad(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if !errors.Is(err, ErrBadAnnotation) {
		t.Fatalf("error = %v, want one wrapping ErrBadAnnotation", err)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
}

func TestParseIPPool(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		want    IPPoolAnnotation
		wantErr []string // fragments of the ErrBadAnnotation message; nil for success
	}{
		{name: "dual stack", value: `{"ipv4":["a","b"],"ipv6":["c"]}`,
			want: IPPoolAnnotation{IPv4: []string{"a", "b"}, IPv6: []string{"c"}}},
		{name: "ipv4 only", value: `{"ipv4":["a"]}`, want: IPPoolAnnotation{IPv4: []string{"a"}}},
		{name: "interface and cleangateway accepted", value: `{"interface":"net1","ipv6":["v6-*"],"cleangateway":true}`,
			want: IPPoolAnnotation{Interface: "net1", IPv6: []string{"v6-*"}, CleanGateway: true}},
		{name: "bad JSON", value: `{"ipv4":["a"]`, wantErr: []string{AnnoPodIPPool, "cut short", `write {"ipv4"`}},
		{name: "syntax error names the place", value: `{"ipv4":[a]}`, wantErr: []string{AnnoPodIPPool, "not valid JSON", `"a]}"`}},
		{name: "string where a list is expected", value: `{"ipv4":"a"}`, wantErr: []string{`field "ipv4"`, "a list of names"}},
		{name: "array instead of object", value: `[{"ipv4":["a"]}]`, wantErr: []string{"the value", "an object"}},
		{name: "legacy key", value: `{"ipv4pools":["a"]}`, wantErr: []string{`"ipv4pools"`, `use "ipv4"`}},
		{name: "unknown key ignored, as SpiderPool does", value: `{"ipv4":["a"],"vlan":3}`, want: IPPoolAnnotation{IPv4: []string{"a"}}},
		{name: "trailing data", value: `{"ipv4":["a"]} {}`, wantErr: []string{"more after the JSON value"}},
		{name: "empty value", value: ``, wantErr: []string{"empty"}},
		{name: "no pool", value: `{}`, wantErr: []string{"names no pool"}},
		{name: "null", value: `null`, wantErr: []string{"names no pool"}},
		{name: "empty name", value: `{"ipv4":["a",""]}`, wantErr: []string{`"ipv4"`, "name 1 is empty"}},
		{name: "duplicate name", value: `{"ipv6":["a","b","a"]}`, wantErr: []string{`"ipv6"`, `pool "a" is named twice`}},
		{name: "whitespace is not trimmed", value: `{"ipv4":[" a"]}`, wantErr: []string{`" a"`, "whitespace"}},
		{name: "malformed wildcard", value: `{"ipv4":["a["]}`, wantErr: []string{`"a["`, "malformed"}},
		{name: "bad interface", value: `{"interface":"a/b","ipv4":["a"]}`, wantErr: []string{`"a/b"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIPPool(tt.value)
			if tt.wantErr != nil {
				wantBad(t, err, tt.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseIPPools(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		want    []IPPoolAnnotation
		wantErr []string
	}{
		{name: "named interfaces", value: `[{"interface":"eth0","ipv4":["a"]},{"interface":"eth1","ipv4":["b"],"ipv6":["c"],"cleangateway":true}]`,
			want: []IPPoolAnnotation{{Interface: "eth0", IPv4: []string{"a"}}, {Interface: "eth1", IPv4: []string{"b"}, IPv6: []string{"c"}, CleanGateway: true}}},
		{name: "unnamed interfaces follow Multus naming", value: `[{"ipv4":["a"]},{"ipv4":["b"]},{"ipv6":["c"]}]`,
			want: []IPPoolAnnotation{{Interface: "eth0", IPv4: []string{"a"}}, {Interface: "net1", IPv4: []string{"b"}}, {Interface: "net2", IPv6: []string{"c"}}}},
		{name: "same pool on two interfaces is allowed", value: `[{"ipv4":["a"]},{"ipv4":["a"]}]`,
			want: []IPPoolAnnotation{{Interface: "eth0", IPv4: []string{"a"}}, {Interface: "net1", IPv4: []string{"a"}}}},
		{name: "mixed interface set and unset", value: `[{"interface":"eth0","ipv4":["a"]},{"ipv4":["b"]}]`,
			wantErr: []string{AnnoPodIPPools, "item(s) 1", "every item or on none"}},
		{name: "duplicate interface", value: `[{"interface":"net1","ipv4":["a"]},{"interface":"net1","ipv4":["b"]}]`,
			wantErr: []string{"items 0 and 1", `"net1"`}},
		{name: "empty array", value: `[]`, wantErr: []string{"names no interface"}},
		{name: "object instead of array", value: `{"ipv4":["a"]}`, wantErr: []string{"a list"}},
		{name: "item names no pool", value: `[{"interface":"eth0"}]`, wantErr: []string{"item 0 (interface eth0)", "names no pool"}},
		{name: "duplicate pool in one list", value: `[{"ipv4":["a","a"]}]`, wantErr: []string{`pool "a" is named twice`}},
		{name: "empty name", value: `[{"ipv4":[""]}]`, wantErr: []string{"name 0 is empty"}},
		{name: "bad JSON", value: `[{"ipv4":["a"]},]`, wantErr: []string{"not valid JSON"}},
		{name: "cleangateway not a bool", value: `[{"ipv4":["a"],"cleangateway":"yes"}]`, wantErr: []string{"cleangateway", "true or false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIPPools(tt.value)
			if tt.wantErr != nil {
				wantBad(t, err, tt.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseSubnets(t *testing.T) {
	tests := []struct {
		name    string
		key     string // AnnoPodSubnet or AnnoPodSubnets
		value   string
		want    []SubnetAnnotation
		wantErr []string
	}{
		{name: "single defaults to eth0", key: AnnoPodSubnet, value: `{"ipv4":["s1"],"ipv6":["s2"]}`,
			want: []SubnetAnnotation{{Interface: "eth0", IPv4: []string{"s1"}, IPv6: []string{"s2"}}}},
		{name: "single with interface", key: AnnoPodSubnet, value: `{"interface":"net1","ipv4":["s1"]}`,
			want: []SubnetAnnotation{{Interface: "net1", IPv4: []string{"s1"}}}},
		{name: "single names nothing", key: AnnoPodSubnet, value: `{"interface":"eth0"}`, wantErr: []string{AnnoPodSubnet, "names no SpiderSubnet"}},
		{name: "single wildcard", key: AnnoPodSubnet, value: `{"ipv4":["s*"]}`, wantErr: []string{"not wildcards", `"s*"`}},
		{name: "multi named", key: AnnoPodSubnets, value: `[{"interface":"eth0","ipv4":["s1"]},{"interface":"net1","ipv4":["s2"]}]`,
			want: []SubnetAnnotation{{Interface: "eth0", IPv4: []string{"s1"}}, {Interface: "net1", IPv4: []string{"s2"}}}},
		{name: "multi unnamed", key: AnnoPodSubnets, value: `[{"ipv4":["s1"]},{"ipv6":["s2"]}]`,
			want: []SubnetAnnotation{{Interface: "eth0", IPv4: []string{"s1"}}, {Interface: "net1", IPv6: []string{"s2"}}}},
		{name: "multi same subnet twice", key: AnnoPodSubnets, value: `[{"interface":"eth0","ipv4":["s1"]},{"interface":"net1","ipv4":["s1"]}]`,
			wantErr: []string{AnnoPodSubnets, `SpiderSubnet "s1"`, "eth0", "net1"}},
		{name: "multi duplicate interface", key: AnnoPodSubnets, value: `[{"interface":"eth0","ipv4":["s1"]},{"interface":"eth0","ipv4":["s2"]}]`,
			wantErr: []string{"items 0 and 1", `"eth0"`}},
		{name: "multi mixed interface", key: AnnoPodSubnets, value: `[{"interface":"eth0","ipv4":["s1"]},{"ipv4":["s2"]}]`,
			wantErr: []string{"every item or on none"}},
		{name: "multi empty name", key: AnnoPodSubnets, value: `[{"ipv4":[""]}]`, wantErr: []string{"name 0 is empty"}},
		{name: "multi bad JSON", key: AnnoPodSubnets, value: `[{"ipv4":["s1"]`, wantErr: []string{"cut short"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []SubnetAnnotation
			var err error
			if tt.key == AnnoPodSubnet {
				var one SubnetAnnotation
				if one, err = ParseSubnet(tt.value); err == nil {
					got = []SubnetAnnotation{one}
				}
			} else {
				got, err = ParseSubnets(tt.value)
			}
			if tt.wantErr != nil {
				wantBad(t, err, tt.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseRoutes(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		want    []v2beta1.Route
		wantErr []string
	}{
		{name: "two families", value: `[{"dst":"10.0.0.0/16","gw":"192.168.1.1"},{"dst":"fd00:1::/64","gw":"fd00::0:1"}]`,
			want: []v2beta1.Route{{Dst: "10.0.0.0/16", Gw: "192.168.1.1"}, {Dst: "fd00:1::/64", Gw: "fd00::1"}}},
		{name: "host route", value: `[{"dst":"10.1.2.3/32","gw":"10.0.0.1"}]`, want: []v2beta1.Route{{Dst: "10.1.2.3/32", Gw: "10.0.0.1"}}},
		{name: "empty list", value: `[]`, want: nil},
		{name: "default route v4", value: `[{"dst":"0.0.0.0/0","gw":"10.0.0.1"}]`, wantErr: []string{AnnoPodRoutes, `"0.0.0.0/0"`, "default route", "spec.gateway"}},
		{name: "default route v6", value: `[{"dst":"::/0","gw":"fd00::1"}]`, wantErr: []string{`"::/0"`, "default route"}},
		{name: "bad CIDR", value: `[{"dst":"10.0.0.0/33","gw":"10.0.0.1"}]`, wantErr: []string{"route 0: dst", "10.0.0.0/33"}},
		{name: "host bits set: the network, as SpiderPool accepts it", value: `[{"dst":"192.168.26.5/24","gw":"10.0.0.1"},{"dst":"fd00:1::5/64","gw":"fd00::1"}]`,
			want: []v2beta1.Route{{Dst: "192.168.26.0/24", Gw: "10.0.0.1"}, {Dst: "fd00:1::/64", Gw: "fd00::1"}}},
		{name: "host bits set on a default route", value: `[{"dst":"10.0.0.1/0","gw":"10.0.0.1"}]`, wantErr: []string{`"10.0.0.1/0"`, "default route"}},
		{name: "the same route once with host bits", value: `[{"dst":"10.0.0.0/16","gw":"10.1.0.1"},{"dst":"10.0.9.9/16","gw":"10.1.0.1"}]`, wantErr: []string{"route 1 (dst 10.0.0.0/16 via 10.1.0.1) appears twice"}},
		{name: "bad gateway", value: `[{"dst":"10.0.0.0/16","gw":"10.0.0"}]`, wantErr: []string{"route 0: gw", "10.0.0"}},
		{name: "family mismatch", value: `[{"dst":"10.0.0.0/16","gw":"fd00::1"}]`, wantErr: []string{`gw "fd00::1" is IPv6`, `dst "10.0.0.0/16" is IPv4`}},
		{name: "missing gw", value: `[{"dst":"10.0.0.0/16"}]`, wantErr: []string{"route 0 lacks", `"gw"`}},
		{name: "duplicate route", value: `[{"dst":"10.0.0.0/16","gw":"10.1.0.1"},{"dst":"10.0.0.0/16","gw":"10.1.0.1"}]`, wantErr: []string{"route 1", "twice"}},
		{name: "object instead of list", value: `{"dst":"10.0.0.0/16","gw":"10.1.0.1"}`, wantErr: []string{"a list"}},
		{name: "unknown key ignored, as SpiderPool does", value: `[{"dst":"10.0.0.0/16","gw":"10.1.0.1","dev":"eth0"}]`, want: []v2beta1.Route{{Dst: "10.0.0.0/16", Gw: "10.1.0.1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRoutes(tt.value)
			if tt.wantErr != nil {
				wantBad(t, err, tt.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseNamespaceDefaultPools(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		want    []string
		wantErr []string
	}{
		{name: "list", value: `["a","b-*"]`, want: []string{"a", "b-*"}},
		{name: "empty list", value: `[]`, want: nil},
		{name: "not a list", value: `"a"`, wantErr: []string{AnnoNamespaceDefaultIPv4Pool, "a list of names", `write ["pool-a","pool-b"]`}},
		{name: "comma string", value: `a,b`, wantErr: []string{"not valid JSON"}},
		{name: "duplicate", value: `["a","a"]`, wantErr: []string{`pool "a" is named twice`}},
		{name: "empty name", value: `[""]`, wantErr: []string{"name 0 is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNamespaceDefaultPools(AnnoNamespaceDefaultIPv4Pool, tt.value)
			if tt.wantErr != nil {
				wantBad(t, err, tt.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestParseIPNumber(t *testing.T) {
	tests := []struct {
		value   string
		want    IPNumber
		wantErr []string
	}{
		{value: "0", want: IPNumber{N: 0}},
		{value: "5", want: IPNumber{N: 5}},
		{value: "+0", want: IPNumber{N: 0, Flexible: true}},
		{value: "+12", want: IPNumber{N: 12, Flexible: true}},
		{value: "+-1", wantErr: []string{AnnoPodIPPoolIPNumber, `"+-1"`, `"-"`, `write "2"`}},
		{value: "++1", wantErr: []string{`"++1"`, "one leading '+'"}},
		{value: "abc", wantErr: []string{`"abc"`, "not a number"}},
		{value: "-1", wantErr: []string{`"-1"`}},
		{value: "+", wantErr: []string{"has no number"}},
		{value: "", wantErr: []string{"has no number"}},
		{value: " 1", wantErr: []string{`" 1"`}},
		{value: "1.5", wantErr: []string{`"."`}},
		{value: "99999999999999999999999", wantErr: []string{"too large"}},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			got, err := ParseIPNumber(tt.value)
			if tt.wantErr != nil {
				wantBad(t, err, tt.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if got.String() != tt.value {
				t.Errorf("String() = %q, want %q", got.String(), tt.value)
			}
		})
	}
}
