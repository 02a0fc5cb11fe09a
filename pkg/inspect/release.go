package inspect

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/cas"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/crdstore"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// Errors of PlanRelease and Release, besides ipam.ErrPoolNotFound (an unknown --pool).
var (
	// ErrNotInPool: no pool's subnet has the address and no endpoint names it, or
	// not the subnet of the pool named.
	ErrNotInPool = errors.New("the address is in no pool")
	// ErrAmbiguous: pods hold the address in more than one pool; name one.
	ErrAmbiguous = errors.New("the address is held in more than one pool")
	// ErrRefused: every holder was kept (a live pod, a StatefulSet that wants it, a
	// node's spare, SpiderPool's record); the error says why and what to do.
	ErrRefused = errors.New("refused")
)

// ReleasePlan is what releasing an address in one pool removes: the pool's records of
// it (one compare-and-swap of the pool's status) and the endpoints' entries of it (a
// compare-and-swap of each endpoint: an update, or a deletion with its last address),
// the objects the product's own DEL and GC remove when a pod goes. A node's grant or
// reserve is never taken: the node's agent hands the address to its next pod.
type ReleasePlan struct {
	Pool    string     `json:"pool"`
	Mode    string     `json:"mode,omitempty"`
	Address netip.Addr `json:"address"`
	// Records are the pool's records of the address to remove.
	Records []RecordRelease `json:"records,omitempty"`
	// Endpoints are the endpoints to take the address from.
	Endpoints []EndpointRelease `json:"endpoints,omitempty"`
	// Kept are the holders left as they are, and why.
	Kept []Kept `json:"kept,omitempty"`
	// State is the address's state when nothing holds it (Free, Excluded).
	State string `json:"state,omitempty"`
	// Forced are the live pods whose address --force releases: they still use it.
	Forced []string `json:"forced,omitempty"`
}

// RecordRelease removes a record of the pool if, and only if, Owner still holds the
// address (ipam.Pool.Release).
type RecordRelease struct {
	Holder string        `json:"holder"`
	Owner  records.Owner `json:"-"`
}

// EndpointRelease takes the address from an endpoint if it is still the one read: the
// same object UID and pod UID, naming the address in the pool.
type EndpointRelease struct {
	Holder    string    `json:"holder"`
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	UID       types.UID `json:"-"`
	PodUID    string    `json:"-"`
}

// Kept is a holder release leaves alone.
type Kept struct {
	Holder string `json:"holder"`
	Why    string `json:"why"`
}

// PlanRelease decides what releasing a removes: in pool, or (pool "") in the one pool
// where pods hold it. A pod's hold goes when its pod no longer exists or has finished;
// with force also when it lives, or when a StatefulSet still wants it. Kept always:
// SpiderPool's records (imported first), a node's spare, and without force a record
// whose address the endpoint of a kept pod names (removing it would let the pool hand
// the address out again under that pod). When every holder is kept the error wraps
// ErrRefused and says what to do. Nothing holding the address is no error: the plan is
// empty and State says so.
func PlanRelease(s Snapshot, a netip.Addr, pool string, force bool) (ReleasePlan, error) {
	v := newView(s)
	plan := ReleasePlan{Pool: pool, Address: a}
	hs, err := v.releaseTarget(a, pool, &plan)
	if err != nil {
		return plan, err
	}
	for _, h := range hs {
		if h.pool {
			return plan, fmt.Errorf("SpiderIPPool %q: %w: %s", plan.Pool, ipam.ErrInvalidPool, strings.Join(h.Notes, "; "))
		}
	}
	if !slices.ContainsFunc(hs, func(h Holding) bool {
		return h.State == StateHeld || h.State == StateSpiderPool || h.State == StateSpare
	}) {
		if len(hs) > 0 {
			plan.State = hs[0].State
		}
		return plan, nil
	}
	// Each pod instance goes or stays as a whole.
	var order []uint64
	byPod := map[uint64][]Holding{}
	for _, h := range hs {
		if h.holdsPod() {
			if byPod[h.podKey] == nil {
				order = append(order, h.podKey)
			}
			byPod[h.podKey] = append(byPod[h.podKey], h)
		}
	}
	var keptEndpoints bool
	for _, k := range order {
		inst := byPod[k]
		if why := keepWhy(inst, force); why != "" {
			for _, h := range inst {
				plan.Kept = append(plan.Kept, Kept{describe(h), why})
				keptEndpoints = keptEndpoints || h.Source == SourceEndpoint
			}
			continue
		}
		for _, h := range inst {
			if h.live || h.kept != "" {
				plan.Forced = appendNew(plan.Forced, describe(h))
			}
			if h.Source == SourceEndpoint {
				plan.Endpoints = append(plan.Endpoints, EndpointRelease{Holder: describe(h), Namespace: h.Namespace, Name: h.Pod,
					UID: h.endpoint.UID, PodUID: h.PodUID})
			}
			if (h.Source == SourceEndpoint || h.Source == SourceRecords) && h.owner != (records.Owner{}) {
				r := h
				r.Source = SourceRecords // the record beside the endpoint
				plan.Records = append(plan.Records, RecordRelease{Holder: describe(r), Owner: h.owner})
			}
		}
	}
	if keptEndpoints && !force {
		for _, r := range plan.Records {
			plan.Kept = append(plan.Kept, Kept{r.Holder, "the endpoint of a pod that keeps the address names it: without this record the pool " +
				"could hand the address to another pod while that pod uses it; garbage collection keeps it too"})
		}
		plan.Records = nil
	}
	for _, h := range hs {
		if h.State == StateSpare {
			why := "a node's, no pod's: its agent hands it to its next pod, or gives it back itself"
			if !slices.ContainsFunc(hs, func(h Holding) bool { return h.holdsPod() }) && h.Problems != nil {
				why = "a node's, and the node no longer exists: " + strings.Join(h.Notes, "; ")
			}
			plan.Kept = append(plan.Kept, Kept{describe(h), why})
		}
	}
	if len(plan.Records) == 0 && len(plan.Endpoints) == 0 {
		var whys []string
		for _, k := range plan.Kept {
			whys = append(whys, k.Holder+": "+k.Why)
		}
		return plan, fmt.Errorf("release %s from pool %q: %w: nothing to release without taking it from a holder that keeps it: %s",
			a, plan.Pool, ErrRefused, strings.Join(whys, "; "))
	}
	return plan, nil
}

