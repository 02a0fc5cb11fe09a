package eipbinding

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// verifyDue tells whether the pool's Bound EIPs are due a check with the cloud.
func (r *reconciler) verifyDue(sp *v2beta1.SpiderIPPool) bool {
	if r.p.VerifyInterval < 0 || !slices.ContainsFunc(bindingsOf(sp), func(b v2beta1.EIPBinding) bool { return b.Phase == v2beta1.EIPBound }) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	last, ok := r.verified[sp.Name]
	if !ok { // first sight (a restart): verify now, so drift during the outage is found
		return true
	}
	return r.clock.Now().Sub(last) >= r.p.VerifyInterval
}

// verify checks every Bound EIP of the pool with the cloud, one Describe per provider:
// one no longer in use on its IP goes back to Allocated (associated again next), one
// gone from the cloud is dropped (a new one is allocated, or the Static EIP's absence
// reported). It returns the pool as written.
func (r *reconciler) verify(ctx context.Context, sp *v2beta1.SpiderIPPool) (*v2beta1.SpiderIPPool, error) {
	byProvider := map[string][]string{}
	for _, b := range bindingsOf(sp) {
		if b.Phase == v2beta1.EIPBound {
			byProvider[b.Provider] = append(byProvider[b.Provider], b.AllocationID)
		}
	}
	found := map[string]eip.Address{}
	for name, ids := range byProvider {
		p, err := r.provider(name)
		if err != nil {
			continue // reported by the condition
		}
		got, err := p.Describe(ctx, eip.Filter{IDs: ids})
		r.metrics.call(name, "Describe", err)
		if err != nil {
			return nil, fmt.Errorf("verify the EIPs of SpiderIPPool %q: %w", sp.Name, err)
		}
		for _, a := range got {
			found[a.ID] = a
		}
		for _, id := range ids {
			if _, ok := found[id]; !ok {
				found[id] = eip.Address{} // gone
			}
		}
	}
	changes, gone := map[string]*v2beta1.EIPBinding{}, map[string]bool{}
	for _, b := range bindingsOf(sp) {
		a, checked := found[b.AllocationID]
		switch {
		case b.Phase != v2beta1.EIPBound || !checked:
		case a.ID == "":
			gone[b.IP] = true
			r.p.Recorder.Eventf(sp, corev1.EventTypeWarning, ReasonFailed, "EIP %s (%s) of IP %s is gone from the cloud; the binding is dropped", b.PublicIP, b.AllocationID, b.IP)
		case a.State != eip.InUse || a.PrivateIP != b.IP || a.NetworkInterface != b.NetworkInterface:
			nb := b.DeepCopy()
			nb.Phase, nb.Message = v2beta1.EIPAllocated, fmt.Sprintf("found %s on %q/%q instead of bound to %s/%s; binding it again", a.State, a.NetworkInterface, a.PrivateIP, b.NetworkInterface, b.IP)
			changes[b.IP] = nb
			r.p.Recorder.Eventf(sp, corev1.EventTypeWarning, ReasonUnbound, "EIP %s (%s) of IP %s: %s", b.PublicIP, b.AllocationID, b.IP, nb.Message)
		}
	}
	r.mu.Lock()
	r.verified[sp.Name] = r.clock.Now()
	r.mu.Unlock()
	if len(changes) == 0 && len(gone) == 0 {
		return sp, nil
	}
	return r.writeStatus(ctx, sp.Name, func(p *v2beta1.SpiderIPPool) bool { return applyBindings(p, changes, gone) })
}
