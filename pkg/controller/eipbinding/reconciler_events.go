package eipbinding

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

type event struct {
	pod    *holder // nil: on the pool
	warn   bool
	reason string
	msg    string
}

// post posts a step's events, and a warning for its error.
func (r *reconciler) post(sp *v2beta1.SpiderIPPool, s *step) {
	if !s.waitUntil.IsZero() {
		return // posted when it failed
	}
	if s.err != nil {
		reason := ReasonFailed
		switch reasonOf(s.err) {
		case v2beta1.EIPQuotaExceededReason:
			reason = ReasonQuotaExceeded
		case v2beta1.EIPForbiddenReason:
			reason = ReasonForbidden
		case v2beta1.EIPProviderMissingReason:
			reason = ReasonProviderMissing
		case v2beta1.EIPInterfaceUnknownReason:
			reason = ReasonInterfaceUnknown
		}
		msg := fmt.Sprintf("EIP for IP %s (%s): %v%s", s.addr, s.op, s.err, advice(s.err))
		s.events = append(s.events, event{warn: true, reason: reason, msg: msg})
		if s.st.Holder != nil {
			s.events = append(s.events, event{pod: s.st.Holder, warn: true, reason: reason, msg: msg})
		}
	}
	for _, e := range s.events {
		kind := corev1.EventTypeNormal
		if e.warn {
			kind = corev1.EventTypeWarning
		}
		if e.pod == nil {
			r.p.Recorder.Event(sp, kind, e.reason, e.msg)
			continue
		}
		ref := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: e.pod.Pod.Namespace, Name: e.pod.Pod.Name, UID: types.UID(e.pod.UID)}}
		r.p.Recorder.Event(ref, kind, e.reason, e.msg)
	}
}

// advice is what a user can do about an error, for the event.
func advice(err error) string {
	switch {
	case errors.Is(err, eip.ErrQuotaExceeded):
		return "; raise the account's EIP quota, release unused EIPs, or lower the replicas"
	case errors.Is(err, eip.ErrForbidden):
		return "; grant the controller's credentials the permissions listed in docs/reference/eip-<provider>.md"
	case errors.Is(err, eip.ErrInvalidTarget):
		return "; the pod's IP must be a private IP of the node's network interface, or set the node annotation " + v2beta1.AnnoNodeEIPInterface
	}
	return ""
}

// attributeAnnotations are the pod annotations that set each allocation attribute:
// orbweaver's, then the vendors' read as it with VendorAnnotations.
func attributeAnnotations(attr string) []string {
	ours := map[string]string{
		eip.AttrBandwidth: v2beta1.AnnoEIPBandwidth, eip.AttrISP: v2beta1.AnnoEIPISP,
		eip.AttrInternetChargeType: v2beta1.AnnoEIPInternetChargeType, eip.AttrInstanceChargeType: v2beta1.AnnoEIPInstanceChargeType,
		eip.AttrPublicIPPool: v2beta1.AnnoEIPPublicIPPool, eip.AttrBandwidthPackage: v2beta1.AnnoEIPBandwidthPackage,
		eip.AttrResourceGroup: v2beta1.AnnoEIPResourceGroup, eip.AttrName: v2beta1.AnnoEIPName, eip.AttrDescription: v2beta1.AnnoEIPDescription,
	}[attr]
	if ours == "" {
		return nil
	}
	out := []string{ours}
	for _, a := range aliyunAnnotations {
		if a.ours == ours {
			out = append(out, a.key)
		}
	}
	return out
}

// unhonouredEvents are the Warning events, on the pool and on the pod of the step, for
// the attributes of an allocation the cloud has no parameter for: each is named, with
// its value and where it can be set, so it is never dropped silently.
func unhonouredEvents(provider string, got eip.Address, s *step, unhonoured []string, values map[string]string) []event {
	if len(unhonoured) == 0 {
		return nil
	}
	var parts []string
	for _, attr := range unhonoured {
		parts = append(parts, fmt.Sprintf("%s %q (spec.orbweaver.eip.%s; pod annotations %s)", attr, values[attr], attr, strings.Join(attributeAnnotations(attr), ", ")))
	}
	msg := fmt.Sprintf("EIP %s (%s) for IP %s was allocated without %s: provider %s cannot honour it (docs/reference/eip-%s.md); remove it, or allocate the EIP yourself and bind it by ID",
		got.PublicIP, got.ID, s.addr, strings.Join(parts, " and "), provider, provider)
	out := []event{{warn: true, reason: ReasonAttributeUnhonoured, msg: msg}}
	if s.st.Holder != nil {
		out = append(out, event{pod: s.st.Holder, warn: true, reason: ReasonAttributeUnhonoured, msg: msg})
	}
	return out
}
