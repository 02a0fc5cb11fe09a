package eipbinding

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// run makes the steps' cloud calls, each step's binding recorded before its call.
func (r *reconciler) run(ctx context.Context, sp *v2beta1.SpiderIPPool, steps []step) {
	defer r.noteFailures(sp.Name, steps)
	for i := range steps {
		s := &steps[i]
		if !s.waitUntil.IsZero() {
			continue
		}
		b := s.st.Binding
		switch s.op {
		case opAllocate:
			if b == nil {
				b = &v2beta1.EIPBinding{IP: s.addr.String(), Phase: v2beta1.EIPAllocating, Provider: s.pol.spec.Provider, Token: token(sp, s.addr, r.clock.Now()),
					Requested: s.requested}
				if s.requested {
					b.ReleaseStrategy = s.pol.spec.ReleaseStrategy
				}
			}
			s.before = b
		case opAssociate:
			nb := b.DeepCopy()
			nb.Phase, nb.Node, nb.Pod, nb.ReleaseAfter, nb.Message = v2beta1.EIPAssociating, s.st.Holder.Node, s.st.Holder.Pod.String(), nil, ""
			s.before = nb
		case opDisassociate:
			nb := b.DeepCopy()
			nb.Phase = v2beta1.EIPUnbinding
			s.before = nb
		case opRelease:
			nb := b.DeepCopy()
			nb.Phase = v2beta1.EIPReleasing
			s.before = nb
		}
	}
	// The interface is looked up before Associating is recorded, so the record names it.
	r.parallel(ctx, steps, func(ctx context.Context, s *step) {
		if s.op == opAssociate {
			nic, err := r.interfaceOf(ctx, s.before.Provider, s.addr, s.st.Holder.Node)
			if err != nil {
				s.err = err
				s.before = nil
				return
			}
			s.before.NetworkInterface = nic
		}
	})
	if err := r.writeBefore(ctx, sp.Name, steps); err != nil {
		for i := range steps {
			if steps[i].before != nil {
				steps[i].err, steps[i].before = fmt.Errorf("record the binding before the cloud call: %w", err), nil
			}
		}
	}
	r.parallel(ctx, steps, func(ctx context.Context, s *step) { r.call(ctx, sp, s) })
}

// failure is an IP's last failed step.
type failure struct {
	at  time.Time
	err error
}

// lastFailure is the IP's last failed step, if it failed.
func (r *reconciler) lastFailure(pool string, a netip.Addr) (failure, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.failed[pool+"/"+a.String()]
	return f, ok
}

// noteFailures remembers the steps that failed and forgets those that ran well, and the
// IPs of the pool that need no step any more.
func (r *reconciler) noteFailures(pool string, steps []step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now()
	planned := map[string]bool{}
	for _, s := range steps {
		planned[pool+"/"+s.addr.String()] = true
	}
	for key := range r.failed {
		if strings.HasPrefix(key, pool+"/") && !planned[key] {
			delete(r.failed, key)
		}
	}
	for _, s := range steps {
		key := pool + "/" + s.addr.String()
		switch {
		case !s.waitUntil.IsZero():
		case s.err != nil:
			r.failed[key] = failure{at: now, err: s.err}
		case s.op.callsCloud():
			delete(r.failed, key)
		}
	}
}

// parallel runs f for every step that has no error yet, at most MaxConcurrentCalls at
// once.
func (r *reconciler) parallel(ctx context.Context, steps []step, f func(context.Context, *step)) {
	sem := make(chan struct{}, r.p.MaxConcurrentCalls)
	var wg sync.WaitGroup
	for i := range steps {
		if steps[i].err != nil || steps[i].op == opNone {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(s *step) {
			defer func() { <-sem; wg.Done() }()
			f(ctx, s)
		}(&steps[i])
	}
	wg.Wait()
}

// token is a new Allocate client token: unique per pool, IP and attempt, recorded
// before the call so a retry after a crash sends the same one. 32 hex characters fit
// every cloud's limit.
func token(sp *v2beta1.SpiderIPPool, a netip.Addr, now time.Time) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%s/%d", sp.UID, a, now.UnixNano())))
	return hex.EncodeToString(sum[:16])
}

