package grants

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// blockWriters bounds a round's block writes in flight.
const blockWriters = 16

// errConflict: a block changed between the round's read and its write (an agent gave
// addresses back, another controller wrote); the next round plans from the new version.
var errConflict = errors.New("an IPBlock changed under the round")

// write makes the blocks what the plan says, and deletes blocks that grant nothing.
// Each write is conditional on the version the round planned from. It writes every
// block it can and reports a conflict on any of them at the end.
func (r *reconciler) write(ctx context.Context, sp *v2beta1.SpiderIPPool, plan ipam.GrantPlan, rd round) error {
	objs := rd.objs
	var errs []error
	for _, old := range rd.leftovers {
		err := r.direct.Delete(ctx, old, client.Preconditions{ResourceVersion: ptr.To(old.ResourceVersion)})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("%w: delete IPBlock %s of an earlier pool %s: %v", errConflict, old.Name, sp.Name, err))
		}
	}
	// The blocks are independent objects: write them at once, so that a round that
	// touches many blocks costs about one write's time (nodes wait for it).
	starts := slices.SortedFunc(maps.Keys(plan.Changed), netip.Addr.Compare)
	results := make([]error, len(starts))
	var wg sync.WaitGroup
	slots := make(chan struct{}, blockWriters)
	for i, start := range starts {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			results[i] = r.writeBlock(ctx, sp, plan.Changed[start], objs[start])
		}()
	}
	wg.Wait()
	for _, err := range results {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for start, obj := range objs {
		if _, planned := plan.Changed[start]; !planned && len(obj.Spec.Grants) == 0 {
			if err := r.writeBlock(ctx, sp, &ipam.GrantBlock{Start: start}, obj); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if plan.Reclaimed > 0 {
		r.metrics.reclaimed.Add(float64(plan.Reclaimed))
	}
	if plan.Returned > 0 {
		r.metrics.returned.Add(float64(plan.Returned))
	}
	return errors.Join(errs...)
}

// writeBlock creates, updates or deletes one block: g's content over obj (nil: the block
// does not exist yet).
func (r *reconciler) writeBlock(ctx context.Context, sp *v2beta1.SpiderIPPool, g *ipam.GrantBlock, obj *ipamv1.IPBlock) error {
	log := ctrl.LoggerFrom(ctx)
	var err error
	var from, to string
	name := ipam.BlockName(sp.Name, g.Start)
	switch {
	case obj == nil && len(g.Owners) == 0:
		return nil
	case obj == nil:
		nb := &ipamv1.IPBlock{ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: v2beta1.SchemeGroupVersion.String(), Kind: "SpiderIPPool", Name: sp.Name, UID: sp.UID,
			BlockOwnerDeletion: ptr.To(false),
		}}}}
		g.Write(sp.Name, nb)
		err = r.direct.Create(ctx, nb)
		to = nb.ResourceVersion
	case len(g.Owners) == 0:
		from = obj.ResourceVersion
		err = r.direct.Delete(ctx, obj, client.Preconditions{ResourceVersion: ptr.To(obj.ResourceVersion)})
		if apierrors.IsNotFound(err) {
			err = nil
		}
	default:
		nb := obj.DeepCopy()
		g.Write(sp.Name, nb)
		from = obj.ResourceVersion
		err = r.direct.Update(ctx, nb)
		to = nb.ResourceVersion
	}
	switch {
	case err == nil:
		r.metrics.writes.WithLabelValues(resultOK).Inc()
		r.expect.wrote(sp.Name, name, from, to)
		log.V(2).Info("Wrote block", "IPBlock", name, "grants", len(g.Owners))
		return nil
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		r.metrics.writes.WithLabelValues(resultConflict).Inc()
		return fmt.Errorf("%w: %s: %v", errConflict, name, err)
	default:
		r.metrics.writes.WithLabelValues(resultError).Inc()
		return fmt.Errorf("write IPBlock %s of pool %s: %w", name, sp.Name, err)
	}
}

// expectations remember the controller's own block writes until its cache shows them,
// so that a round never plans from a version older than one it wrote itself (it would
// only conflict). An expectation that the cache does not confirm within expectFor is
// dropped: the cache shows some other version by then, or the write's answer was lost.
type expectations struct {
	mu    sync.Mutex
	clock clock.PassiveClock
	m     map[string]expectation // by block name
}

type expectation struct {
	pool     string
	from, to string // the resourceVersion planned from ("" for a create) and written ("" for a delete)
	at       time.Time
}

const expectFor = 5 * time.Second

func newExpectations(c clock.PassiveClock) *expectations {
	return &expectations{clock: c, m: map[string]expectation{}}
}

func (e *expectations) wrote(pool, name, from, to string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[name] = expectation{pool: pool, from: from, to: to, at: e.clock.Now()}
}

// stale reports whether the cache still shows the version a write of this block
// replaced, and forgets the expectation once it does not.
func (e *expectations) stale(name, cachedRV string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.m[name]
	if !ok {
		return false
	}
	if x.from == cachedRV && x.from != "" && e.clock.Since(x.at) < expectFor {
		return true
	}
	delete(e.m, name) // the cache shows another version: ours, or a later one
	return false
}

// missing reports whether a block the controller created is not in the cache yet
// (seen holds the pool's blocks the cache has), and forgets confirmed deletes.
func (e *expectations) missing(pool string, seen map[string]bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	behind := false
	for name, x := range e.m {
		if x.pool != pool || seen[name] {
			continue
		}
		switch {
		case x.to == "": // a delete, confirmed by the block's absence
			delete(e.m, name)
		case e.clock.Since(x.at) >= expectFor:
			delete(e.m, name)
		default:
			behind = true
		}
	}
	return behind
}
