// Package migrate moves a cluster's IP allocations between SpiderPool and orbweaver
// without changing a pod's address. The way in is the pool controller's import of
// status.allocatedIPs (pkg/controller/ippool); the way back is Export, which
// `kubectl orbweaver spiderpool export` runs once orbweaver is stopped
// (docs/guides/migrate-from-spiderpool.md).
package migrate

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// ExportOptions say what Export does.
type ExportOptions struct {
	// Pools limits the export to these pools; all when empty.
	Pools []string
	// Write makes the changes; without it Export only reports what it would write.
	Write bool
}

// PoolExport is what Export did, or would do, to one pool.
type PoolExport struct {
	Pool string `json:"pool"`
	// AllocatedIPs is the status.allocatedIPs written (nil: the pods hold no address).
	AllocatedIPs *string `json:"allocatedIPs,omitempty"`
	// Addresses counts the addresses in AllocatedIPs.
	Addresses int `json:"addresses"`
	// Unexported are addresses orbweaver's records hold for a pod that neither has a
	// SpiderEndpoint nor exists any more: nobody's, free once SpiderPool takes over (GC
	// would have freed them). Node agents' spare addresses are not pods' either and are
	// not listed.
	Unexported []string `json:"unexported,omitempty"`
	// Skipped says why the pool was left as it is ("" when it was not).
	Skipped string `json:"skipped,omitempty"`
	// Written is true once the pool's status was written.
	Written bool `json:"written"`
	// BlocksDeleted counts the pool's IPBlocks (node grants) deleted.
	BlocksDeleted int `json:"blocksDeleted"`
}

// Export writes each pool's allocations back in SpiderPool's format: status.allocatedIPs
// from the SpiderEndpoints (the pods that hold addresses, whatever the pool's mode),
// allocatedIPCount to match, and no status.orbweaver nor status.conditions, in one
// compare-and-swap per pool; then it deletes the pool's IPBlocks. Run it with
// orbweaver's controller and agents stopped: a running controller would import the
// records again at once. A pool that has status.allocatedIPs already (not imported
// yet) is skipped.
func Export(ctx context.Context, c client.Client, opts ExportOptions) ([]PoolExport, error) {
	var pools v2beta1.SpiderIPPoolList
	if err := c.List(ctx, &pools); err != nil {
		return nil, fmt.Errorf("list SpiderIPPools: %w", err)
	}
	var eps v2beta1.SpiderEndpointList
	if err := c.List(ctx, &eps); err != nil {
		return nil, fmt.Errorf("list SpiderEndpoints: %w", err)
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods); err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	byKey := make(map[uint64]*corev1.Pod, len(pods.Items))
	for i := range pods.Items {
		byKey[records.PodKey(string(pods.Items[i].UID))] = &pods.Items[i]
	}
	var out []PoolExport
	for i := range pools.Items {
		sp := &pools.Items[i]
		if len(opts.Pools) > 0 && !slices.Contains(opts.Pools, sp.Name) {
			continue
		}
		pe, err := exportPool(ctx, c, sp, eps.Items, byKey, opts.Write)
		if err != nil {
			return out, err
		}
		out = append(out, pe)
	}
	for _, name := range opts.Pools {
		if !slices.ContainsFunc(out, func(pe PoolExport) bool { return pe.Pool == name }) {
			return out, fmt.Errorf("SpiderIPPool %q: %w", name, ipam.ErrPoolNotFound)
		}
	}
	return out, nil
}

// exportPool exports one pool: the addresses its endpoints hold, and those its records
// (format 1) hold for a pod that has no endpoint but exists (SpiderPool's record of it
// was imported, its endpoint never written), found by the digest of its UID.
func exportPool(ctx context.Context, c client.Client, sp *v2beta1.SpiderIPPool, eps []v2beta1.SpiderEndpoint, byKey map[uint64]*corev1.Pod, write bool) (PoolExport, error) {
	pe := PoolExport{Pool: sp.Name}
	if sp.Status.AllocatedIPs != nil {
		pe.Skipped = "status.allocatedIPs is set already: SpiderPool's records, never imported"
		return pe, nil
	}
	subnet, err := ip.ParseCanonicalCIDR(string(sp.Spec.Subnet))
	if err != nil {
		return pe, fmt.Errorf("SpiderIPPool %q: spec.subnet: %w", sp.Name, err)
	}
	holds := ipam.ForeignRecordsOf(ipam.EndpointHolds(sp.Name, subnet, eps))
	held := map[netip.Addr]bool{}
	for _, h := range holds {
		held[h.IP] = true
	}
	if st := sp.Status.Orbweaver; st != nil && len(st.Records) > 0 {
		recs, err := records.Decode(subnet, st.Records)
		if err != nil {
			return pe, fmt.Errorf("SpiderIPPool %q: status.orbweaver.records: %w", sp.Name, err)
		}
		for _, r := range recs {
			if r.Owner.IsReserve() || held[r.IP] {
				continue
			}
			if pod := byKey[r.Owner.Pod]; pod != nil {
				holds = append(holds, ipam.ForeignRecord{IP: r.IP, Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID)})
				held[r.IP] = true
				continue
			}
			pe.Unexported = append(pe.Unexported, r.IP.String())
		}
	}
	pe.Addresses = len(held)
	if pe.AllocatedIPs, err = ipam.FormatAllocatedIPs(holds); err != nil {
		return pe, fmt.Errorf("SpiderIPPool %q: %w", sp.Name, err)
	}
	if !write {
		return pe, nil
	}
	next := sp.DeepCopy()
	next.Status.AllocatedIPs = pe.AllocatedIPs
	n := int64(pe.Addresses)
	next.Status.AllocatedIPCount = &n
	next.Status.Orbweaver = nil
	next.Status.Conditions = nil // orbweaver's Ready; SpiderPool has none
	if err := c.Status().Update(ctx, next); err != nil {
		return pe, fmt.Errorf("write SpiderIPPool %q status (is orbweaver still running? stop it first): %w", sp.Name, err)
	}
	pe.Written = true
	var blocks ipamv1.IPBlockList
	if err := c.List(ctx, &blocks, client.MatchingLabels{ipam.BlockPoolLabel: sp.Name}); err != nil {
		if apierrors.IsNotFound(err) || isNoKind(err) {
			return pe, nil // orbweaver's CRDs are gone already
		}
		return pe, fmt.Errorf("list the IPBlocks of pool %q: %w", sp.Name, err)
	}
	for i := range blocks.Items {
		if err := c.Delete(ctx, &blocks.Items[i]); err != nil && !apierrors.IsNotFound(err) {
			return pe, fmt.Errorf("delete IPBlock %s: %w", blocks.Items[i].Name, err)
		}
		pe.BlocksDeleted++
	}
	return pe, nil
}

// isNoKind reports whether err says the API server does not serve the kind.
func isNoKind(err error) bool { return meta.IsNoMatchError(err) }
