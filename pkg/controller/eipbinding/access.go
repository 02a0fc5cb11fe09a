package eipbinding

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// accessFacts holds, for one reconcile, what authorizing pods' requests reads from the
// cache: namespaces' labels, and every pool (loaded once, on the first EIP named by ID).
type accessFacts struct {
	cache      client.Reader
	namespaces map[string]map[string]string
	pools      []v2beta1.SpiderIPPool
	loaded     bool
}

func (f *accessFacts) namespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	if l, ok := f.namespaces[name]; ok {
		return l, nil
	}
	ns := &corev1.Namespace{}
	if err := f.cache.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get namespace %q: %w", name, err)
	}
	if f.namespaces == nil {
		f.namespaces = map[string]map[string]string{}
	}
	f.namespaces[name] = ns.Labels
	return ns.Labels, nil
}

func (f *accessFacts) allPools(ctx context.Context) ([]v2beta1.SpiderIPPool, error) {
	if !f.loaded {
		var list v2beta1.SpiderIPPoolList
		if err := f.cache.List(ctx, &list); err != nil {
			return nil, fmt.Errorf("list SpiderIPPools: %w", err)
		}
		f.pools, f.loaded = list.Items, true
	}
	return f.pools, nil
}

// refusalEntry is a refusal as remembered between reconciles: new ones are counted and
// posted once, and an EIP named by ID is not described again before RetryInterval.
type refusalEntry struct {
	refusal
	id string
	at time.Time
}

// authorize decides whether the request of the pod holding IP a of pool sp is honoured
// (nil) or refused. A binding this very pod already holds by request (made before the
// rules, or before a change of them) is kept: a grant is revoked by deleting the pod.
func (r *reconciler) authorize(ctx context.Context, f *accessFacts, sp *v2beta1.SpiderIPPool, a netip.Addr, s *ipState,
	req podRequest, spec *v2beta1.EIPSpec) (*refusalEntry, error) {
	key := s.Holder.Pod.String()
	if b := s.Binding; b != nil && b.Requested && b.Pod == key {
		return nil, nil
	}
	ns := s.Holder.Pod.Namespace
	nsLabels, err := f.namespaceLabels(ctx, ns)
	if err != nil {
		return nil, err
	}
	now := r.clock.Now()
	if ref := mayRequest(requestAccess{open: r.p.PodRequests == PodRequestsOpen, namespace: ns, namespaceLabels: nsLabels, pool: sp.Name, spec: specOf(sp)}); ref != nil {
		return &refusalEntry{refusal: *ref, at: now}, nil
	}
	if req.listShort != "" {
		return &refusalEntry{refusal: refusal{reason: RefusedEIPListTooShort, msg: req.listShort}, at: now}, nil
	}
	if req.id == "" || spec == nil {
		return nil, nil
	}
	if prev, ok := r.lastRefusal(sp.Name, key); ok && prev.id == req.id && now.Sub(prev.at) < r.p.RetryInterval {
		return &prev, nil
	}
	p, err := r.provider(spec.Provider)
	if err != nil {
		return nil, nil // the step reports the missing provider, and calls nothing
	}
	got, err := p.Describe(ctx, eip.Filter{IDs: []string{req.id}})
	r.metrics.call(spec.Provider, "Describe", err)
	if err != nil && !errors.Is(err, eip.ErrNotFound) {
		return nil, fmt.Errorf("describe EIP %s named by pod %s: %w", req.id, key, err)
	}
	facts := idFacts{id: req.id, cluster: r.p.ClusterID, namespace: ns, ip: a.String()}
	for _, g := range got {
		if g.ID == req.id {
			facts.found, facts.addr = true, g
		}
	}
	pools, err := f.allPools(ctx)
	if err != nil {
		return nil, err
	}
	for i := range pools {
		p := &pools[i]
		if ps := specOf(p); ps != nil && ps.Mode == v2beta1.EIPStatic && slices.Contains(ps.Static, req.id) {
			facts.listedBy = append(facts.listedBy, listing{pool: p.Name, admits: admitsNamespace(p, ns, nsLabels)})
		}
		for _, b := range bindingsOf(p) {
			if b.AllocationID == req.id && (p.Name != sp.Name || b.IP != a.String()) {
				facts.trackedBy = append(facts.trackedBy, p.Name+"/"+b.IP)
			}
		}
	}
	if ref := mayBind(facts); ref != nil {
		return &refusalEntry{refusal: *ref, id: req.id, at: now}, nil
	}
	return nil, nil
}

func refusalKey(pool, pod string) string { return pool + "|" + pod }

// lastRefusal is the pod's last refusal in the pool, if it was refused.
func (r *reconciler) lastRefusal(pool, pod string) (refusalEntry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.refused[refusalKey(pool, pod)]
	return e, ok
}

// noteRefusals remembers the pool's refusals of this reconcile, by pod, and forgets
// the pool's others; it returns the pods whose refusal is new (or says something new),
// which are counted and told.
func (r *reconciler) noteRefusals(pool string, now map[string]refusalEntry) map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	prefix := pool + "|"
	for k := range r.refused {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			if _, ok := now[k[len(prefix):]]; !ok {
				delete(r.refused, k)
			}
		}
	}
	fresh := map[string]bool{}
	for pod, e := range now {
		k := refusalKey(pool, pod)
		if old, ok := r.refused[k]; !ok || old.reason != e.reason || old.msg != e.msg {
			fresh[pod] = true
			r.metrics.refused.WithLabelValues(e.reason).Inc()
		}
		r.refused[k] = e
	}
	return fresh
}
