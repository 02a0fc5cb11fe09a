package ippool

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// Event reasons of the import of SpiderPool's records.
const (
	EventSpiderPoolRecordsImported = "SpiderPoolRecordsImported"
	EventSpiderPoolRecordsInvalid  = "SpiderPoolRecordsInvalid"
)

// importForeign imports SpiderPool's records of a pool (status.allocatedIPs) into
// status.orbweaver.records and removes them, in one compare-and-swap of the status: a
// pool either still has them (and no agent allocates from it) or has every one of them
// as an orbweaver record. Interrupted anywhere, it starts over from what the API server
// has; several controllers racing write once, the others conflict and find nothing left
// to import. Records it cannot import stay, with the condition False and a Warning
// event naming the record. docs/design/spiderpool-import.md.
func (r *reconciler) importForeign(ctx context.Context, sp *v2beta1.SpiderIPPool) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	merged, added, err := r.foreignRecords(ctx, sp)
	now := metav1.NewTime(r.clock.Now().Truncate(time.Second))
	obj := sp.DeepCopy()
	if obj.Status.Orbweaver == nil {
		obj.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{}
	}
	ob := obj.Status.Orbweaver
	cond := metav1.Condition{Type: v2beta1.IPPoolImportedCondition, ObservedGeneration: sp.Generation, LastTransitionTime: now}
	if err != nil {
		if !errors.Is(err, ipam.ErrForeignRecords) {
			return ctrl.Result{}, err
		}
		cond.Status, cond.Reason = metav1.ConditionFalse, v2beta1.IPPoolForeignRecordsInvalidReason
		cond.Message = err.Error() + "; nothing is allocated from the pool until the record is fixed or removed (docs/guides/migrate-from-spiderpool.md)"
		if old := meta.FindStatusCondition(ob.Conditions, cond.Type); old != nil && old.Status == cond.Status && old.Message == cond.Message {
			return ctrl.Result{}, nil // said already
		}
		meta.SetStatusCondition(&ob.Conditions, cond)
		if err := r.pools.UpdatePoolStatus(ctx, obj); err != nil {
			return ctrl.Result{}, err
		}
		log.Error(err, "SpiderPool's records of the pool cannot be imported")
		r.recorder.Event(obj, corev1.EventTypeWarning, EventSpiderPoolRecordsInvalid, cond.Message)
		return ctrl.Result{}, nil
	}
	subnet, _ := ip.ParseCanonicalCIDR(string(sp.Spec.Subnet)) // parsed by foreignRecords
	if ob.Records, err = records.Encode(subnet, merged); err != nil {
		return ctrl.Result{}, fmt.Errorf("import the SpiderPool records of pool %q: %w", sp.Name, err)
	}
	obj.Status.AllocatedIPs = nil
	obj.Status.AllocatedIPCount = ptr.To(int64(len(merged)))
	cond.Status, cond.Reason = metav1.ConditionTrue, v2beta1.IPPoolImportedReason
	cond.Message = fmt.Sprintf("imported %d addresses SpiderPool recorded in status.allocatedIPs", added)
	meta.SetStatusCondition(&ob.Conditions, cond)
	err = r.pools.UpdatePoolStatus(ctx, obj)
	r.metrics.wrote("import", err)
	if err != nil {
		return ctrl.Result{}, err
	}
	log.Info("Imported SpiderPool's records of the pool", "ips", added, "records", len(merged))
	r.recorder.Event(obj, corev1.EventTypeNormal, EventSpiderPoolRecordsImported, cond.Message)
	return ctrl.Result{}, nil
}

// foreignRecords reads the pool's status.allocatedIPs and merges it into its records.
// Each imported record's interface is that of the pod's SpiderEndpoint that names the
// address, else the record's own (SpiderPool's older format), else eth0; its sandbox is
// the one that endpoint records (none in an endpoint SpiderPool wrote).
func (r *reconciler) foreignRecords(ctx context.Context, sp *v2beta1.SpiderIPPool) ([]records.Record, int, error) {
	subnet, err := ip.ParseCanonicalCIDR(string(sp.Spec.Subnet))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: spec.subnet %q: %v", ipam.ErrForeignRecords, sp.Spec.Subnet, err)
	}
	ips, err := ipam.EffectiveAddresses(subnet, sp.Spec.IPs, nil) // an excluded address may still be held
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ipam.ErrForeignRecords, err)
	}
	foreign, err := ipam.ParseAllocatedIPs(*sp.Status.AllocatedIPs, subnet, ips)
	if err != nil {
		return nil, 0, err
	}
	var existing []records.Record
	if st := sp.Status.Orbweaver; st != nil {
		if existing, err = records.Decode(subnet, st.Records); err != nil {
			return nil, 0, fmt.Errorf("%w: status.orbweaver.records, to import into: %v", ipam.ErrForeignRecords, err)
		}
	}
	var lookupErr error
	owner := func(f ipam.ForeignRecord) records.Owner {
		ctr, nic := "", f.Interface
		se := &v2beta1.SpiderEndpoint{}
		err := r.cache.Get(ctx, client.ObjectKey{Namespace: f.Namespace, Name: f.Name}, se)
		if err == nil && se.Status.Current.UID == f.UID {
			if n := ipam.EndpointInterface(se, sp.Name, f.IP); n != "" {
				nic = n
				if o := se.Status.Current.Orbweaver; o != nil {
					ctr = o.ContainerID // orbweaver wrote the endpoint (a return from SpiderPool)
				}
			}
		} else if err != nil && client.IgnoreNotFound(err) != nil {
			lookupErr = err
		}
		if nic == "" {
			nic = "eth0"
		}
		return ipam.ForeignOwner(f, ctr, nic)
	}
	merged, added, err := ipam.ImportForeign(existing, foreign, owner)
	if lookupErr != nil {
		return nil, 0, fmt.Errorf("read the SpiderEndpoints of pool %q's SpiderPool records: %w", sp.Name, lookupErr)
	}
	return merged, added, err
}
