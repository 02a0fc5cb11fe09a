package ippool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	EventSpiderPoolRunning         = "SpiderPoolRunning"
)

// spiderPoolRecheck is how often a pool whose import waits for SpiderPool to stop looks
// again (pods are not what queues a pool).
const spiderPoolRecheck = 10 * time.Second

// spiderPoolWebhook is the name SpiderPool's chart gives its webhook configurations
// (mutating and validating). Left behind, they would refuse every pool write for want
// of their service; present, SpiderPool is not (fully) uninstalled.
const spiderPoolWebhook = "spiderpool-controller"

// RBAC of spiderPoolLeft: SpiderPool's pods from the cache, its webhook configurations
// by name.
//
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,resourceNames=spiderpool-controller,verbs=get

// spiderPoolLeft lists what of SpiderPool still runs: pods of its agent and controller
// (at most three, as "namespace/name") and its webhook configurations.
func (r *reconciler) spiderPoolLeft(ctx context.Context) ([]string, error) {
	var pods corev1.PodList
	if err := r.cache.List(ctx, &pods, client.MatchingLabelsSelector{Selector: ipam.SpiderPoolPodSelector()}); err != nil {
		return nil, fmt.Errorf("look for SpiderPool's pods: %w", err)
	}
	var out []string
	for i := range pods.Items {
		if ipam.SpiderPoolRunning(&pods.Items[i]) != "" {
			if len(out) == 3 {
				out = append(out, "...")
				break
			}
			out = append(out, "pod "+pods.Items[i].Namespace+"/"+pods.Items[i].Name)
		}
	}
	for _, w := range []struct {
		kind string
		obj  client.Object
	}{
		{"mutatingwebhookconfiguration", &admissionregistrationv1.MutatingWebhookConfiguration{}},
		{"validatingwebhookconfiguration", &admissionregistrationv1.ValidatingWebhookConfiguration{}},
	} {
		err := r.direct.Get(ctx, client.ObjectKey{Name: spiderPoolWebhook}, w.obj)
		switch {
		case err == nil:
			out = append(out, w.kind+" "+spiderPoolWebhook)
		case apierrors.IsNotFound(err), apierrors.IsForbidden(err):
			// gone; or the chart's RBAC does not allow the look (an older chart)
		default:
			return nil, fmt.Errorf("look for SpiderPool's webhook configurations: %w", err)
		}
	}
	return out, nil
}

// importForeign imports SpiderPool's records of a pool (status.allocatedIPs) into
// status.orbweaver.records and removes them, in one compare-and-swap of the status: a
// pool either still has them (and no agent allocates from it) or has every one of them
// as an orbweaver record. Interrupted anywhere, it starts over from what the API server
// has; several controllers racing write once, the others conflict and find nothing left
// to import. Records it cannot import stay, with the condition False and a Warning
// event naming the record. docs/design/spiderpool-import.md.
func (r *reconciler) importForeign(ctx context.Context, sp *v2beta1.SpiderIPPool) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	now := metav1.NewTime(r.clock.Now().Truncate(time.Second))
	obj := sp.DeepCopy()
	if obj.Status.Orbweaver == nil {
		obj.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{}
	}
	ob := obj.Status.Orbweaver
	cond := metav1.Condition{Type: v2beta1.IPPoolImportedCondition, ObservedGeneration: sp.Generation, LastTransitionTime: now}
	// refuse leaves the records where they are, with the condition False saying why.
	refuse := func(reason, msg string, warn bool, after time.Duration) (ctrl.Result, error) {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, reason, msg
		meta.SetStatusCondition(&ob.Conditions, cond)
		setReady(sp, &obj.Status, nil, now.Time)
		if !statusChanged(&sp.Status, &obj.Status) {
			return ctrl.Result{RequeueAfter: after}, nil // said already
		}
		err := r.pools.UpdatePoolStatus(ctx, obj)
		r.metrics.wrote("import", err)
		if err != nil {
			return ctrl.Result{}, err
		}
		log.Info("SpiderPool's records of the pool are not imported", "reason", reason, "why", msg)
		if warn {
			r.recorder.Event(obj, corev1.EventTypeWarning, EventSpiderPoolRecordsInvalid, msg)
		} else {
			r.recorder.Event(obj, corev1.EventTypeNormal, EventSpiderPoolRunning, msg)
		}
		return ctrl.Result{RequeueAfter: after}, nil
	}
	// While SpiderPool's agents run, they may write the records again after the import.
	running, err := r.spiderPoolLeft(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(running) > 0 {
		return refuse(v2beta1.IPPoolSpiderPoolRunningReason, fmt.Sprintf("SpiderPool is still installed (%s): its records are imported once it is uninstalled (docs/guides/migrate-from-spiderpool.md)",
			strings.Join(running, ", ")), false, spiderPoolRecheck)
	}
	merged, added, err := r.foreignRecords(ctx, sp)
	if err != nil {
		if !errors.Is(err, ipam.ErrForeignRecords) {
			return ctrl.Result{}, err
		}
		return refuse(v2beta1.IPPoolForeignRecordsInvalidReason,
			err.Error()+"; nothing is allocated from the pool until the record is fixed or removed (docs/guides/migrate-from-spiderpool.md)", true, 0)
	}
	subnet, _ := ip.ParseCanonicalCIDR(string(sp.Spec.Subnet)) // parsed by foreignRecords
	if ob.Records, err = records.Encode(subnet, merged); err != nil {
		return ctrl.Result{}, fmt.Errorf("import the SpiderPool records of pool %q: %w", sp.Name, err)
	}
	obj.Status.AllocatedIPs = nil
	// The counts of the records (free follows in the next pass, which counts the
	// SpiderReservedIPs too).
	var spare int64
	for _, rec := range merged {
		if rec.Owner.IsReserve() {
			spare++
		}
	}
	obj.Status.AllocatedIPCount, ob.SpareIPCount = ptr.To(int64(len(merged))-spare), ptr.To(spare)
	cond.Status, cond.Reason = metav1.ConditionTrue, v2beta1.IPPoolImportedReason
	cond.Message = fmt.Sprintf("imported %d addresses SpiderPool recorded in status.allocatedIPs", added)
	meta.SetStatusCondition(&ob.Conditions, cond)
	setReady(sp, &obj.Status, nil, now.Time)
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
