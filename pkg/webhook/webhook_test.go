package webhook

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

var (
	both   = Config{EnableIPv4: true, EnableIPv6: true}
	v4only = Config{EnableIPv4: true}
	v6only = Config{EnableIPv6: true}
)

type poolT = v2beta1.SpiderIPPool

func itoa(i int) string { return strconv.Itoa(i) }

// opt sets fields of a pool; subnets are built from the same options (see subnet).
type opt func(*v2beta1.SpiderIPPool)

func pool(name, cidr string, opts ...opt) *v2beta1.SpiderIPPool {
	p := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v2beta1.IPPoolSpec{Subnet: v2beta1.CIDR(cidr)}}
	for _, o := range opts {
		o(p)
	}
	return p
}

// subnet builds a SpiderSubnet from the fields the pool options set.
func subnet(name, cidr string, opts ...opt) *v2beta1.SpiderSubnet {
	p := pool(name, cidr, opts...)
	s := &v2beta1.SpiderSubnet{
		ObjectMeta: p.ObjectMeta,
		Spec: v2beta1.SubnetSpec{
			IPVersion: p.Spec.IPVersion, Subnet: p.Spec.Subnet, IPs: p.Spec.IPs, ExcludeIPs: p.Spec.ExcludeIPs,
			Gateway: p.Spec.Gateway, Routes: p.Spec.Routes,
		},
	}
	if p.Spec.Orbweaver != nil && p.Spec.Orbweaver.EIP != nil {
		s.Spec.Orbweaver = &v2beta1.SubnetOrbweaverSpec{EIP: p.Spec.Orbweaver.EIP}
	}
	return s
}

func ranges(ss []string) []v2beta1.IPOrRange {
	out := make([]v2beta1.IPOrRange, len(ss))
	for i, s := range ss {
		out[i] = v2beta1.IPOrRange(s)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func withEIP(e *v2beta1.EIPSpec) opt {
	return func(p *v2beta1.SpiderIPPool) { p.Spec.Orbweaver = &v2beta1.IPPoolOrbweaverSpec{EIP: e} }
}
func ips(ss ...string) opt { return func(p *v2beta1.SpiderIPPool) { p.Spec.IPs = ranges(ss) } }
func exclude(ss ...string) opt {
	return func(p *v2beta1.SpiderIPPool) { p.Spec.ExcludeIPs = ranges(ss) }
}
func version(v int64) opt { return func(p *v2beta1.SpiderIPPool) { p.Spec.IPVersion = ptr(v) } }
func gateway(gw string) opt {
	return func(p *v2beta1.SpiderIPPool) { p.Spec.Gateway = ptr(v2beta1.IPAddress(gw)) }
}
func route(dst, gw string) opt {
	return func(p *v2beta1.SpiderIPPool) {
		p.Spec.Routes = append(p.Spec.Routes, v2beta1.Route{Dst: dst, Gw: v2beta1.IPAddress(gw)})
	}
}
func noRoutes() opt { return func(p *v2beta1.SpiderIPPool) { p.Spec.Routes = []v2beta1.Route{} } }
func label(k, v string) opt {
	return func(p *v2beta1.SpiderIPPool) {
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		p.Labels[k] = v
	}
}
func podAffinity(s *metav1.LabelSelector) opt {
	return func(p *v2beta1.SpiderIPPool) { p.Spec.PodAffinity = s }
}
func nodeAffinity(s *metav1.LabelSelector) opt {
	return func(p *v2beta1.SpiderIPPool) { p.Spec.NodeAffinity = s }
}
func multus(names ...string) opt { return func(p *v2beta1.SpiderIPPool) { p.Spec.MultusName = names } }

// allocated records the addresses as held: pods holds one address per pod, reserves
// addresses in node-a's reserve. It must come after the pool's subnet is final.
func allocated(t *testing.T, pods, reserves []string) opt {
	t.Helper()
	return func(p *v2beta1.SpiderIPPool) {
		var recs []records.Record
		for _, a := range pods {
			recs = append(recs, records.Record{IP: netip.MustParseAddr(a), Owner: records.OwnerOf("uid-"+a, "ctr-"+a, "eth0")})
		}
		for _, a := range reserves {
			recs = append(recs, records.Record{IP: netip.MustParseAddr(a), Owner: records.ReserveOwner("node-a")})
		}
		data, err := records.Encode(netip.MustParsePrefix(string(p.Spec.Subnet)), recs)
		if err != nil {
			t.Fatal(err)
		}
		p.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Records: data}
	}
}

// grants puts the pool in Grants mode: no records, its endpoints say what is held.
func grants() opt {
	return func(p *v2beta1.SpiderIPPool) {
		p.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Allocation: v2beta1.AllocationGrants}
	}
}

