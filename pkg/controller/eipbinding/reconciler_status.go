package eipbinding

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/cas"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// writeBefore records every step's before binding in one status write.
func (r *reconciler) writeBefore(ctx context.Context, name string, steps []step) error {
	changes := map[string]*v2beta1.EIPBinding{}
	for _, s := range steps {
		if s.before != nil && s.err == nil && (s.st.Binding == nil || !equality.Semantic.DeepEqual(*s.before, *s.st.Binding)) {
			changes[s.addr.String()] = s.before
		}
	}
	if len(changes) == 0 {
		return nil
	}
	_, err := r.writeStatus(ctx, name, func(sp *v2beta1.SpiderIPPool) bool {
		return applyBindings(sp, changes, nil)
	})
	return err
}

// record writes every step's result and the EIPReady condition, and returns the pool
// as written.
func (r *reconciler) record(ctx context.Context, name string, steps []step, pol policy) (*v2beta1.SpiderIPPool, error) {
	changes, gone := map[string]*v2beta1.EIPBinding{}, map[string]bool{}
	for i := range steps {
		s := &steps[i]
		key := s.addr.String()
		switch {
		case s.err != nil && (s.before != nil || s.st.Binding != nil):
			nb := s.before
			if nb == nil {
				nb = s.st.Binding
			}
			nb = nb.DeepCopy()
			nb.Message = truncate(s.err.Error(), 1024)
			changes[key] = nb
		case s.err != nil, s.op == opNone:
		case s.after == nil:
			gone[key] = true
		default:
			changes[key] = s.after
		}
	}
	var missing error
	if pol.spec != nil {
		_, missing = r.provider(pol.spec.Provider)
	}
	return r.writeStatus(ctx, name, func(sp *v2beta1.SpiderIPPool) bool {
		changed := applyBindings(sp, changes, gone)
		return setCondition(sp, readiness(sp, steps, missing), r.clock.Now()) || changed
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// applyBindings upserts and removes bindings; it reports whether anything changed.
func applyBindings(sp *v2beta1.SpiderIPPool, changes map[string]*v2beta1.EIPBinding, gone map[string]bool) bool {
	if sp.Status.Orbweaver == nil {
		sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{}
	}
	old := sp.Status.Orbweaver.EIPs
	next := make([]v2beta1.EIPBinding, 0, len(old)+len(changes))
	seen := map[string]bool{}
	for _, b := range old {
		seen[b.IP] = true
		switch {
		case gone[b.IP]:
		case changes[b.IP] != nil:
			next = append(next, *changes[b.IP])
		default:
			next = append(next, b)
		}
	}
	for ipStr, b := range changes {
		if !seen[ipStr] {
			next = append(next, *b)
		}
	}
	slices.SortFunc(next, func(a, b v2beta1.EIPBinding) int { return strings.Compare(a.IP, b.IP) })
	if equality.Semantic.DeepEqual(old, next) || len(old) == 0 && len(next) == 0 {
		return false
	}
	sp.Status.Orbweaver.EIPs = next
	return true
}

// writeStatus applies change to a fresh read of the pool and writes its status, again
// after a backoff on a conflict (node agents write records into the same object).
func (r *reconciler) writeStatus(ctx context.Context, name string, change func(*v2beta1.SpiderIPPool) bool) (*v2beta1.SpiderIPPool, error) {
	var sp *v2beta1.SpiderIPPool
	backoff := wait.Backoff{Duration: 20 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: 8, Cap: time.Second}
	err := cas.Retry(ctx, backoff, ipam.IsConflict, func() (err error) {
		if sp, err = r.pools.GetPool(ctx, name); err != nil || !change(sp) {
			return err
		}
		return r.pools.UpdatePoolStatus(ctx, sp)
	})
	switch {
	case ipam.IsConflict(err):
		return nil, fmt.Errorf("write EIP bindings of SpiderIPPool %q: %w", name, err)
	case err != nil:
		return nil, err
	}
	return sp, nil
}

// readiness is the pool's EIPReady condition after the steps; missing is why the
// pool's provider is unavailable, if it is.
func readiness(sp *v2beta1.SpiderIPPool, steps []step, missing error) metav1.Condition {
	c := metav1.Condition{Type: v2beta1.IPPoolEIPReadyCondition, Status: metav1.ConditionTrue, Reason: v2beta1.EIPAllBoundReason,
		Message: "every IP held by a pod has its EIP bound", ObservedGeneration: sp.Generation}
	if missing != nil {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v2beta1.EIPProviderMissingReason, truncate(missing.Error(), 1024)
		return c
	}
	var errs []string
	pending := 0
	for _, s := range steps {
		if s.err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", s.addr, s.err))
			if c.Reason == v2beta1.EIPAllBoundReason || c.Reason == v2beta1.EIPBindingReason {
				c.Reason = reasonOf(s.err)
			}
		}

		if s.op == opNone && s.cond != "" {
			if c.Reason == v2beta1.EIPAllBoundReason || c.Reason == v2beta1.EIPBindingReason {
				c.Reason = s.cond
			}
			errs = append(errs, s.note)
		}
	}
	// sp holds the bindings as they will be written: a held IP is pending until its
	// binding is Bound, any other until it is settled.
	phase := map[string]v2beta1.EIPPhase{}
	for _, b := range bindingsOf(sp) {
		phase[b.IP] = b.Phase
		if b.Phase != v2beta1.EIPBound && b.Phase != v2beta1.EIPAllocated {
			pending++
		}
	}
	for _, s := range steps {
		if s.st.Held && s.st.Holder != nil && s.err == nil && len(s.events) == 0 && s.cond == "" && phase[s.addr.String()] == v2beta1.EIPAllocated {
			pending++
		}
	}
	switch {
	case len(errs) > 0:
		c.Status, c.Message = metav1.ConditionFalse, truncate(strings.Join(errs, "; "), 1024)
	case pending > 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v2beta1.EIPBindingReason, fmt.Sprintf("%d EIP bindings in progress", pending)
	}
	return c
}

// reasonOf classifies a cloud error for the condition and the events.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, eip.ErrQuotaExceeded):
		return v2beta1.EIPQuotaExceededReason
	case errors.Is(err, eip.ErrForbidden):
		return v2beta1.EIPForbiddenReason
	case errors.Is(err, errProviderMissing):
		return v2beta1.EIPProviderMissingReason
	case errors.Is(err, eip.ErrInvalidTarget), errors.Is(err, eip.ErrNotFound) && strings.Contains(err.Error(), "network interface"):
		return v2beta1.EIPInterfaceUnknownReason
	}
	return v2beta1.EIPCloudErrorReason
}

// setCondition sets c on the pool; it reports whether anything changed.
func setCondition(sp *v2beta1.SpiderIPPool, c metav1.Condition, now time.Time) bool {
	if sp.Status.Orbweaver == nil {
		sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{}
	}
	old := meta.FindStatusCondition(sp.Status.Orbweaver.Conditions, c.Type)
	if old != nil && old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message && old.ObservedGeneration == c.ObservedGeneration {
		return false
	}
	c.LastTransitionTime = metav1.NewTime(now.Truncate(time.Second))
	meta.SetStatusCondition(&sp.Status.Orbweaver.Conditions, c)
	return true
}
