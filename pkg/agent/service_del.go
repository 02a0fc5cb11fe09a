package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"k8s.io/klog/v2"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/crdstore"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// Del releases the IPs of one NIC of a pod if, and only if, this container holds them.
// A DEL for an unknown container, or for an old sandbox of a pod whose new sandbox now
// holds the IPs, succeeds and releases nothing.
func (s *Service) Del(ctx context.Context, att *models.Attachment) (err error) {
	start := time.Now()
	defer func() { s.metrics.observe("del", start, err) }()
	se, err := s.endpoints.Get(ctx, *att.PodNamespace, *att.PodName)
	if err != nil && !errors.Is(err, crdstore.ErrEndpointNotFound) {
		return err
	}
	if ipam.RelateEndpoint(endpointFacts(se, nil), ipam.CallFacts{PodUID: att.PodUID, ContainerID: *att.ContainerID}) == ipam.EndpointSame {
		if s.kept(se) {
			// A StatefulSet's pod keeps its addresses for its next instance; garbage
			// collection releases them once the StatefulSet no longer wants the pod,
			// per the reclaim policy.
			s.log.V(1).Info("kept the addresses of a StatefulSet pod", "SpiderEndpoint", klog.KObj(se), "ifName", *att.IfName)
			return nil
		}
		return s.releaseNIC(ctx, se, *att.IfName)
	}
	// No record of this container: either nothing was ever allocated, or an ADD stopped
	// between its pool write and its endpoint write. Release whatever the pools record
	// for this exact attachment.
	uid := att.PodUID
	if uid == "" {
		if se != nil {
			return nil // the endpoint belongs to another container: a stale DEL
		}
		pod, err := s.cluster.Pod(ctx, *att.PodNamespace, *att.PodName)
		if err != nil {
			return nil // pod and record gone: GC owns what may be left
		}
		uid = string(pod.UID)
	}
	_, err = s.releaseOwnerEverywhere(ctx, records.OwnerOf(uid, *att.ContainerID, *att.IfName))
	return err
}

// releaseNIC frees the addresses of one NIC recorded in the endpoint and removes the NIC
// from it, deleting the endpoint with its last NIC.
func (s *Service) releaseNIC(ctx context.Context, se *v2beta1.SpiderEndpoint, ifName string) error {
	for try := 0; try < 5; try++ {
		nic := findNIC(se, ifName)
		if nic == nil {
			// The endpoint no longer lists the interface (a sandbox move dropped it, or an
			// ADD stopped before recording it): free whatever the pools record for it.
			_, err := s.releaseOwnerEverywhere(ctx, records.OwnerOf(se.Status.Current.UID, containerOf(se), ifName))
			return err
		}
		owner := records.OwnerOf(se.Status.Current.UID, containerOf(se), ifName)
		// Under node grants the hand-out keeps the address busy until the endpoint no
		// longer names it: this node's cache may not show the endpoint yet, and the
		// address would be free while the endpoint still holds it.
		var afterWrite []func()
		for _, a := range nicAddrs(nic) {
			alloc := s.writers.get(a.pool)
			if g, ok := alloc.(*grantPool); ok {
				afterWrite = append(afterWrite, func() { _, _ = g.Release(ctx, a.addr, owner) })
				continue
			}
			if _, err := alloc.Release(ctx, a.addr, owner); err != nil && !errors.Is(err, ipam.ErrPoolNotFound) {
				return fmt.Errorf("release %s from SpiderIPPool %q: %w", a.addr, a.pool, err)
			}
		}
		released := func() {
			for _, f := range afterWrite {
				f()
			}
		}
		next := se.DeepCopy()
		next.Status.Current.IPs = slices.DeleteFunc(next.Status.Current.IPs, func(d v2beta1.IPAllocationDetail) bool { return d.NIC == ifName })
		var err error
		if len(next.Status.Current.IPs) == 0 {
			err = s.endpoints.Delete(ctx, se)
		} else {
			if o := next.Status.Current.Orbweaver; o != nil {
				delete(o.Networks, ifName)
			}
			err = s.endpoints.Update(ctx, next)
		}
		if err == nil {
			released()
		}
		if !errors.Is(err, crdstore.ErrEndpointChanged) {
			return err
		}
		if se, err = s.endpoints.Get(ctx, se.Namespace, se.Name); err != nil {
			if errors.Is(err, crdstore.ErrEndpointNotFound) {
				released()
				return nil
			}
			return err
		}
	}
	return fmt.Errorf("update SpiderEndpoint %s/%s: %w", se.Namespace, se.Name, ipam.ErrConflict)
}

// releaseOwnerEverywhere frees what any pool records for an attachment. It is the path of
// a DEL with no endpoint record to go by (an ADD that failed or stopped after its pool
// write), so it looks at the pools as the API server has them: the cache may not show
// that write yet.
func (s *Service) releaseOwnerEverywhere(ctx context.Context, owner records.Owner) ([]netip.Addr, error) {
	var freed []netip.Addr
	var errs []error
	// An address handed out from this node's reserve is not in the pool's records yet.
	for _, w := range s.writers.allocators() {
		if w.HasHanded(owner) {
			got, err := w.ReleaseOwner(ctx, owner)
			if err != nil {
				errs = append(errs, err)
			}
			freed = append(freed, got...)
		}
	}
	pools, err := s.cluster.FreshPools(ctx)
	if err != nil {
		return nil, err
	}
	for i := range pools {
		// Reserved addresses narrow what a pool hands out, not who holds what.
		p, err := ipam.NewPool(&pools[i], ip.Set{})
		if err != nil {
			continue // an invalid pool cannot hold our records usefully; GC reports it
		}
		if _, held := p.HeldBy(owner); !held {
			continue
		}
		got, err := s.writers.get(pools[i].Name).ReleaseOwner(ctx, owner)
		if err != nil {
			errs = append(errs, err)
		}
		freed = append(freed, got...)
	}
	return freed, errors.Join(errs...)
}
