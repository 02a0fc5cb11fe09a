package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

func TestParseAllocatedIPs(t *testing.T) {
	subnet := netip.MustParsePrefix("10.244.150.0/24")
	ips, err := ip.ParseRanges([]string{"10.244.150.10-10.244.150.50"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		raw  string
		want []ForeignRecord
		bad  string // a substring of the error; "" for none
	}{
		{name: "absent", raw: ""},
		{name: "null", raw: "null"},
		{name: "empty object", raw: "{}"},
		{
			name: "current shape, out of order",
			raw:  `{"10.244.150.12":{"pod":"default/web-2","podUid":"u2"},"10.244.150.10":{"pod":"default/web-0","podUid":"u0"}}`,
			want: []ForeignRecord{
				{IP: netip.MustParseAddr("10.244.150.10"), Namespace: "default", Name: "web-0", UID: "u0"},
				{IP: netip.MustParseAddr("10.244.150.12"), Namespace: "default", Name: "web-2", UID: "u2"},
			},
		},
		{
			name: "older shape with the interface",
			raw:  `{"10.244.150.11":{"interface":"net1","pod":"ns1/db-0","podUid":"u1"}}`,
			want: []ForeignRecord{{IP: netip.MustParseAddr("10.244.150.11"), Namespace: "ns1", Name: "db-0", UID: "u1", Interface: "net1"}},
		},
		{name: "not an object", raw: `["10.244.150.10"]`, bad: "not a JSON object"},
		{name: "truncated", raw: `{"10.244.150.10":{"pod":"default/a","podUid":"u"}`, bad: "status.allocatedIPs"},
		{name: "text after", raw: `{}{}`, bad: "text after the JSON object"},
		{name: "key not an address", raw: `{"web-0":{"pod":"default/a","podUid":"u"}}`, bad: `record "web-0": the key is not an IP address`},
		{name: "address twice", raw: `{"10.244.150.10":{"pod":"default/a","podUid":"u"},"10.244.150.10":{"pod":"default/b","podUid":"v"}}`, bad: `record "10.244.150.10": the address is named twice`},
		{name: "outside the subnet", raw: `{"10.1.0.1":{"pod":"default/a","podUid":"u"}}`, bad: `record "10.1.0.1": the address is outside the pool's subnet`},
		{name: "outside spec.ips", raw: `{"10.244.150.9":{"pod":"default/a","podUid":"u"}}`, bad: `record "10.244.150.9": the address is outside the pool's spec.ips`},
		{name: "pod without namespace", raw: `{"10.244.150.10":{"pod":"a","podUid":"u"}}`, bad: `pod "a" is not namespace/name`},
		{name: "no pod UID", raw: `{"10.244.150.10":{"pod":"default/a"}}`, bad: "podUid is empty"},
		{name: "unknown field", raw: `{"10.244.150.10":{"pod":"default/a","podUid":"u","extra":1}}`, bad: `record "10.244.150.10"`},
		{name: "value not an object", raw: `{"10.244.150.10":"default/a"}`, bad: `record "10.244.150.10"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAllocatedIPs(tc.raw, subnet, ips)
			if tc.bad != "" {
				if err == nil || !errors.Is(err, ErrForeignRecords) || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("error %v, want one wrapping ErrForeignRecords with %q", err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("record %d: got %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestImportForeign(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	web0 := ForeignRecord{IP: a("10.0.0.10"), Namespace: "default", Name: "web-0", UID: "u0"}
	web1 := ForeignRecord{IP: a("10.0.0.11"), Namespace: "default", Name: "web-1", UID: "u1", Interface: "net1"}
	owner := func(f ForeignRecord) records.Owner {
		if f.Interface != "" {
			return ForeignOwner(f, "", f.Interface)
		}
		return ForeignOwner(f, "", "eth0")
	}
	native := records.Record{IP: a("10.0.0.5"), Owner: records.OwnerOf("n", "ctr", "eth0")}
	for _, tc := range []struct {
		name     string
		existing []records.Record
		foreign  []ForeignRecord
		want     []records.Record
		added    int
		bad      bool
	}{
		{name: "into none", foreign: []ForeignRecord{web1, web0}, added: 2, want: []records.Record{
			{IP: web0.IP, Owner: records.OwnerOf("u0", "", "eth0")}, {IP: web1.IP, Owner: records.OwnerOf("u1", "", "net1")}}},
		{name: "beside native records", existing: []records.Record{native}, foreign: []ForeignRecord{web0}, added: 1, want: []records.Record{
			native, {IP: web0.IP, Owner: records.OwnerOf("u0", "", "eth0")}}},
		{name: "repeated after it landed", existing: []records.Record{{IP: web0.IP, Owner: records.OwnerOf("u0", "", "eth0")}}, foreign: []ForeignRecord{web0},
			want: []records.Record{{IP: web0.IP, Owner: records.OwnerOf("u0", "", "eth0")}}},
		{name: "an address orbweaver gave to another pod", existing: []records.Record{{IP: web0.IP, Owner: records.OwnerOf("other", "c", "eth0")}},
			foreign: []ForeignRecord{web0}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, added, err := ImportForeign(tc.existing, tc.foreign, owner)
			if tc.bad {
				if !errors.Is(err, ErrForeignRecords) || !strings.Contains(err.Error(), "another owner") {
					t.Fatalf("error %v, want two owners refused", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if added != tc.added || len(got) != len(tc.want) {
				t.Fatalf("got %v (%d added), want %v (%d)", got, added, tc.want, tc.added)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("record %d: got %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestAllocatedIPsRoundTrip(t *testing.T) {
	str := func(s string) *string { return &s }
	eps := []v2beta1.SpiderEndpoint{
		endpointWith("default", "web-0", "u0", v2beta1.IPAllocationDetail{NIC: "eth0", IPv4: str("10.0.0.10/24"), IPv4Pool: str("p"), IPv6: str("fd00::10/64"), IPv6Pool: str("p6")}),
		endpointWith("default", "web-1", "u1", v2beta1.IPAllocationDetail{NIC: "eth0", IPv4: str("10.0.0.11/24"), IPv4Pool: str("p")},
			v2beta1.IPAllocationDetail{NIC: "net1", IPv4: str("10.0.0.12/24"), IPv4Pool: str("p")}),
		endpointWith("other", "x", "u2", v2beta1.IPAllocationDetail{NIC: "eth0", IPv4: str("10.9.0.1/24"), IPv4Pool: str("q")}),
	}
	raw, err := FormatAllocatedIPs(ForeignRecordsOf(EndpointHolds("p", netip.MustParsePrefix("10.0.0.0/24"), eps)))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"10.0.0.10":{"pod":"default/web-0","podUid":"u0"},"10.0.0.11":{"pod":"default/web-1","podUid":"u1"},"10.0.0.12":{"pod":"default/web-1","podUid":"u1"}}`
	if raw == nil || *raw != want {
		t.Fatalf("got %v, want %s", raw, want)
	}
	if none, err := FormatAllocatedIPs(ForeignRecordsOf(EndpointHolds("empty", netip.MustParsePrefix("10.0.0.0/24"), eps))); err != nil || none != nil {
		t.Fatalf("a pool nothing holds: got %v, %v; want nil (SpiderPool omits the field)", none, err)
	}
	ips, _ := ip.ParseRanges([]string{"10.0.0.1-10.0.0.100"})
	back, err := ParseAllocatedIPs(*raw, netip.MustParsePrefix("10.0.0.0/24"), ips)
	if err != nil || len(back) != 3 {
		t.Fatalf("read back: %v, %v", back, err)
	}
	if got := EndpointInterface(&eps[1], "p", back[2].IP); got != "net1" {
		t.Errorf("interface of %s: %q, want net1", back[2].IP, got)
	}
	if got := EndpointInterface(&eps[1], "q", back[2].IP); got != "" {
		t.Errorf("interface of %s in another pool: %q, want none", back[2].IP, got)
	}
}

func endpointWith(ns, name, uid string, nics ...v2beta1.IPAllocationDetail) v2beta1.SpiderEndpoint {
	se := v2beta1.SpiderEndpoint{}
	se.Namespace, se.Name = ns, name
	se.Status.Current.UID = uid
	se.Status.Current.IPs = nics
	return se
}

// BenchmarkImportSpiderPool5000 reads SpiderPool's records of a pool of 5,000 pods (its
// per-pool default cap) and merges them into orbweaver's records: the CPU side of the
// pool controller's import, which is then one status write.
func BenchmarkImportSpiderPool5000(b *testing.B) {
	subnet := netip.MustParsePrefix("10.0.0.0/16")
	ips, _ := ip.ParseRanges([]string{"10.0.0.1-10.0.255.254"})
	var sb strings.Builder
	sb.WriteByte('{')
	a := subnet.Addr().Next()
	for i := range 5000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `%q:{"pod":"default/web-%d","podUid":"0f0e8a7c-5a6b-4f0e-9d7c-%012d"}`, a.String(), i, i)
		a = a.Next()
	}
	sb.WriteByte('}')
	raw := sb.String()
	eth0 := func(f ForeignRecord) records.Owner { return ForeignOwner(f, "", "eth0") }
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		foreign, err := ParseAllocatedIPs(raw, subnet, ips)
		if err != nil || len(foreign) != 5000 {
			b.Fatal(len(foreign), err)
		}
		recs, added, err := ImportForeign(nil, foreign, eth0)
		if err != nil || added != 5000 {
			b.Fatal(added, err)
		}
		if _, err := records.Encode(subnet, recs); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSpiderPoolRunning(t *testing.T) {
	pod := func(component string, phase corev1.PodPhase) *corev1.Pod {
		p := &corev1.Pod{}
		p.Labels = map[string]string{"app.kubernetes.io/name": "spiderpool", "app.kubernetes.io/component": component}
		p.Status.Phase = phase
		return p
	}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"its agent", pod("spiderpool-agent", corev1.PodRunning), SpiderPoolAgentComponent},
		{"its controller, starting", pod("spiderpool-controller", corev1.PodPending), SpiderPoolControllerComponent},
		{"its agent, finished", pod("spiderpool-agent", corev1.PodFailed), ""},
		{"its init job", pod("spiderpool-init", corev1.PodRunning), ""},
		{"another pod", &corev1.Pod{}, ""},
	} {
		if got := SpiderPoolRunning(tc.pod); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
		sel := SpiderPoolPodSelector().Matches(labels.Set(tc.pod.Labels))
		if sel != (tc.want != "" || tc.pod.Status.Phase == corev1.PodFailed) {
			t.Errorf("%s: the selector matches: %v", tc.name, sel)
		}
	}
}