// releaseTarget finds the pool to release a from and what holds a there.
func (v *view) releaseTarget(a netip.Addr, pool string, plan *ReleasePlan) ([]Holding, error) {
	if pool != "" {
		pv := v.byName[pool]
		strays := v.strayHoldings(a, pool)
		switch {
		case pv == nil && len(strays) == 0:
			return nil, fmt.Errorf("SpiderIPPool %q: %w", pool, ipam.ErrPoolNotFound)
		case pv != nil && pv.subnetErr != nil:
			return nil, fmt.Errorf("SpiderIPPool %q: %w: %v", pool, ipam.ErrInvalidPool, pv.subnetErr)
		case pv != nil && !pv.subnet.Contains(a) && len(strays) == 0:
			return nil, fmt.Errorf("%s is outside the subnet %s of SpiderIPPool %q: %w", a, pv.subnet, pool, ErrNotInPool)
		}
		var hs []Holding
		if pv != nil {
			plan.Mode = pv.mode
			if pv.subnet.Contains(a) {
				hs = v.classify(pv, a)
			}
		}
		return append(hs, strays...), nil
	}
	type found struct {
		pool string
		mode string
		hs   []Holding
	}
	var all []found
	for _, pv := range v.pools {
		if pv.subnetErr == nil && pv.subnet.Contains(a) {
			all = append(all, found{pv.sp.Name, pv.mode, v.classify(pv, a)})
		}
	}
	for _, h := range v.strayHoldings(a, "") {
		i := slices.IndexFunc(all, func(f found) bool { return f.pool == h.Pool })
		if i < 0 {
			all = append(all, found{pool: h.Pool, mode: h.Mode})
			i = len(all) - 1
		}
		all[i].hs = append(all[i].hs, h)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%s: no pool's subnet has it and no SpiderEndpoint names it: %w", a, ErrNotInPool)
	}
	var held []found
	for _, f := range all {
		if slices.ContainsFunc(f.hs, func(h Holding) bool { return h.holdsPod() || h.State == StateSpare || h.pool }) {
			held = append(held, f)
		}
	}
	switch {
	case len(held) > 1:
		var names []string
		for _, f := range held {
			names = append(names, f.pool)
		}
		return nil, fmt.Errorf("%s: %w (%s): name one with --pool", a, ErrAmbiguous, strings.Join(names, ", "))
	case len(held) == 1:
		plan.Pool, plan.Mode = held[0].pool, held[0].mode
		return held[0].hs, nil
	case len(all) == 1:
		plan.Pool, plan.Mode = all[0].pool, all[0].mode
		return all[0].hs, nil
	}
	return nil, nil // in several pools' subnets, held in none: nothing to release
}

// keepWhy says why a pod instance's holds stay, "" when they go.
func keepWhy(inst []Holding, force bool) string {
	for _, h := range inst {
		if h.Source == SourceAllocatedIPs {
			return "SpiderPool's record, not imported yet: orbweaver's pool controller imports it first (the pool's SpiderPoolRecordsImported condition); release it after that"
		}
	}
	if force {
		return ""
	}
	for _, h := range inst {
		switch {
		case h.live:
			pod := h.Namespace + "/" + h.Pod
			return fmt.Sprintf("pod %s exists (%s): delete the pod, and its CNI DEL frees the address; or add --force to take the address from under it", pod, h.podState)
		case h.kept != "":
			return h.kept + "; add --force to free it anyway (that pod then gets another address)"
		}
	}
	return ""
}

