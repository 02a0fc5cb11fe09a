package eipbinding

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// Who may ask for an EIP by pod annotation. A public IP costs money and exposes the
// pod's ports, so a per-pod request (orbweaver.io/with-eip, orbweaver.io/eip-id, the
// per-pod attributes, the vendors' annotations) is honoured only where an administrator
// allowed it, and an EIP named by ID only when the pod may use that EIP. The decisions
// are the pure functions below; the reconciler gathers their facts and obeys them.

// The --eip-pod-requests modes.
const (
	// PodRequestsRestricted honours per-pod requests only where a namespace label or a
	// pool's allowPodRequests allows them (the default).
	PodRequestsRestricted = "restricted"
	// PodRequestsOpen honours every pod's requests: for single-tenant clusters.
	PodRequestsOpen = "open"
)

// TagNamespace is on the EIPs orbweaver allocates for a pod's request: the pod's
// namespace. An administrator tags an EIP of the account with it and TagCluster (and no
// TagPool) to reserve it for a namespace's pods to name by orbweaver.io/eip-id; such a
// reservation is never collected as an orphan.
const TagNamespace = "orbweaver.io/namespace"

// Refusal reasons: the reason label of orbweaver_eip_requests_refused_total, and in the
// Warning event and the pod's readiness gate.
const (
	RefusedNamespaceNotAllowed    = "NamespaceNotAllowed"
	RefusedEIPNotFound            = "EIPNotFound"
	RefusedEIPOfAnotherCluster    = "EIPOfAnotherCluster"
	RefusedEIPOfAnotherPool       = "EIPOfAnotherPool"
	RefusedEIPAssociatedElsewhere = "EIPAssociatedElsewhere"
	RefusedEIPNotGranted          = "EIPNotGranted"
	RefusedEIPListTooShort        = "EIPListTooShort"
)

// refusal says why a pod's request is not honoured: the rule, and what an
// administrator (or the pod's owner) must change.
type refusal struct {
	reason string
	msg    string
}

// requestAccess is what decides whether a pod may ask for EIPs by annotation for its
// IP of one pool.
type requestAccess struct {
	// open: the controller runs with --eip-pod-requests=open.
	open bool
	// namespace and its labels.
	namespace       string
	namespaceLabels map[string]string
	// pool is the pool of the IP, and its EIP attribute (nil: none).
	pool string
	spec *v2beta1.EIPSpec
}

// mayRequest tells whether the pod's request may be honoured; nil when it may.
func mayRequest(a requestAccess) *refusal {
	switch {
	case a.open:
		return nil
	case a.namespaceLabels[v2beta1.LabelEIPRequests] == v2beta1.EIPRequestsAllowed:
		return nil
	case a.spec != nil && a.spec.AllowPodRequests:
		return nil
	}
	return &refusal{reason: RefusedNamespaceNotAllowed, msg: fmt.Sprintf(
		"per-pod EIP requests are not allowed in namespace %s for SpiderIPPool %s; nothing was allocated or bound. "+
			"An administrator allows them by labelling the namespace %s=%s, by setting spec.orbweaver.eip.allowPodRequests: true on the pool, "+
			"or cluster-wide with the controller's --eip-pod-requests=open (chart value eip.podRequests: open); otherwise remove the pod's EIP annotations",
		a.namespace, a.pool, v2beta1.LabelEIPRequests, v2beta1.EIPRequestsAllowed)}
}

// listing is a pool whose spec.orbweaver.eip.static lists an EIP.
type listing struct {
	pool string
	// admits: the pool admits the pod's namespace (namespaceName, namespaceAffinity).
	admits bool
}

// idFacts is what decides whether a pod may bind the EIP it names by ID.
type idFacts struct {
	id        string
	cluster   string // this cluster's ID
	namespace string // the pod's
	ip        string // the pod's IP the EIP would be bound to
	// found: the cloud has the EIP; addr is its description.
	found bool
	addr  eip.Address
	// listedBy are the pools whose Static list has the EIP.
	listedBy []listing
	// trackedBy are the bindings ("pool/ip") other than this IP's that hold the EIP.
	trackedBy []string
}

// mayBind tells whether the pod may bind the EIP it names; nil when it may. It may bind
// an EIP listed by a Static pool its namespace may use, or one tagged by this cluster
// for its namespace; never one another cluster tagged, one associated elsewhere, one
// another pool IP's binding holds, or one listed by a pool its namespace may not use.
func mayBind(f idFacts) *refusal {
	fix := fmt.Sprintf("name an EIP of a Static pool namespace %s may use, or one an administrator tagged %s=%s and %s=%s in the cloud; or remove %s",
		f.namespace, TagCluster, f.cluster, TagNamespace, f.namespace, v2beta1.AnnoEIPID)
	no := func(reason, format string, args ...any) *refusal {
		return &refusal{reason: reason, msg: fmt.Sprintf("EIP %s named by %s: ", f.id, v2beta1.AnnoEIPID) + fmt.Sprintf(format, args...) + "; nothing was bound. " + fix}
	}
	switch {
	case !f.found:
		return no(RefusedEIPNotFound, "the cloud has no such EIP")
	case f.addr.Tags[TagCluster] != "" && f.addr.Tags[TagCluster] != f.cluster:
		return no(RefusedEIPOfAnotherCluster, "it is tagged %s=%s, another cluster's", TagCluster, f.addr.Tags[TagCluster])
	case f.addr.State != eip.Available && f.addr.PrivateIP != f.ip:
		return no(RefusedEIPAssociatedElsewhere, "it is %s on %s/%s, not on the pod's IP %s", f.addr.State, f.addr.NetworkInterface, f.addr.PrivateIP, f.ip)
	case len(f.trackedBy) > 0:
		return no(RefusedEIPOfAnotherPool, "it is the EIP of pool IP %s", strings.Join(f.trackedBy, ", "))
	}
	for _, l := range f.listedBy {
		if !l.admits {
			return no(RefusedEIPOfAnotherPool, "it is listed by SpiderIPPool %s, which namespace %s may not use", l.pool, f.namespace)
		}
	}
	if len(f.listedBy) > 0 {
		return nil
	}
	if f.addr.Tags[TagCluster] == f.cluster && f.addr.Tags[TagNamespace] == f.namespace {
		return nil
	}
	return no(RefusedEIPNotGranted, "no Static pool namespace %s may use lists it, and it is not tagged for the namespace", f.namespace)
}

// admitsNamespace tells whether a pool admits pods of a namespace: its namespaceName,
// else its namespaceAffinity, as pool selection checks them.
func admitsNamespace(sp *v2beta1.SpiderIPPool, namespace string, nsLabels map[string]string) bool {
	if len(sp.Spec.NamespaceName) > 0 {
		return slices.Contains(sp.Spec.NamespaceName, namespace)
	}
	if sp.Spec.NamespaceAffinity != nil {
		sel, err := metav1.LabelSelectorAsSelector(sp.Spec.NamespaceAffinity)
		return err == nil && sel.Matches(labels.Set(nsLabels))
	}
	return true
}
