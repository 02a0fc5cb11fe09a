package eipbinding

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// observe gathers what planning needs about every IP of the pool that is held or has a
// binding: its state, what the pod holding it asks and whether that is honoured, and
// its last failed step. It reads the cache, the cloud (an EIP named by ID) and the
// reconciler's memory, and decides nothing.
func (r *reconciler) observe(ctx context.Context, sp *v2beta1.SpiderIPPool, pool ipam.Pool, deleting bool,
	reqs map[string]podRequest, bad map[string]error) (planInput, error) {
	in := planInput{pool: sp.Name, pol: policyOf(specOf(sp), deleting), deleting: deleting, defaultProvider: r.p.DefaultProvider,
		now: r.clock.Now(), retryInterval: r.p.RetryInterval}
	total, err := ipam.EffectiveAddresses(pool.Subnet(), sp.Spec.IPs, sp.Spec.ExcludeIPs)
	if err != nil {
		return in, reconcile.TerminalError(err)
	}
	var static map[netip.Addr]string
	if in.pol.static() {
		static = staticMap(total, in.pol.spec.Static)
	}
	var ses v2beta1.SpiderEndpointList
	if err := r.cache.List(ctx, &ses, client.MatchingFields{sePoolIndex: sp.Name}); err != nil {
		return in, fmt.Errorf("list SpiderEndpoints of pool %q: %w", sp.Name, err)
	}
	held, doubled := holdersOf(sp, pool, ses.Items)
	for _, a := range slices.SortedFunc(maps.Keys(doubled), netip.Addr.Compare) {
		ctrl.LoggerFrom(ctx).Error(errDoubleHold, "No EIP steps for the pods of an address several SpiderEndpoints name", "ip", a, "SpiderEndpoints", doubled[a])
	}
	states := map[netip.Addr]*ipState{}
	for _, b := range bindingsOf(sp) {
		a, err := netip.ParseAddr(b.IP)
		if err != nil {
			continue
		}
		states[a] = &ipState{Binding: b.DeepCopy()}
	}
	for a, h := range held {
		s := states[a]
		if s == nil {
			s = &ipState{}
			states[a] = s
		}
		s.Held, s.Holder = true, h
	}
	facts := &accessFacts{cache: r.cache}
	for _, a := range slices.SortedFunc(maps.Keys(states), netip.Addr.Compare) {
		s := states[a]
		s.StaticID, s.Outside = static[a], !total.Contains(a)
		o := observedIP{addr: a, st: *s}
		if s.Holder != nil {
			key := s.Holder.Pod.String()
			o.badRequest = bad[key]
			if req, ok := reqs[key]; ok {
				o.req = &req
				spec := effectiveSpec(in.pol.spec, req, r.p.DefaultProvider)
				o.refused, o.authErr = r.authorize(ctx, facts, sp, a, s, req, spec)
			}
		}
		if f, ok := r.lastFailure(sp.Name, a); ok {
			o.lastFailure = &f
		}
		in.ips = append(in.ips, o)
	}
	return in, nil
}

// tellRefusals notes the pool's refusals of this reconcile and adds a Warning event to
// the steps of the pods whose refusal is new.
func (r *reconciler) tellRefusals(ctx context.Context, pool string, steps []step, refused map[string]refusalEntry) {
	fresh := r.noteRefusals(pool, refused)
	for i := range steps {
		st := &steps[i]
		if st.refused == nil || !fresh[st.st.Holder.Pod.String()] {
			continue
		}
		st.events = append(st.events, event{pod: st.st.Holder, warn: true, reason: ReasonRequestRefused, msg: fmt.Sprintf("%s: %s", st.refused.reason, st.refused.msg)})
		ctrl.LoggerFrom(ctx).Info("Refused a pod's EIP request", "Pod", klog.KRef(st.st.Holder.Pod.Namespace, st.st.Holder.Pod.Name),
			"ip", st.addr, "reason", st.refused.reason)
	}
}

// errDoubleHold: two endpoints name one address of a pool in Grants mode.
var errDoubleHold = errors.New("an address with two holders")

