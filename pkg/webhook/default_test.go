package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/yaml"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

func TestCIDRLabelValue(t *testing.T) {
	tests := []struct {
		cidr string
		want string
		ok   bool
	}{
		{"10.6.0.0/16", "10-6-0-0-16", true},
		{"172.16.1.0/24", "172-16-1-0-24", true},
		{"fd00:10::/64", "fd00-10---64", true},
		{"2001:db8:1:2:3:4:5:0/112", "2001-db8-1-2-3-4-5-0-112", true},
		{"::/64", "---64", false}, // SpiderPool writes this and the API server refuses the object
	}
	for _, tt := range tests {
		t.Run(tt.cidr, func(t *testing.T) {
			got, ok := CIDRLabelValue(netip.MustParsePrefix(tt.cidr))
			if got != tt.want || ok != tt.ok {
				t.Errorf("CIDRLabelValue(%s) = %q, %t; want %q, %t", tt.cidr, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestDefaultIPPool(t *testing.T) {
	owner := subnet("s", "10.6.0.0/16", gateway("10.6.0.1"), route("10.96.0.0/12", "10.6.0.2"))
	withOwner := Existing{Subnets: subnets(subnet("other", "10.7.0.0/16", gateway("10.7.0.1")), owner)}
	created := func(p *poolT) *poolT { p.Finalizers = []string{v2beta1.Finalizer}; return p }
	tests := []struct {
		name     string
		pool     *poolT
		old      *poolT // nil: create
		existing Existing
		want     *poolT
		warnings []string
	}{
		{
			name: "IPv4: ipVersion, finalizer, CIDR label, sorted and merged ranges",
			pool: pool("p", "10.6.0.0/16", ips("10.6.0.30", "10.6.0.10-10.6.0.20", "10.6.0.21-10.6.0.25", "10.6.0.15"), exclude("10.6.0.12", "10.6.0.11")),
			want: created(pool("p", "10.6.0.0/16", version(4), label(LabelIPPoolCIDR, "10-6-0-0-16"),
				ips("10.6.0.10-10.6.0.25", "10.6.0.30"), exclude("10.6.0.11-10.6.0.12"))),
		},
		{
			name: "IPv6",
			pool: pool("p", "fd00:10::/64", ips("fd00:10::20-fd00:10::2f", "fd00:10::10-fd00:10::1f")),
			want: created(pool("p", "fd00:10::/64", version(6), label(LabelIPPoolCIDR, "fd00-10---64"), ips("fd00:10::10-fd00:10::2f"))),
		},
		{
			name: "the finalizer is not added twice and other finalizers stay; a stale label is corrected",
			pool: with(pool("p", "10.6.0.0/16", label(LabelIPPoolCIDR, "stale")), func(p *poolT) { p.Finalizers = []string{"x", v2beta1.Finalizer} }),
			want: with(pool("p", "10.6.0.0/16", version(4), label(LabelIPPoolCIDR, "10-6-0-0-16")), func(p *poolT) { p.Finalizers = []string{"x", v2beta1.Finalizer} }),
		},
		{
			name: "a subnet whose label value would be invalid gets no label",
			pool: pool("p", "::/64"),
			want: created(pool("p", "::/64", version(6))),
		},
		{
			name: "a malformed entry leaves its list as written; the other list is still merged",
			pool: pool("p", "10.6.0.0/16", ips("10.6.0.9", "10.6.0.1-10.6.0.x"), exclude("10.6.0.2", "10.6.0.1")),
			want: created(pool("p", "10.6.0.0/16", version(4), label(LabelIPPoolCIDR, "10-6-0-0-16"), ips("10.6.0.9", "10.6.0.1-10.6.0.x"), exclude("10.6.0.1-10.6.0.2"))),
		},
		{
			name: "mixed families are left as written",
			pool: pool("p", "10.6.0.0/16", ips("fd00::1", "10.6.0.1")),
			want: created(pool("p", "10.6.0.0/16", version(4), label(LabelIPPoolCIDR, "10-6-0-0-16"), ips("fd00::1", "10.6.0.1"))),
		},
		{
			name: "an unusable subnet gets no ipVersion and no label",
			pool: pool("p", "10.6.0.1/16", ips("10.6.0.2", "10.6.0.1")),
			want: created(pool("p", "10.6.0.1/16", ips("10.6.0.1-10.6.0.2"))),
		},
		{
			name: "an explicit ipVersion is kept, even a wrong one (validation refuses it)",
			pool: pool("p", "10.6.0.0/16", version(6)),
			want: created(pool("p", "10.6.0.0/16", version(6), label(LabelIPPoolCIDR, "10-6-0-0-16"))),
		},
		{
			name:     "the SpiderSubnet with the same subnet owns the pool, which inherits gateway and routes",
			pool:     pool("p", "10.6.0.0/16", ips("10.6.0.10")),
			existing: withOwner,
			want: created(pool("p", "10.6.0.0/16", version(4), label(LabelIPPoolCIDR, "10-6-0-0-16"), label(LabelOwnerSpiderSubnet, "s"),
				ips("10.6.0.10"), gateway("10.6.0.1"), route("10.96.0.0/12", "10.6.0.2"))),
		},
		{
			name:     "the pool's own gateway and routes win",
			pool:     pool("p", "10.6.0.0/16", gateway("10.6.0.254"), route("172.16.0.0/12", "10.6.0.3")),
			existing: withOwner,
			want: created(pool("p", "10.6.0.0/16", version(4), label(LabelIPPoolCIDR, "10-6-0-0-16"), label(LabelOwnerSpiderSubnet, "s"),
				gateway("10.6.0.254"), route("172.16.0.0/12", "10.6.0.3"))),
		},
		{
			name:     "an explicit empty routes list is not filled in; the gateway still is",
			pool:     pool("p", "10.6.0.0/16", noRoutes()),
			existing: withOwner,
			want: created(pool("p", "10.6.0.0/16", version(4), label(LabelIPPoolCIDR, "10-6-0-0-16"), label(LabelOwnerSpiderSubnet, "s"),
				gateway("10.6.0.1"), noRoutes())),
		},
		{
			name:     "no SpiderSubnet with the same subnet: no owner",
			pool:     pool("p", "10.8.0.0/16"),
			existing: withOwner,
			want:     created(pool("p", "10.8.0.0/16", version(4), label(LabelIPPoolCIDR, "10-8-0-0-16"))),
		},
		{
			name:     "on update: no finalizer and no inheritance, but the owner label and merging",
			pool:     pool("p", "10.6.0.0/16", version(4), ips("10.6.0.2", "10.6.0.1")),
			old:      pool("p", "10.6.0.0/16", version(4)),
			existing: withOwner,
			want:     pool("p", "10.6.0.0/16", version(4), label(LabelIPPoolCIDR, "10-6-0-0-16"), label(LabelOwnerSpiderSubnet, "s"), ips("10.6.0.1-10.6.0.2")),
		},
		{
			name:     "a terminating pool is left alone",
			pool:     with(pool("p", "10.6.0.0/16", ips("10.6.0.2", "10.6.0.1")), func(p *poolT) { p.DeletionTimestamp = &metav1.Time{} }),
			existing: withOwner,
			want:     with(pool("p", "10.6.0.0/16", ips("10.6.0.2", "10.6.0.1")), func(p *poolT) { p.DeletionTimestamp = &metav1.Time{} }),
		},
		{
			name: "a route destination with host bits is stored as its network, with a warning (SpiderPool accepts it)",
			pool: pool("p", "10.6.0.0/16", route("10.96.0.0/12", "10.6.0.2"), route("192.168.26.5/24", "10.6.0.3")),
			want: created(pool("p", "10.6.0.0/16", version(4), label(LabelIPPoolCIDR, "10-6-0-0-16"),
				route("10.96.0.0/12", "10.6.0.2"), route("192.168.26.0/24", "10.6.0.3"))),
			warnings: []string{"spec.routes[1].dst: 192.168.26.5/24 has host bits set; stored as the network 192.168.26.0/24"},
		},
		{
			name: "an IPv6 destination is written canonically, on update too",
			pool: pool("p", "fd00::/64", version(6), route("FD00:99:0:0::/64", "fd00::2"), route("fd00:98::1/64", "fd00::2")),
			old:  pool("p", "fd00::/64", version(6)),
			want: pool("p", "fd00::/64", version(6), label(LabelIPPoolCIDR, "fd00---64"), route("fd00:99::/64", "fd00::2"), route("fd00:98::/64", "fd00::2")),
			warnings: []string{
				"spec.routes[0].dst: FD00:99:0:0::/64 stored in canonical form fd00:99::/64",
				"spec.routes[1].dst: fd00:98::1/64 has host bits set; stored as the network fd00:98::/64",
			},
		},
		{
			name: "a destination that does not parse is left for validation",
			pool: pool("p", "10.6.0.0/16", route("10.96.0.0", "10.6.0.2"), route("10.96.0.0/33", "10.6.0.2")),
			want: created(pool("p", "10.6.0.0/16", version(4), label(LabelIPPoolCIDR, "10-6-0-0-16"), route("10.96.0.0", "10.6.0.2"), route("10.96.0.0/33", "10.6.0.2"))),
		},
		{
			name:     "routes inherited from a SpiderSubnet SpiderPool stored with host bits",
			pool:     pool("p", "10.6.0.0/16"),
			existing: Existing{Subnets: subnets(subnet("s", "10.6.0.0/16", route("10.96.0.1/12", "10.6.0.2")))},
			want: created(pool("p", "10.6.0.0/16", version(4), label(LabelIPPoolCIDR, "10-6-0-0-16"), label(LabelOwnerSpiderSubnet, "s"),
				route("10.96.0.0/12", "10.6.0.2"))),
			warnings: []string{"spec.routes[0].dst: 10.96.0.1/12 has host bits set; stored as the network 10.96.0.0/12"},
		},
		{
			// Validation requires canonical destinations on every update, the one that
			// removes the finalizer included.
			name:     "a terminating pool's route destinations are still written canonically",
			pool:     with(pool("p", "10.6.0.0/16", ips("10.6.0.2", "10.6.0.1"), route("10.96.0.1/12", "10.6.0.2")), func(p *poolT) { p.DeletionTimestamp = &metav1.Time{} }),
			existing: withOwner,
			want:     with(pool("p", "10.6.0.0/16", ips("10.6.0.2", "10.6.0.1"), route("10.96.0.0/12", "10.6.0.2")), func(p *poolT) { p.DeletionTimestamp = &metav1.Time{} }),
			warnings: []string{"spec.routes[0].dst: 10.96.0.1/12 has host bits set; stored as the network 10.96.0.0/12"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.pool.DeepCopy()
			warnings := DefaultIPPool(got, tt.old, tt.existing)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%+v\n%+v\nwant\n%+v\n%+v", got.ObjectMeta, got.Spec, tt.want.ObjectMeta, tt.want.Spec)
			}
			if !slices.Equal(warnings, tt.warnings) {
				t.Errorf("warnings %q, want %q", warnings, tt.warnings)
			}
		})
	}
}

func TestDefaultIPPoolCopiesInheritedRoutes(t *testing.T) {
	existing := Existing{Subnets: subnets(subnet("s", "10.6.0.0/16", route("10.96.0.1/12", "10.6.0.2")))}
	p := pool("p", "10.6.0.0/16")
	DefaultIPPool(p, nil, existing)
	p.Spec.Routes[0].Gw = "10.6.0.9"
	if r := existing.Subnets[0].Spec.Routes[0]; r.Gw != "10.6.0.2" || r.Dst != "10.96.0.1/12" {
		t.Errorf("defaulting or changing the pool's inherited route changed the subnet's: %+v", r)
	}
}

func TestDefaultSubnet(t *testing.T) {
	tests := []struct {
		name     string
		in       *v2beta1.SpiderSubnet
		want     *v2beta1.SpiderSubnet
		warnings []string
	}{
		{
			name: "ipVersion, label and merged ranges; no finalizer",
			in:   subnet("s", "10.244.0.0/16", ips("10.244.200.0-10.244.200.1", "10.244.100.0-10.244.199.255"), exclude("10.244.150.9", "10.244.150.8")),
			want: subnet("s", "10.244.0.0/16", version(4), label(LabelSubnetCIDR, "10-244-0-0-16"),
				ips("10.244.100.0-10.244.200.1"), exclude("10.244.150.8-10.244.150.9")),
		},
		{
			name: "IPv6",
			in:   subnet("s", "fd00:10:244::/64", ips("fd00:10:244::1")),
			want: subnet("s", "fd00:10:244::/64", version(6), label(LabelSubnetCIDR, "fd00-10-244---64"), ips("fd00:10:244::1")),
		},
		{
			name: "terminating",
			in:   terminatingSubnet(subnet("s", "10.0.0.0/24", ips("10.0.0.2", "10.0.0.1"))),
			want: terminatingSubnet(subnet("s", "10.0.0.0/24", ips("10.0.0.2", "10.0.0.1"))),
		},
		{
			name:     "a route destination with host bits is stored as its network, with a warning",
			in:       subnet("s", "10.244.0.0/16", route("192.168.26.5/24", "10.244.0.2"), route("172.16.0.0/12", "10.244.0.3")),
			want:     subnet("s", "10.244.0.0/16", version(4), label(LabelSubnetCIDR, "10-244-0-0-16"), route("192.168.26.0/24", "10.244.0.2"), route("172.16.0.0/12", "10.244.0.3")),
			warnings: []string{"spec.routes[0].dst: 192.168.26.5/24 has host bits set; stored as the network 192.168.26.0/24"},
		},
		{
			name:     "terminating, with a route destination with host bits",
			in:       terminatingSubnet(subnet("s", "fd00::/64", route("fd00:99::1/64", "fd00::2"))),
			want:     terminatingSubnet(subnet("s", "fd00::/64", route("fd00:99::/64", "fd00::2"))),
			warnings: []string{"spec.routes[0].dst: fd00:99::1/64 has host bits set; stored as the network fd00:99::/64"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.DeepCopy()
			warnings := DefaultSubnet(got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%+v\n%+v\nwant\n%+v\n%+v", got.ObjectMeta, got.Spec, tt.want.ObjectMeta, tt.want.Spec)
			}
			if !slices.Equal(warnings, tt.warnings) {
				t.Errorf("warnings %q, want %q", warnings, tt.warnings)
			}
		})
	}
}

// terminatingSubnet marks a subnet terminating.
func terminatingSubnet(s *v2beta1.SpiderSubnet) *v2beta1.SpiderSubnet {
	s.DeletionTimestamp = &metav1.Time{}
	return s
}

func TestDefaultReservedIP(t *testing.T) {
	tests := []struct {
		name        string
		ips         []string
		version     *int64
		wantIPs     []string
		wantVersion *int64
	}{
		{"IPv4 from the first entry, merged", []string{"10.0.0.9", "10.0.0.1-10.0.0.8"}, nil, []string{"10.0.0.1-10.0.0.9"}, ptr[int64](4)},
		{"IPv6 from the first entry", []string{"fd00::1"}, nil, []string{"fd00::1"}, ptr[int64](6)},
		{"explicit ipVersion kept", []string{"fd00::1"}, ptr[int64](4), []string{"fd00::1"}, ptr[int64](4)},
		{"mixed families left as written, version from the first", []string{"10.0.0.1", "fd00::1"}, nil, []string{"10.0.0.1", "fd00::1"}, ptr[int64](4)},
		{"malformed first entry: no version", []string{"10.0.0.x", "10.0.0.1"}, nil, []string{"10.0.0.x", "10.0.0.1"}, nil},
		{"empty stays empty", nil, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &v2beta1.SpiderReservedIP{Spec: v2beta1.ReservedIPSpec{IPVersion: tt.version}}
			if tt.ips != nil {
				r.Spec.IPs = ranges(tt.ips)
			}
			DefaultReservedIP(r)
			var want []v2beta1.IPOrRange
			if tt.wantIPs != nil {
				want = ranges(tt.wantIPs)
			}
			if !reflect.DeepEqual(r.Spec.IPs, want) || !reflect.DeepEqual(r.Spec.IPVersion, tt.wantVersion) {
				t.Errorf("got ips %v version %v; want %v version %v", r.Spec.IPs, deref(r.Spec.IPVersion), want, deref(tt.wantVersion))
			}
		})
	}
}

func deref(v *int64) any {
	if v == nil {
		return nil
	}
	return *v
}

// TestDefaultThenValidate runs what the API server does, mutating webhook then validating
// webhook, on input that is valid only once defaulted: unsorted ranges, no ipVersion, a
// gateway that the merged excludeIPs cover.
func TestDefaultThenValidate(t *testing.T) {
	existing := Existing{Subnets: subnets(subnet("s", "10.6.0.0/16", version(4), ips("10.6.0.0-10.6.0.255"), gateway("10.6.0.1")))}
	p := pool("p", "10.6.0.0/16", ips("10.6.0.20-10.6.0.30", "10.6.0.1-10.6.0.19"), exclude("10.6.0.2", "10.6.0.1"))
	DefaultIPPool(p, nil, existing)
	expectErrors(t, both.ValidateIPPoolCreate(p, existing))
	if p.Spec.Gateway == nil || *p.Spec.Gateway != "10.6.0.1" {
		t.Errorf("gateway %v, want 10.6.0.1 inherited from the subnet", p.Spec.Gateway)
	}
}

// TestExamples applies docs/examples in order, as kubectl apply -f docs/examples does:
// each object is defaulted and validated against the ones before it. The examples must
// all pass, together.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../docs/examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	var existing Existing
	checked := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var doc json.RawMessage
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			var meta metav1.TypeMeta
			if len(doc) == 0 || json.Unmarshal(doc, &meta) != nil {
				continue
			}
			where := filepath.Base(file) + ": " + meta.Kind
			var errs field.ErrorList
			switch meta.Kind {
			case "SpiderIPPool":
				var p v2beta1.SpiderIPPool
				mustUnmarshal(t, doc, &p)
				DefaultIPPool(&p, nil, existing)
				errs = both.ValidateIPPoolCreate(&p, existing)
				existing.IPPools = append(existing.IPPools, p)
			case "SpiderSubnet":
				var s v2beta1.SpiderSubnet
				mustUnmarshal(t, doc, &s)
				DefaultSubnet(&s)
				errs = both.ValidateSubnetCreate(&s, existing)
				existing.Subnets = append(existing.Subnets, s)
			case "SpiderReservedIP":
				var r v2beta1.SpiderReservedIP
				mustUnmarshal(t, doc, &r)
				DefaultReservedIP(&r)
				errs = both.ValidateReservedIPCreate(&r)
			default:
				continue
			}
			checked++
			if len(errs) > 0 {
				t.Errorf("%s: %v", where, errs.ToAggregate())
			}
		}
	}
	if checked < 7 {
		t.Errorf("checked %d example objects; docs/examples holds 7 pools, subnets and reserved IPs", checked)
	}
}

func mustUnmarshal(t *testing.T, data []byte, into any) {
	t.Helper()
	if err := json.Unmarshal(data, into); err != nil {
		t.Fatal(err)
	}
}