func (r *reconciler) provider(name string) (eip.Provider, error) {
	if p, ok := r.p.Providers[name]; ok {
		return p, nil
	}
	if err, ok := r.p.ProviderErrors[name]; ok {
		return nil, fmt.Errorf("%w: provider %q did not start: %w", errProviderMissing, name, err)
	}
	if name == "" {
		// A pod's request in a pool without EIPs, naming no cloud, when the controller
		// has several (or none) and no default.
		clouds := slices.Sorted(maps.Keys(r.p.Providers))
		if len(clouds) == 0 {
			return nil, fmt.Errorf("%w: the controller has no cloud configured: set one in the chart's eip values (eip.alibaba, eip.aws or eip.tencent)", errProviderMissing)
		}
		return nil, fmt.Errorf("%w: the pod's request names no cloud and the controller has %s: set %s on the pod, or the chart's eip.defaultProvider (--eip-default-provider)",
			errProviderMissing, strings.Join(clouds, ", "), v2beta1.AnnoEIPProvider)
	}
	return nil, fmt.Errorf("%w: provider %q is not configured in the controller (its --eip-%s-region flag, or the chart's eip.%s values)", errProviderMissing, name, name, name)
}

var errProviderMissing = errors.New("EIP provider not configured")

// interfaceOf finds the network interface to associate a pod's IP on: the node's
// orbweaver.io/eip-network-interface annotation when set, else the interface the cloud
// says carries the IP.
func (r *reconciler) interfaceOf(ctx context.Context, provider string, a netip.Addr, node string) (string, error) {
	n := &corev1.Node{}
	if err := r.cache.Get(ctx, client.ObjectKey{Name: node}, n); err == nil {
		if nic := n.Annotations[v2beta1.AnnoNodeEIPInterface]; nic != "" {
			return nic, nil
		}
	} else if !apierrors.IsNotFound(err) {
		return "", fmt.Errorf("get node %q: %w", node, err)
	}
	p, err := r.provider(provider)
	if err != nil {
		return "", err
	}
	nic, err := p.InterfaceOf(ctx, a.String())
	r.metrics.call(provider, "InterfaceOf", err)
	if err != nil {
		return "", fmt.Errorf("find the network interface carrying %s on node %s: %w", a, node, err)
	}
	return nic, nil
}