// holdersOf returns every address of the pool that a pod holds, with the pod when it is
// known (nil: held, by no endpoint this controller can trust). In Records mode the
// pool's records say what is held (a node agent's reserve holds for no pod), and an
// endpoint is the holder only when it is the endpoint of the pod the record names: a
// stale endpoint of an earlier pod never steers an EIP. In Grants mode the endpoints
// are the records: each endpoint naming an address of the pool holds it. An address
// that two endpoints name, which the agents never write, stays held (its EIP is not
// released) but by neither, so its EIP is bound to neither pod; doubled names those
// endpoints ("namespace/name") by address.
func holdersOf(sp *v2beta1.SpiderIPPool, pool ipam.Pool, ses []v2beta1.SpiderEndpoint) (held map[netip.Addr]*holder, doubled map[netip.Addr][]string) {
	held = map[netip.Addr]*holder{}
	if sp.GrantsMode() {
		for _, h := range ipam.EndpointHolds(sp.Name, pool.Subnet(), ses) {
			name := h.Namespace + "/" + h.Name
			if prev, ok := held[h.Addr]; ok {
				if doubled == nil {
					doubled = map[netip.Addr][]string{}
				}
				if prev != nil {
					doubled[h.Addr] = []string{prev.Pod.String()}
				}
				doubled[h.Addr] = append(doubled[h.Addr], name)
				held[h.Addr] = nil
				continue
			}
			held[h.Addr] = &holder{Pod: types.NamespacedName{Namespace: h.Namespace, Name: h.Name}, UID: h.PodUID, Node: h.Node}
		}
		return held, doubled
	}
	endpoints := map[netip.Addr]*holder{}
	for i := range ses {
		se := &ses[i]
		for _, a := range ipam.EndpointAddrs(se, sp.Name) {
			// Only the endpoint of the pod the record names: a stale endpoint of an
			// earlier pod never steers an EIP.
			if o, ok := pool.Holder(a); ok && o.Pod == records.PodKey(se.Status.Current.UID) {
				endpoints[a] = &holder{Pod: types.NamespacedName{Namespace: se.Namespace, Name: se.Name}, UID: se.Status.Current.UID, Node: se.Status.Current.Node}
			}
		}
	}
	for _, o := range pool.Owners() {
		if o.IsReserve() {
			continue
		}
		for _, a := range pool.AllHeldBy(o) {
			held[a] = endpoints[a]
		}
	}
	return held, nil
}

// requests returns the EIP requests of the pods that ask, by namespace/name, the parse
// errors of those that ask wrongly, and the pods that declare the readiness gate.
func (r *reconciler) requests(ctx context.Context) (reqs map[string]podRequest, bad map[string]error, gates []string, err error) {
	var pods corev1.PodList
	if err := r.cache.List(ctx, &pods, client.MatchingFields{podRequestIndex: "true"}); err != nil {
		return nil, nil, nil, fmt.Errorf("list pods that ask for EIPs: %w", err)
	}
	reqs, bad = map[string]podRequest{}, map[string]error{}
	for i := range pods.Items {
		p := &pods.Items[i]
		key := p.Namespace + "/" + p.Name
		if r.gated(p) {
			gates = append(gates, key)
		}
		req, err := parsePodRequest(p, r.p.VendorAnnotations)
		if err != nil {
			bad[key] = err
			continue
		}
		if req.any() {
			reqs[key] = req
		}
	}
	return reqs, bad, gates, nil
}

// servesRequester tells whether a pool without the EIP attribute holds an IP of a pod
// that asks for an EIP by annotation.
func (r *reconciler) servesRequester(ctx context.Context, sp *v2beta1.SpiderIPPool, reqs map[string]podRequest, bad map[string]error) bool {
	for key := range reqs {
		if r.endpointIn(ctx, key, sp.Name) {
			return true
		}
	}
	for key := range bad {
		if r.endpointIn(ctx, key, sp.Name) {
			return true
		}
	}
	return false
}

func (r *reconciler) endpointIn(ctx context.Context, key, pool string) bool {
	ns, name, _ := strings.Cut(key, "/")
	se := &v2beta1.SpiderEndpoint{}
	return r.cache.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, se) == nil && slices.Contains(ipam.EndpointPools(se), pool)
}
