package eipbinding

import (
	"context"
	"fmt"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// orphanCollector releases EIPs orbweaver allocated (tagged for this cluster and a pool)
// that no pool tracks: left by a controller that crashed between the cloud's Allocate
// and the status write that records the result's ID after a failed write, by pools
// deleted while the controller was not running, or by an uninstall. EIPs tagged for the
// cluster without a pool are an administrator's reservations for a namespace, never
// collected. An EIP is collected only when two passes in a row
// find it untracked, so one allocated between a pool read and the cloud's answer is
// never taken.
type orphanCollector struct {
	r *reconciler
	// suspects are the EIP IDs the last pass found untracked.
	suspects map[string]bool
}

// NeedLeaderElection: only the leader collects.
func (o *orphanCollector) NeedLeaderElection() bool { return true }

// Start runs a pass every OrphanInterval until ctx ends.
func (o *orphanCollector) Start(ctx context.Context) error {
	t := time.NewTicker(o.r.p.OrphanInterval)
	defer t.Stop()
	for {
		if err := o.pass(ctx); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "EIP orphan collection failed; retrying at the next pass")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// pass is one collection over every configured provider.
func (o *orphanCollector) pass(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("eip-orphans")
	var pools v2beta1.SpiderIPPoolList
	if err := o.r.cache.List(ctx, &pools); err != nil {
		return fmt.Errorf("list SpiderIPPools: %w", err)
	}
	tracked, inflight := map[string]bool{}, map[[2]string]bool{}
	for i := range pools.Items {
		for _, b := range bindingsOf(&pools.Items[i]) {
			if b.AllocationID != "" {
				tracked[b.AllocationID] = true
			}
			if b.Phase == v2beta1.EIPAllocating {
				inflight[[2]string{pools.Items[i].Name, b.IP}] = true
			}
		}
	}
	suspects := map[string]bool{}
	for name, p := range o.r.p.Providers {
		got, err := p.Describe(ctx, eip.Filter{Tags: map[string]string{TagCluster: o.r.p.ClusterID}})
		o.r.metrics.call(name, "Describe", err)
		if err != nil {
			return fmt.Errorf("describe the EIPs of cluster %s in %s: %w", o.r.p.ClusterID, name, err)
		}
		for _, a := range got {
			if a.Tags[TagPool] == "" {
				// Not allocated by orbweaver (it always tags the pool): an EIP an
				// administrator reserved for a namespace (TagCluster and TagNamespace).
				continue
			}
			if tracked[a.ID] || inflight[[2]string{a.Tags[TagPool], a.Tags[TagIP]}] {
				continue
			}
			if !o.suspects[a.ID] {
				suspects[a.ID] = true
				continue
			}
			// Untracked twice in a row: an orphan.
			if a.State != eip.Available {
				err := p.Disassociate(ctx, a.ID)
				o.r.metrics.call(name, "Disassociate", err)
				suspects[a.ID] = true // released at the next pass, once unbound
				log.Info("Unbinding an orphaned EIP", "provider", name, "eip", a.ID, "publicIP", a.PublicIP, "pool", a.Tags[TagPool], "ip", a.Tags[TagIP], "error", err)
				continue
			}
			err := p.Release(ctx, a.ID)
			o.r.metrics.call(name, "Release", err)
			if err != nil {
				suspects[a.ID] = true
				log.Error(err, "Releasing an orphaned EIP failed", "provider", name, "eip", a.ID)
				continue
			}
			o.r.metrics.orphans.WithLabelValues(name).Inc()
			log.Info("Released an orphaned EIP", "provider", name, "eip", a.ID, "publicIP", a.PublicIP, "pool", a.Tags[TagPool], "ip", a.Tags[TagIP])
		}
	}
	o.suspects = suspects
	return nil
}