func appendNew(xs []string, x string) []string {
	if slices.Contains(xs, x) {
		return xs
	}
	return append(xs, x)
}

// ReleaseOptions say what Release does.
type ReleaseOptions struct {
	Addr netip.Addr
	// Pool is the pool to release from; "" for the one where pods hold the address.
	Pool string
	// Force takes the address from a live pod, or from a StatefulSet that wants it.
	Force bool
	// DryRun plans and writes nothing.
	DryRun bool
	// Backoff paces the retries of a write that lost a resourceVersion race: Steps
	// tries in all. 5 tries from 50ms, doubling, jittered, when Steps is zero.
	Backoff wait.Backoff
}

// Released is one write Release made (or, in a dry run, would make).
type Released struct {
	Holder string `json:"holder"`
	// Object is the object written: "SpiderIPPool/<pool>" or "SpiderEndpoint/<ns>/<name>".
	Object string `json:"object"`
	// Action is what was done to it.
	Action string `json:"action"`
}

// ReleaseResult is what Release did.
type ReleaseResult struct {
	Pool     string     `json:"pool"`
	Mode     string     `json:"mode,omitempty"`
	Address  string     `json:"address"`
	DryRun   bool       `json:"dryRun,omitempty"`
	Released []Released `json:"released,omitempty"`
	Kept     []Kept     `json:"kept,omitempty"`
	// State is the address's state when nothing held it.
	State string `json:"state,omitempty"`
	// Forced are live pods whose address was taken from under them (--force).
	Forced []string `json:"forced,omitempty"`
}

// Release reads the snapshot, plans (PlanRelease) and writes: the pool's records
// first, in one compare-and-swap of its status, then each endpoint, each a
// compare-and-swap (an update, or a deletion with UID and resourceVersion
// preconditions), as GC does. A write that loses a resourceVersion race re-reads its
// object and tries again, up to opts.Backoff.Steps tries; a holder that changed since
// the read (a record of another owner, an endpoint of another pod) is left alone and
// reported as kept.
func Release(ctx context.Context, c client.Client, opts ReleaseOptions) (ReleaseResult, error) {
	snap, err := Read(ctx, c)
	if err != nil {
		return ReleaseResult{Address: opts.Addr.String(), Pool: opts.Pool}, err
	}
	plan, err := PlanRelease(snap, opts.Addr, opts.Pool, opts.Force)
	res := ReleaseResult{Pool: plan.Pool, Mode: plan.Mode, Address: opts.Addr.String(), DryRun: opts.DryRun,
		Kept: plan.Kept, State: plan.State, Forced: plan.Forced}
	if err != nil {
		return res, err
	}
	if opts.DryRun {
		for _, r := range plan.Records {
			res.Released = append(res.Released, Released{r.Holder, "SpiderIPPool/" + plan.Pool, "would remove the record"})
		}
		for _, e := range plan.Endpoints {
			res.Released = append(res.Released, Released{e.Holder, "SpiderEndpoint/" + e.Namespace + "/" + e.Name, "would take the address out"})
		}
		return res, nil
	}
	if opts.Backoff.Steps == 0 {
		opts.Backoff = wait.Backoff{Duration: 50 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: 5, Cap: time.Second}
	}
	w := releaser{pools: crdstore.Pools{Client: c}, endpoints: crdstore.Endpoints{Client: c}, backoff: opts.Backoff, res: &res}
	if len(plan.Records) > 0 {
		if err := w.records(ctx, plan); err != nil {
			return res, err
		}
	}
	var errs []error
	for _, e := range plan.Endpoints {
		errs = append(errs, w.endpoint(ctx, plan, e))
	}
	return res, errors.Join(errs...)
}

// releaser writes a plan.
type releaser struct {
	pools     crdstore.Pools
	endpoints crdstore.Endpoints
	backoff   wait.Backoff
	res       *ReleaseResult
}

// retry runs try until it succeeds, or fails with an error other than a lost race, or
// has lost opts.Backoff.Steps races.
func (w releaser) retry(ctx context.Context, try func() error) error {
	err := cas.Retry(ctx, w.backoff, lostRace, try)
	if lostRace(err) {
		return fmt.Errorf("%w (each try lost to another writer: an agent or the controller writes it all the time; try again)", err)
	}
	return err
}

// lostRace reports a write that lost to another writer of the pool or endpoint.
func lostRace(err error) bool {
	return errors.Is(err, ipam.ErrConflict) || errors.Is(err, crdstore.ErrEndpointChanged)
}

