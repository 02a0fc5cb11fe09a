package ipam

import (
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// Auto-created pools: a pool per application (workload) and interface, cut from a
// SpiderSubnet by the controller and found by the agent through its labels. Both sides
// use the names and functions here, so they agree by construction (docs/guides/auto-pools.md,
// sections 5 and 6). The controller is the only one that computes a pool's size
// (DesiredIPNumber).

// Labels of an auto-created pool, SpiderPool's (docs/guides/auto-pools.md, section 5).
const (
	// LabelOwnerSpiderSubnet names the SpiderSubnet a pool belongs to (also on manual
	// pools whose subnet equals a SpiderSubnet's).
	LabelOwnerSpiderSubnet = "ipam.spidernet.io/owner-spider-subnet"
	// LabelOwnerAppGV is the application's group and version, "apps_v1"; "_v1" for the
	// core group.
	LabelOwnerAppGV        = "ipam.spidernet.io/owner-application-gv"
	LabelOwnerAppKind      = "ipam.spidernet.io/owner-application-kind"
	LabelOwnerAppNamespace = "ipam.spidernet.io/owner-application-namespace"
	LabelOwnerAppName      = "ipam.spidernet.io/owner-application-name"
	LabelOwnerAppUID       = "ipam.spidernet.io/owner-application-uid"
	// LabelInterface is the pod interface the pool serves, e.g. eth0.
	LabelInterface = "ipam.spidernet.io/interface"
	// LabelIPVersion is "IPv4" or "IPv6".
	LabelIPVersion = "ipam.spidernet.io/ip-version"
	// LabelIPPoolReclaim is "true" when the pool goes with its application.
	LabelIPPoolReclaim = "ipam.spidernet.io/ippool-reclaim"
)

// AnnoPodIPPoolReclaim is the pod-template annotation that keeps an application's auto
// pool after the application is deleted ("false"); the default is "true".
const AnnoPodIPPoolReclaim = "ipam.spidernet.io/ippool-reclaim"

// Application is the workload an auto pool is for: a pod's top controller.
type Application struct {
	// APIVersion is the application's group/version, e.g. "apps/v1".
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	UID        string
}

// String is "Kind namespace/name" for messages.
func (a Application) String() string { return a.Kind + " " + a.Namespace + "/" + a.Name }

// GVLabelValue is the application's group and version as SpiderPool writes them in
// LabelOwnerAppGV and the app-api-group label: "apps_v1"; "_v1" for the core group.
func (a Application) GVLabelValue() string {
	gv, _ := schema.ParseGroupVersion(a.APIVersion)
	return gv.Group + "_" + gv.Version
}

// IPVersionLabelValue is LabelIPVersion's value for a family (4 or 6).
func IPVersionLabelValue(family int64) string {
	if family == v2beta1.IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// maxPoolName is a pool name's limit: a DNS subdomain.
const maxPoolName = 253

// AutoPoolName is the name of an application's auto pool for an interface and family,
// as SpiderPool names it: auto{4|6}-{app name}-{interface}-{the first five characters
// of the last dash-separated part of the application's UID}, lower-cased, the
// application's name cut so that the whole fits a DNS subdomain.
func AutoPoolName(family int64, app Application, nic string) string {
	uid := app.UID
	if i := strings.LastIndexByte(uid, '-'); i >= 0 {
		uid = uid[i+1:]
	}
	if len(uid) > 5 {
		uid = uid[:5]
	}
	suffix := "-" + nic + "-" + uid
	prefix := "auto" + strconv.FormatInt(family, 10) + "-"
	name := app.Name
	if room := maxPoolName - len(prefix) - len(suffix); len(name) > room {
		name = strings.TrimRight(name[:max(room, 0)], "-.")
	}
	return strings.ToLower(prefix + name + suffix)
}

// AutoPoolLabels are the labels of an application's auto pool.
func AutoPoolLabels(app Application, subnet, nic string, family int64, reclaim bool) map[string]string {
	return map[string]string{
		LabelOwnerSpiderSubnet: subnet,
		LabelOwnerAppGV:        app.GVLabelValue(),
		LabelOwnerAppKind:      app.Kind,
		LabelOwnerAppNamespace: app.Namespace,
		LabelOwnerAppName:      app.Name,
		LabelOwnerAppUID:       app.UID,
		LabelInterface:         nic,
		LabelIPVersion:         IPVersionLabelValue(family),
		LabelIPPoolReclaim:     strconv.FormatBool(reclaim),
	}
}

// AutoPoolAffinity is an auto pool's spec.podAffinity: it admits the pods whose top
// controller is the application (SelectPools matches it against affinityLabels).
func AutoPoolAffinity(app Application) *metav1.LabelSelector {
	gv, _ := schema.ParseGroupVersion(app.APIVersion)
	return &metav1.LabelSelector{MatchLabels: map[string]string{
		LabelAppAPIGroup:   gv.Group,
		LabelAppAPIVersion: gv.Version,
		LabelAppKind:       app.Kind,
		LabelAppNamespace:  app.Namespace,
		LabelAppName:       app.Name,
	}}
}

// IsAutoPool tells whether a pool was created for an application.
func IsAutoPool(p *v2beta1.SpiderIPPool) bool {
	_, ok := p.Labels[LabelOwnerAppUID]
	return ok
}

// AutoPoolsFor returns the auto pools that serve interface nic of the application top
// in a family, cut from the named subnet (any subnet when subnet is empty), leaving out
// pools being deleted; by name. It matches the application by kind, namespace and name,
// as the pools' podAffinity does, so a pool kept (ippool-reclaim "false") for a deleted
// application serves the next one of the same name.
func AutoPoolsFor(pools []v2beta1.SpiderIPPool, top TopController, subnet, nic string, family int64) []string {
	var out []string
	for i := range pools {
		p := &pools[i]
		l := p.Labels
		if p.DeletionTimestamp != nil || !IsAutoPool(p) ||
			l[LabelOwnerAppKind] != top.Kind || l[LabelOwnerAppNamespace] != top.Namespace || l[LabelOwnerAppName] != top.Name ||
			l[LabelInterface] != nic || l[LabelIPVersion] != IPVersionLabelValue(family) ||
			(subnet != "" && l[LabelOwnerSpiderSubnet] != subnet) {
			continue
		}
		out = append(out, p.Name)
	}
	slices.Sort(out)
	return out
}

// DesiredIPNumber is the size of an auto pool: N for a fixed "N", the application's
// replicas plus N for "+N". It is the only place that computes it; the agent never
// does (SpiderPool computes it twice, with different defaults: #4376).
func DesiredIPNumber(n IPNumber, replicas int64) int64 {
	if n.Flexible {
		return max(replicas, 0) + int64(n.N)
	}
	return int64(n.N)
}

// AutoPoolRequest is what an application's pod template asks of auto pools.
type AutoPoolRequest struct {
	// Subnets are the interfaces and their subnets, from ipam.spidernet.io/subnets or
	// ipam.spidernet.io/subnet.
	Subnets []SubnetAnnotation
	// IPNumber sizes each pool; the default "+N" when the template does not say.
	IPNumber IPNumber
	// Reclaim is false when ipam.spidernet.io/ippool-reclaim is "false": the pools stay
	// after the application is deleted.
	Reclaim bool
}

// AutoPoolRequestOf reads a pod template's annotations. ok is false when the template
// asks for no auto pool. defaultFlexible is the "+N" used when the template has no
// ipam.spidernet.io/ippool-ip-number. A malformed annotation is ErrBadAnnotation.
func AutoPoolRequestOf(annotations map[string]string, defaultFlexible int) (req AutoPoolRequest, ok bool, err error) {
	if v, has := annotations[AnnoPodSubnets]; has {
		if req.Subnets, err = ParseSubnets(v); err != nil {
			return AutoPoolRequest{}, false, err
		}
	} else if v, has := annotations[AnnoPodSubnet]; has {
		s, err := ParseSubnet(v)
		if err != nil {
			return AutoPoolRequest{}, false, err
		}
		req.Subnets = []SubnetAnnotation{s}
	} else {
		return AutoPoolRequest{}, false, nil
	}
	req.IPNumber = IPNumber{N: defaultFlexible, Flexible: true}
	if v, has := annotations[AnnoPodIPPoolIPNumber]; has {
		if req.IPNumber, err = ParseIPNumber(v); err != nil {
			return AutoPoolRequest{}, false, err
		}
	}
	req.Reclaim = true
	if v, has := annotations[AnnoPodIPPoolReclaim]; has {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return AutoPoolRequest{}, false, badAnnotation(AnnoPodIPPoolReclaim, `write "true" or "false"`, "%s is not a boolean", quote(v))
		}
		req.Reclaim = b
	}
	return req, true, nil
}

// SubnetFor returns the subnet an interface's auto pool of a family comes from, "" when
// the request names none. As in SpiderPool, only the first name of a list counts.
func (r AutoPoolRequest) SubnetFor(nic string, family int64) string {
	for _, s := range r.Subnets {
		if s.Interface != nic {
			continue
		}
		names := s.IPv4
		if family == v2beta1.IPv6 {
			names = s.IPv6
		}
		if len(names) > 0 {
			return names[0]
		}
	}
	return ""
}