// endpoints returns one SpiderEndpoint per address, each a pod's holding it in pool.
func endpoints(pool string, addrs ...string) []v2beta1.SpiderEndpoint {
	out := make([]v2beta1.SpiderEndpoint, len(addrs))
	for i, a := range addrs {
		out[i] = v2beta1.SpiderEndpoint{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pod-" + a},
			Status: v2beta1.WorkloadEndpointStatus{Current: v2beta1.PodIPAllocation{UID: "uid-" + a, Node: "node-a",
				IPs: []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv4: ptr(a + "/24"), IPv4Pool: ptr(pool)}}}},
		}
	}
	return out
}

func rawRecords(data []byte) opt {
	return func(p *v2beta1.SpiderIPPool) { p.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Records: data} }
}

// with returns a copy of the pool with more options applied, for the new object of an
// update.
func with(p *v2beta1.SpiderIPPool, opts ...opt) *v2beta1.SpiderIPPool {
	q := p.DeepCopy()
	for _, o := range opts {
		o(q)
	}
	return q
}

func pools(ps ...*v2beta1.SpiderIPPool) []v2beta1.SpiderIPPool {
	out := make([]v2beta1.SpiderIPPool, len(ps))
	for i, p := range ps {
		out[i] = *p
	}
	return out
}

func subnets(ss ...*v2beta1.SpiderSubnet) []v2beta1.SpiderSubnet {
	out := make([]v2beta1.SpiderSubnet, len(ss))
	for i, s := range ss {
		out[i] = *s
	}
	return out
}

// want is one expected field error: its type, its path, and a piece of its message.
type want struct {
	typ  field.ErrorType
	path string
	msg  string
}

func invalid(path, msg string) want   { return want{field.ErrorTypeInvalid, path, msg} }
func forbidden(path, msg string) want { return want{field.ErrorTypeForbidden, path, msg} }
func required(path string) want       { return want{field.ErrorTypeRequired, path, ""} }
func duplicate(path string) want      { return want{field.ErrorTypeDuplicate, path, ""} }
func notSupported(path string) want   { return want{field.ErrorTypeNotSupported, path, ""} }
func internal(path, msg string) want  { return want{field.ErrorTypeInternal, path, msg} }

// expectErrors checks that got holds exactly the wanted errors, in any order: the same
// types at the same paths, each message containing the wanted piece.
func expectErrors(t *testing.T, got field.ErrorList, wants ...want) {
	t.Helper()
	used := make([]bool, len(got))
	var missing []want
	for _, w := range wants {
		found := false
		for i, e := range got {
			if !used[i] && e.Type == w.typ && e.Field == w.path && strings.Contains(e.Error(), w.msg) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			missing = append(missing, w)
		}
	}
	var extra []string
	for i, e := range got {
		if !used[i] {
			extra = append(extra, e.Error())
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		var all []string
		for _, e := range got {
			all = append(all, "\n\t"+e.Error())
		}
		t.Errorf("missing %+v\nunexpected %q\ngot:%s", missing, extra, strings.Join(all, ""))
	}
}