// records removes the plan's records from a fresh read of the pool, comparing each
// owner, in one status update with the read's resourceVersion.
func (w releaser) records(ctx context.Context, plan ReleasePlan) error {
	what := fmt.Sprintf("release %s from the records of SpiderIPPool %q", plan.Address, plan.Pool)
	return w.retry(ctx, func() error {
		sp, err := w.pools.GetPool(ctx, plan.Pool)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		// The SpiderReservedIPs, so that freeIPCount is written as agents write it.
		var reservedIPs v2beta1.SpiderReservedIPList
		if err := w.pools.Client.List(ctx, &reservedIPs); err != nil {
			return fmt.Errorf("%s: list SpiderReservedIPs: %w", what, err)
		}
		family, _ := ipam.PoolFamily(sp) // NewPool refuses a pool of no family
		pool, err := ipam.NewPool(sp, ipam.ReservedAddresses(reservedIPs.Items, family))
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		var done []RecordRelease
		for _, r := range plan.Records {
			var ok bool
			if pool, ok = pool.Release(plan.Address, r.Owner); ok {
				done = append(done, r)
			}
		}
		if len(done) == 0 {
			for _, r := range plan.Records {
				w.res.Kept = append(w.res.Kept, Kept{r.Holder, "the record changed since it was read (another owner now): left alone"})
			}
			return nil
		}
		// In Grants mode WriteStatus keeps the counts: the pool controller counts the
		// endpoints; the records are only the ones not moved to grants yet.
		if err := pool.WriteStatus(sp); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := w.pools.UpdatePoolStatus(ctx, sp); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		for _, r := range done {
			w.res.Released = append(w.res.Released, Released{r.Holder, "SpiderIPPool/" + plan.Pool, "record removed"})
		}
		return nil
	})
}

// endpoint takes the address out of a fresh read of the endpoint, if it is still the
// one planned: an update, or a deletion (with UID and resourceVersion preconditions)
// when it was its last address.
func (w releaser) endpoint(ctx context.Context, plan ReleasePlan, e EndpointRelease) error {
	object := "SpiderEndpoint/" + e.Namespace + "/" + e.Name
	return w.retry(ctx, func() error {
		se, err := w.endpoints.Get(ctx, e.Namespace, e.Name)
		if errors.Is(err, crdstore.ErrEndpointNotFound) {
			w.res.Released = append(w.res.Released, Released{e.Holder, object, "already gone"})
			return nil
		}
		if err != nil {
			return err
		}
		if se.UID != e.UID || se.Status.Current.UID != e.PodUID || !slices.Contains(ipam.EndpointAddrs(se, plan.Pool), plan.Address) {
			w.res.Kept = append(w.res.Kept, Kept{e.Holder, "the endpoint changed since it was read (another pod, or the address is gone from it): left alone"})
			return nil
		}
		next, empty := withoutAddress(se, plan.Pool, plan.Address)
		action := "address taken out"
		if empty {
			err, action = w.endpoints.Delete(ctx, se), "deleted (it held no other address)"
		} else {
			err = w.endpoints.Update(ctx, next)
		}
		if err != nil {
			return err
		}
		w.res.Released = append(w.res.Released, Released{e.Holder, object, action})
		return nil
	})
}

// withoutAddress returns a copy of se without address a of pool: the interface's
// address of that family, its pool and gateway, and the interface itself when it has
// no address left; empty is true when no interface is left.
func withoutAddress(se *v2beta1.SpiderEndpoint, pool string, a netip.Addr) (next *v2beta1.SpiderEndpoint, empty bool) {
	next = se.DeepCopy()
	cur := &next.Status.Current
	var kept []v2beta1.IPAllocationDetail
	for _, nic := range cur.IPs {
		one := v2beta1.SpiderEndpoint{Status: v2beta1.WorkloadEndpointStatus{Current: v2beta1.PodIPAllocation{IPs: []v2beta1.IPAllocationDetail{nic}}}}
		if slices.Contains(ipam.EndpointAddrs(&one, pool), a) {
			if a.Is4() {
				nic.IPv4, nic.IPv4Pool, nic.IPv4Gateway = nil, nil, nil
			} else {
				nic.IPv6, nic.IPv6Pool, nic.IPv6Gateway = nil, nil, nil
			}
		}
		if nic.IPv4 == nil && nic.IPv6 == nil {
			if o := cur.Orbweaver; o != nil {
				delete(o.Networks, nic.NIC)
			}
			continue
		}
		kept = append(kept, nic)
	}
	cur.IPs = kept
	if o := cur.Orbweaver; o != nil {
		o.EIPs = slices.DeleteFunc(o.EIPs, func(e v2beta1.PodEIP) bool { return e.IP == a.String() })
	}
	return next, len(kept) == 0
}
