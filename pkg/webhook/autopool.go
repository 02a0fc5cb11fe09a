package webhook

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// Auto pools (ipam.IsAutoPool: label ipam.spidernet.io/owner-application-uid) belong to
// orbweaver's auto-pool controller (pkg/controller/autopool). It cuts a pool's spec.ips
// from the SpiderSubnet to the size the workload asks for and points its
// spec.podAffinity at the workload's pods. As in SpiderPool, a hand edit of either is
// refused, with what to change instead; the controller's own edits pass.
//
// Who the controller is. SpiderPool tells its controller's edits by their content: an
// auto pool's addresses must equal the pool's entry in its subnet's
// status.controlledIPPools, which SpiderPool's subnet controller writes before it writes
// the pool. orbweaver's auto-pool controller writes only the pool, and its subnet
// controller derives controlledIPPools from the pools afterwards (pkg/controller/subnet),
// so that entry always shows the addresses before the edit and cannot tell the two
// apart. orbweaver tells by the request's user instead: the webhooks and the auto-pool
// controller run in one process, orbweaver-controller, with one set of credentials (its
// ServiceAccount), so an update made as the user the webhook itself runs as is the
// controller's (server.go asks the API server who that is). Any other user (kubectl, a
// GitOps tool, another controller) makes a hand edit. Unlike an annotation or a field
// manager's name, the user cannot be claimed by a client; the API server authenticates
// it. Other controllers of the process write pools too, but none of them changes an auto
// pool's spec.ips or spec.podAffinity.

var (
	podAffinityMatchLabelsPath      = podAffinityPath.Child("matchLabels")
	podAffinityMatchExpressionsPath = podAffinityPath.Child("matchExpressions")
)

// ValidateAutoPoolEdit returns what an update of an auto pool may not do unless the
// auto-pool controller makes it: change spec.ips (compared as sets of addresses, so that
// Default's merging of ranges is no change), or change spec.podAffinity. old decides
// whether the pool is an auto pool, so an update that also drops the pool's labels is
// refused all the same. The caller drops these errors for the controller's own updates
// (server.go), and asks who made the update only when there is one to drop.
//
// spec.excludeIPs stays editable, unlike in SpiderPool: an excluded address no longer
// counts towards the pool's size, and the controller adds another in its place.
func ValidateAutoPoolEdit(old, pool *v2beta1.SpiderIPPool) field.ErrorList {
	if !ipam.IsAutoPool(old) {
		return nil
	}
	app, subnet := autoPoolOwners(old)
	var errs field.ErrorList
	if !sameAddresses(old.Spec.IPs, pool.Spec.IPs) {
		errs = append(errs, field.Forbidden(ipsPath, fmt.Sprintf(
			"is set by orbweaver's auto-pool controller, which sizes this auto pool of %s from SpiderSubnet %q; "+
				"to change its size, edit the %s annotation of the workload's pod template instead (\"+2\": its replicas plus 2; \"5\": exactly 5); "+
				"to keep an address out of use, add it to spec.excludeIPs",
			app, subnet, ipam.AnnoPodIPPoolIPNumber)))
	}
	if !equality.Semantic.DeepEqual(old.Spec.PodAffinity, pool.Spec.PodAffinity) {
		errs = append(errs, field.Forbidden(podAffinityPath, fmt.Sprintf(
			"is set by orbweaver's auto-pool controller to the pods of %s, whose auto pool this is; "+
				"to give other pods addresses of SpiderSubnet %q, annotate their workload's pod template with %s, or give them a SpiderIPPool of their own",
			app, subnet, ipam.AnnoPodSubnet)))
	}
	return errs
}

// checkAutoPoolAffinity: an auto pool's podAffinity, when present, selects its
// application with the ipam.spidernet.io/app-* matchLabels that ipam.AutoPoolAffinity
// writes, and nothing else (SpiderPool's rule): another label or any matchExpressions
// would make the pool serve other pods than its application's, or none. Checked on
// create and when an update changes podAffinity.
func checkAutoPoolAffinity(pool *v2beta1.SpiderIPPool) field.ErrorList {
	sel := pool.Spec.PodAffinity
	if !ipam.IsAutoPool(pool) || sel == nil {
		return nil
	}
	allowed := ipam.AutoPoolAffinity(ipam.Application{}).MatchLabels
	keys := strings.Join(slices.Sorted(maps.Keys(allowed)), ", ")
	var errs field.ErrorList
	for _, k := range slices.Sorted(maps.Keys(sel.MatchLabels)) {
		if _, ok := allowed[k]; !ok {
			errs = append(errs, field.Forbidden(podAffinityMatchLabelsPath.Key(k),
				"an auto pool's podAffinity selects its application's pods by "+keys+" only"))
		}
	}
	if len(sel.MatchExpressions) > 0 {
		errs = append(errs, field.Forbidden(podAffinityMatchExpressionsPath,
			"an auto pool's podAffinity selects its application's pods by matchLabels only"))
	}
	return errs
}

// autoPoolOwners names, for messages, an auto pool's application ("Deployment
// default/web") and SpiderSubnet from its labels.
func autoPoolOwners(p *v2beta1.SpiderIPPool) (app, subnet string) {
	l := p.Labels
	app = "its workload"
	if l[ipam.LabelOwnerAppName] != "" {
		app = ipam.Application{Kind: l[ipam.LabelOwnerAppKind], Namespace: l[ipam.LabelOwnerAppNamespace], Name: l[ipam.LabelOwnerAppName]}.String()
	}
	return app, l[ipam.LabelOwnerSpiderSubnet]
}

// sameAddresses reports whether two ips lists name the same addresses; lists that do not
// parse are compared as written.
func sameAddresses(a, b []v2beta1.IPOrRange) bool {
	sa, errA := ip.ParseRanges(tokens(a))
	sb, errB := ip.ParseRanges(tokens(b))
	if errA != nil || errB != nil {
		return slices.Equal(a, b)
	}
	return sa.Equal(sb)
}
