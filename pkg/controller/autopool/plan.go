package autopool

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// want is one pool an application asks for: an interface, a family and the SpiderSubnet
// to cut it from.
type want struct {
	nic    string
	family int64
	subnet string
}

// wantsOf lists the pools a request asks for in the families the cluster serves: per
// interface in the annotation's order, IPv4 before IPv6.
func wantsOf(req ipam.AutoPoolRequest, enableIPv4, enableIPv6 bool) []want {
	var out []want
	seen := map[want]bool{}
	for _, s := range req.Subnets {
		for _, f := range []struct {
			family  int64
			enabled bool
		}{{v2beta1.IPv4, enableIPv4}, {v2beta1.IPv6, enableIPv6}} {
			name := req.SubnetFor(s.Interface, f.family)
			w := want{nic: s.Interface, family: f.family, subnet: name}
			if name == "" || !f.enabled || seen[w] {
				continue
			}
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// serves tells whether a pool's labels say it is for the want.
func (w want) serves(p *v2beta1.SpiderIPPool) bool {
	l := p.Labels
	return l[ipam.LabelInterface] == w.nic && l[ipam.LabelIPVersion] == ipam.IPVersionLabelValue(w.family) &&
		l[ipam.LabelOwnerSpiderSubnet] == w.subnet
}

// poolPlan says what becomes of an application's pools.
type poolPlan struct {
	// keep[i] is the pool that serves wants[i]: the application's own, or one kept
	// (ippool-reclaim "false") for an earlier application of the same kind, namespace
	// and name, to adopt; nil when a pool is to be created.
	keep []*v2beta1.SpiderIPPool
	// remove are the pools to delete: reclaimable ("true") pools of the application's
	// kind, namespace and name that serve no want (the subnet annotation changed, or an
	// earlier application of the name left them), and duplicates.
	remove []*v2beta1.SpiderIPPool
}

// planPools decides, from every pool (or at least every auto pool of the application's
// kind, namespace and name), which pool serves each want and which pools go. Pools being
// deleted are left out: they are neither served from nor deleted again.
func planPools(pools []v2beta1.SpiderIPPool, k kind, app ipam.Application, wants []want) poolPlan {
	var mine []*v2beta1.SpiderIPPool
	for i := range pools {
		p := &pools[i]
		if p.DeletionTimestamp == nil && ipam.IsAutoPool(p) && k.owns(p.Labels) &&
			p.Labels[ipam.LabelOwnerAppNamespace] == app.Namespace && p.Labels[ipam.LabelOwnerAppName] == app.Name {
			mine = append(mine, p)
		}
	}
	// The application's own pools first, then kept ones by name: the first that serves
	// a want serves it.
	slices.SortStableFunc(mine, func(a, b *v2beta1.SpiderIPPool) int {
		ownA, ownB := a.Labels[ipam.LabelOwnerAppUID] == app.UID, b.Labels[ipam.LabelOwnerAppUID] == app.UID
		switch {
		case ownA && !ownB:
			return -1
		case ownB && !ownA:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	plan := poolPlan{keep: make([]*v2beta1.SpiderIPPool, len(wants))}
	used := map[*v2beta1.SpiderIPPool]bool{}
	for i, w := range wants {
		for _, p := range mine {
			own := p.Labels[ipam.LabelOwnerAppUID] == app.UID
			if used[p] || !w.serves(p) || (!own && !keptPool(p)) {
				continue
			}
			plan.keep[i], used[p] = p, true
			break
		}
	}
	for _, p := range mine {
		if !used[p] && !keptPool(p) {
			plan.remove = append(plan.remove, p)
		}
	}
	return plan
}

// keptPool tells whether a pool stays after its application: ippool-reclaim "false".
func keptPool(p *v2beta1.SpiderIPPool) bool { return p.Labels[ipam.LabelIPPoolReclaim] == "false" }

// current tells whether a pool is exactly what the application asks for, so that
// nothing needs writing: its own, with the labels, annotation, affinity and finalizer an
// auto pool carries, and size addresses.
func current(p *v2beta1.SpiderIPPool, app ipam.Application, req ipam.AutoPoolRequest, w want, size int64) bool {
	if p == nil || p.Labels[ipam.LabelOwnerAppUID] != app.UID {
		return false
	}
	want := p.DeepCopy()
	dress(want, app, req, w)
	if !equality.Semantic.DeepEqual(want.ObjectMeta, p.ObjectMeta) || !equality.Semantic.DeepEqual(want.Spec.PodAffinity, p.Spec.PodAffinity) {
		return false
	}
	return specSize(p) == size
}

// specSize is the pool's size, status.totalIPCount, from its spec alone (no records to
// decode); -1 when the spec cannot be read.
func specSize(p *v2beta1.SpiderIPPool) int64 {
	spec := *p
	spec.Status = v2beta1.IPPoolStatus{}
	pool, err := ipam.NewPool(&spec, ip.Set{})
	if err != nil {
		return -1
	}
	return pool.TotalCount()
}

// dress puts on a pool what makes it the application's auto pool for a want: the labels,
// the ippool-ip-number annotation, the podAffinity and the finalizer. Labels and
// annotations of others are left as they are.
func dress(p *v2beta1.SpiderIPPool, app ipam.Application, req ipam.AutoPoolRequest, w want) {
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	maps.Copy(p.Labels, ipam.AutoPoolLabels(app, w.subnet, w.nic, w.family, req.Reclaim))
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[ipam.AnnoPodIPPoolIPNumber] = req.IPNumber.String()
	p.Spec.PodAffinity = ipam.AutoPoolAffinity(app)
	if !slices.Contains(p.Finalizers, v2beta1.Finalizer) {
		p.Finalizers = append(p.Finalizers, v2beta1.Finalizer)
	}
}

// poolName is the name of a new pool for a want: ipam.AutoPoolName, SpiderPool's name;
// or, when another pool has it (one kept from an earlier subnet of the application, or
// one still being deleted), the same with a digest of the subnet's name after the
// application's name. "" when both are taken.
func poolName(pools []v2beta1.SpiderIPPool, app ipam.Application, w want) string {
	taken := func(name string) bool {
		return slices.ContainsFunc(pools, func(p v2beta1.SpiderIPPool) bool { return p.Name == name })
	}
	if name := ipam.AutoPoolName(w.family, app, w.nic); !taken(name) {
		return name
	}
	sum := sha256.Sum256([]byte(w.subnet))
	alt := app
	alt.Name = app.Name + "-" + hex.EncodeToString(sum[:])[:5]
	if name := ipam.AutoPoolName(w.family, alt, w.nic); !taken(name) {
		return name
	}
	return ""
}

// newPool is a new auto pool of a want before dress: spec.ips as resized, spec.subnet,
// spec.ipVersion, gateway, routes and the EIP template from the SpiderSubnet, which owns
// it (as in SpiderPool: deleting the subnet deletes its pools, each waiting on its
// finalizer). The template is copied once, at creation: a pool's EIPs are its own.
func newPool(name string, subnet *v2beta1.SpiderSubnet, family int64, resize ipam.AutoPoolResize) *v2beta1.SpiderIPPool {
	p := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: v2beta1.SchemeGroupVersion.String(), Kind: "SpiderSubnet", Name: subnet.Name, UID: subnet.UID, Controller: ptr.To(true),
		}}},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To(family), Subnet: subnet.Spec.Subnet, IPs: rangesOf(resize.IPs), Routes: slices.Clone(subnet.Spec.Routes)},
	}
	if subnet.Spec.Gateway != nil {
		p.Spec.Gateway = ptr.To(*subnet.Spec.Gateway)
	}
	if o := subnet.Spec.Orbweaver; o != nil && o.EIP != nil {
		p.Spec.Orbweaver = &v2beta1.IPPoolOrbweaverSpec{EIP: o.EIP.DeepCopy()}
	}
	return p
}

// rangesOf is a set in SpiderPool's normalised spec.ips form.
func rangesOf(s ip.Set) []v2beta1.IPOrRange {
	out := make([]v2beta1.IPOrRange, 0, len(s.Ranges()))
	for _, r := range s.Strings() {
		out = append(out, v2beta1.IPOrRange(r))
	}
	return out
}
