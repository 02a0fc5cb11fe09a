package ipam

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Each fuzz target checks that a parser never panics, that its errors are
// ErrBadAnnotation naming the annotation, and that what it accepts survives a round trip
// through its own output. Seeds beyond the f.Add ones are in testdata/fuzz/<target>/.

// checkBad fails unless err is a well-formed annotation error for key.
func checkBad(t *testing.T, key string, err error) {
	t.Helper()
	if !errors.Is(err, ErrBadAnnotation) {
		t.Fatalf("error %v does not wrap ErrBadAnnotation", err)
	}
	if !strings.Contains(err.Error(), key) {
		t.Fatalf("error %q does not name the annotation %s", err, key)
	}
}

func remarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %+v: %v", v, err)
	}
	return string(b)
}

func FuzzParseIPPool(f *testing.F) {
	for _, s := range []string{`{"ipv4":["a"],"ipv6":["b"]}`, `{"interface":"eth0","ipv4":["a-*"],"cleangateway":true}`, `{"ipv4":"a"}`, `{}`, `null`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseIPPool(s)
		if err != nil {
			checkBad(t, AnnoPodIPPool, err)
			return
		}
		if len(got.IPv4)+len(got.IPv6) == 0 {
			t.Fatalf("accepted %q naming no pool", s)
		}
		again, err := ParseIPPool(remarshal(t, got))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("round trip of %q: got %+v, %v; want %+v", s, again, err, got)
		}
	})
}

func FuzzParseIPPools(f *testing.F) {
	for _, s := range []string{`[{"interface":"eth0","ipv4":["a"]},{"interface":"net1","ipv6":["b"]}]`, `[{"ipv4":["a"]},{"ipv4":["b"]}]`, `[{"interface":"eth0","ipv4":["a"]},{"ipv4":["b"]}]`, `[]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseIPPools(s)
		if err != nil {
			checkBad(t, AnnoPodIPPools, err)
			return
		}
		seen := map[string]bool{}
		for _, it := range got {
			if it.Interface == "" || seen[it.Interface] {
				t.Fatalf("accepted %q with an empty or repeated interface: %+v", s, got)
			}
			seen[it.Interface] = true
		}
		again, err := ParseIPPools(remarshal(t, got))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("round trip of %q: got %+v, %v; want %+v", s, again, err, got)
		}
	})
}

func FuzzParseSubnets(f *testing.F) {
	for _, s := range []string{`{"ipv4":["s1"],"ipv6":["s2"]}`, `[{"interface":"eth0","ipv4":["s1"]},{"interface":"net1","ipv4":["s1"]}]`, `[{"ipv4":["s1"]},{"ipv6":["s2"]}]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if one, err := ParseSubnet(s); err != nil {
			checkBad(t, AnnoPodSubnet, err)
		} else {
			again, err := ParseSubnet(remarshal(t, one))
			if err != nil || !reflect.DeepEqual(again, one) {
				t.Fatalf("round trip of %q: got %+v, %v; want %+v", s, again, err, one)
			}
		}
		many, err := ParseSubnets(s)
		if err != nil {
			checkBad(t, AnnoPodSubnets, err)
			return
		}
		again, err := ParseSubnets(remarshal(t, many))
		if err != nil || !reflect.DeepEqual(again, many) {
			t.Fatalf("round trip of %q: got %+v, %v; want %+v", s, again, err, many)
		}
	})
}

func FuzzParseRoutes(f *testing.F) {
	for _, s := range []string{`[{"dst":"10.0.0.0/16","gw":"192.168.1.1"}]`, `[{"dst":"fd00::/64","gw":"fd00::1"}]`, `[{"dst":"0.0.0.0/0","gw":"10.0.0.1"}]`, `[{"dst":"10.0.0.0/16","gw":"fd00::1"}]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseRoutes(s)
		if err != nil {
			checkBad(t, AnnoPodRoutes, err)
			return
		}
		for _, r := range got {
			dst, err := netip.ParsePrefix(r.Dst)
			if err != nil || dst != dst.Masked() || dst.Bits() == 0 || dst.String() != r.Dst {
				t.Fatalf("accepted %q with dst %q", s, r.Dst)
			}
			gw, err := netip.ParseAddr(string(r.Gw))
			if err != nil || gw.Is4() != dst.Addr().Is4() || gw.String() != string(r.Gw) {
				t.Fatalf("accepted %q with gw %q for dst %q", s, r.Gw, r.Dst)
			}
		}
		again, err := ParseRoutes(remarshal(t, got))
		if err != nil || !reflect.DeepEqual(again, got) && len(got) > 0 {
			t.Fatalf("round trip of %q: got %+v, %v; want %+v", s, again, err, got)
		}
	})
}

func FuzzParseIPNumber(f *testing.F) {
	for _, s := range []string{"0", "+1", "+-1", "++1", "abc", "007"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseIPNumber(s)
		if err != nil {
			checkBad(t, AnnoPodIPPoolIPNumber, err)
			return
		}
		if n.N < 0 {
			t.Fatalf("accepted %q as a negative number %d", s, n.N)
		}
		if again, err := ParseIPNumber(n.String()); err != nil || again != n {
			t.Fatalf("round trip of %q via %q: got %+v, %v", s, n.String(), again, err)
		}
		if strings.TrimLeft(strings.TrimPrefix(s, "+"), "0") != strings.TrimLeft(strings.TrimPrefix(n.String(), "+"), "0") {
			t.Fatalf("%q parsed as %q", s, n.String())
		}
	})
}

func FuzzMultusNetworkOf(f *testing.F) {
	f.Add("kube-system/macvlan@net1, ipvlan", "", "net1", "kube-system/calico")
	f.Add(`[{"name":"a","namespace":"x","interface":"data0"}]`, "ns/dflt", "eth0", "calico")
	f.Add("a/b/c", "d@e", "net2", "/etc/cni/net.d/x.conf")
	f.Fuzz(func(t *testing.T, networks, defaultNetwork, ifName, clusterDefault string) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "p", Annotations: map[string]string{
			AnnoMultusNetworks: networks, AnnoMultusDefaultNetwork: defaultNetwork,
		}}}
		got := MultusNetworkOf(pod, ifName, clusterDefault)
		if got == "" {
			return
		}
		ns, name, ok := strings.Cut(got, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			t.Fatalf("MultusNetworkOf(%q, %q, %q, %q) = %q, not ns/name", networks, defaultNetwork, ifName, clusterDefault, got)
		}
		if normaliseNetwork(got, "other") != got {
			t.Fatalf("%q is not normalised", got)
		}
	})
}