// call makes one step's cloud calls and sets its result binding.
func (r *reconciler) call(ctx context.Context, sp *v2beta1.SpiderIPPool, s *step) {
	b := s.before
	if b == nil {
		b = s.st.Binding
	}
	if s.op == opSchedule || s.op == opForget || s.op == opNote {
		s.after = localAfter(*s, r.clock.Now())
		return
	}
	name := ""
	if b != nil {
		name = b.Provider
	} else {
		name = s.pol.spec.Provider
	}
	p, err := r.provider(name)
	if err != nil {
		s.err = err
		return
	}
	observe := func(op string, err error) error { r.metrics.call(name, op, err); return err }
	describe := func(id string) (eip.Address, bool, error) {
		got, err := p.Describe(ctx, eip.Filter{IDs: []string{id}})
		if observe("Describe", err) != nil {
			return eip.Address{}, false, err
		}
		if len(got) == 0 {
			return eip.Address{}, false, nil
		}
		return got[0], true, nil
	}
	nb := b.DeepCopy()
	switch s.op {
	case opAllocate:
		spec := s.pol.spec
		req := eip.AllocateRequest{ClientToken: b.Token, Tags: map[string]string{}}
		if spec != nil {
			req.Bandwidth, req.ISP = int(ptrOr(spec.Bandwidth, 0)), spec.ISP
			req.InternetChargeType, req.InstanceChargeType = spec.InternetChargeType, spec.InstanceChargeType
			req.PublicIPPool, req.BandwidthPackage, req.ResourceGroup = spec.PublicIPPool, spec.BandwidthPackage, spec.ResourceGroup
			req.Name, req.Description = spec.Name, spec.Description
			maps.Copy(req.Tags, spec.Tags)
		}
		req.Tags[TagCluster], req.Tags[TagPool], req.Tags[TagIP] = r.p.ClusterID, sp.Name, eipTagValue(s.addr)
		if s.requested && s.st.Holder != nil {
			req.Tags[TagNamespace] = s.st.Holder.Pod.Namespace // whose request it was, for audits
		}
		got, err := p.Allocate(ctx, req)
		if s.err = observe("Allocate", err); err != nil {
			return
		}
		nb.Phase, nb.AllocationID, nb.PublicIP, nb.Message = v2beta1.EIPAllocated, got.ID, got.PublicIP, ""
		s.events = append(s.events, event{reason: ReasonAllocated, msg: fmt.Sprintf("allocated EIP %s (%s) for IP %s", got.PublicIP, got.ID, s.addr)})
		s.events = append(s.events, unhonouredEvents(name, got, s, eip.UnhonouredBy(p, req), eip.Attributes(req))...)
	case opAdoptStatic:
		got, ok, err := describe(s.st.StaticID)
		if s.err = err; err != nil {
			return
		}
		if !ok {
			s.err = fmt.Errorf("Static EIP %s of SpiderIPPool %s: %w; fix spec.orbweaver.eip.static", s.st.StaticID, sp.Name, eip.ErrNotFound)
			return
		}
		nb = &v2beta1.EIPBinding{IP: s.addr.String(), Phase: v2beta1.EIPAllocated, Provider: name, AllocationID: got.ID, PublicIP: got.PublicIP, Static: true,
			Requested: s.requested}
	case opAssociate:
		err := p.Associate(ctx, b.AllocationID, b.NetworkInterface, s.addr.String())
		if s.err = observe("Associate", err); err != nil {
			return
		}
		r.settle(describe, s, nb)
	case opCheck:
		r.settle(describe, s, nb)
	case opDisassociate:
		err := p.Disassociate(ctx, b.AllocationID)
		if errors.Is(err, eip.ErrNotFound) {
			s.after = nil // the EIP is gone from the cloud: nothing left to bind
			s.events = append(s.events, event{warn: true, reason: ReasonFailed, msg: fmt.Sprintf("EIP %s of IP %s is gone from the cloud; the binding is dropped", b.AllocationID, s.addr)})
			return
		}
		if s.err = observe("Disassociate", err); err != nil {
			return
		}
		r.settle(describe, s, nb)
	case opRelease:
		err := p.Release(ctx, b.AllocationID)
		if errors.Is(err, eip.ErrAssociated) {
			// Bound again behind our back: unbind first, release next time.
			nb.Phase = v2beta1.EIPUnbinding
			err = p.Disassociate(ctx, b.AllocationID)
			s.err = observe("Disassociate", err)
			s.after = nb
			return
		}
		if s.err = observe("Release", err); err != nil {
			return
		}
		s.after = nil
		s.events = append(s.events, event{reason: ReasonReleased, msg: fmt.Sprintf("released EIP %s (%s) of IP %s", b.PublicIP, b.AllocationID, s.addr)})
		return
	}
	s.after = nb
}

// settle moves an Associating or Unbinding binding on when the cloud has settled it.
func (r *reconciler) settle(describe func(string) (eip.Address, bool, error), s *step, nb *v2beta1.EIPBinding) {
	got, ok, err := describe(nb.AllocationID)
	switch {
	case err != nil:
		s.err = err
	case !ok:
		s.after = nil
		s.events = append(s.events, event{warn: true, reason: ReasonFailed, msg: fmt.Sprintf("EIP %s of IP %s is gone from the cloud; the binding is dropped", nb.AllocationID, s.addr)})
		return
	case nb.Phase == v2beta1.EIPAssociating && got.State == eip.InUse && got.PrivateIP == s.addr.String():
		nb.Phase, nb.PublicIP = v2beta1.EIPBound, got.PublicIP
		if s.st.Holder != nil {
			s.events = append(s.events, event{pod: s.st.Holder, reason: ReasonBound,
				msg: fmt.Sprintf("EIP %s (%s) bound to IP %s on %s", got.PublicIP, got.ID, s.addr, nb.NetworkInterface)})
		}
	case nb.Phase == v2beta1.EIPUnbinding && got.State == eip.Available:
		nb.Phase, nb.NetworkInterface, nb.Node = v2beta1.EIPAllocated, "", ""
		s.events = append(s.events, event{reason: ReasonUnbound, msg: fmt.Sprintf("EIP %s (%s) unbound from IP %s", nb.PublicIP, nb.AllocationID, s.addr)})
	}
	s.after = nb
}

func ptrOr[T any](p *T, d T) T {
	if p == nil {
		return d
	}
	return *p
}

// eipTagValue is an IP as a tag value; clouds restrict tag characters, ":" is allowed by
// all three.
func eipTagValue(a netip.Addr) string { return a.String() }
