package grants

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// errStale: the cache does not show the controller's own last write to a block yet; a
// round planned from it would only conflict.
var errStale = errors.New("the cache is behind the controller's own write")

// round is what one round reads: the planner's input, the blocks it plans from (by start
// address) and blocks an earlier pool of the same name left (to delete).
type round struct {
	in        ipam.GrantInput
	objs      map[netip.Addr]*ipamv1.IPBlock
	leftovers []*ipamv1.IPBlock
	// goneIn is when the first node seen gone, not yet for good, will be (0: none).
	goneIn time.Duration
}

// input reads one pool's round from the cache.
func (r *reconciler) input(ctx context.Context, sp *v2beta1.SpiderIPPool) (round, error) {
	subnet, total, err := ipam.PoolAddresses(sp)
	if err != nil {
		return round{}, err
	}
	var reserved v2beta1.SpiderReservedIPList
	if err := r.cache.List(ctx, &reserved); err != nil {
		return round{}, err
	}
	family, _ := ipam.PoolFamily(sp)
	in := ipam.GrantInput{Subnet: subnet, Usable: total.Subtract(ipam.ReservedAddresses(reserved.Items, family)),
		Blocks: map[netip.Addr]*ipam.GrantBlock{}, Held: map[netip.Addr]string{}}

	var blocks ipamv1.IPBlockList
	if err := r.cache.List(ctx, &blocks, client.MatchingLabels{ipam.BlockPoolLabel: sp.Name}); err != nil {
		return round{}, err
	}
	rd := round{objs: map[netip.Addr]*ipamv1.IPBlock{}}
	seen := map[string]bool{}
	for i := range blocks.Items {
		b := &blocks.Items[i]
		seen[b.Name] = true
		if r.expect.stale(b.Name, b.ResourceVersion) {
			return round{}, errStale
		}
		if !ownedBy(b, sp) {
			rd.leftovers = append(rd.leftovers, b) // an earlier pool's of the same name
			continue
		}
		g, err := ipam.GrantBlockOf(subnet, b)
		if err != nil {
			return round{}, err
		}
		in.Blocks[g.Start], rd.objs[g.Start] = g, b
	}
	if r.expect.missing(sp.Name, seen) {
		return round{}, errStale
	}

	var nodes ipamv1.IPAMNodeList
	if err := r.cache.List(ctx, &nodes, client.MatchingFields{nodePoolIndex: sp.Name}); err != nil {
		return round{}, err
	}
	for i := range nodes.Items {
		for _, d := range nodes.Items[i].Spec.Pools {
			if d.Pool != sp.Name {
				continue
			}
			dem := ipam.Demand{Node: nodes.Items[i].Name, Need: int(d.Need), Want: int(max(d.Want, d.Need)),
				Released: map[netip.Addr]string{}, Kept: map[netip.Addr]string{}}
			for _, s := range d.IPs {
				if a, err := netip.ParseAddr(s); err == nil && subnet.Contains(a) {
					dem.IPs = append(dem.IPs, a)
				}
			}
			for _, gb := range d.GiveBack {
				for _, pair := range []struct {
					ips []string
					to  map[netip.Addr]string
				}{{gb.IPs, dem.Released}, {gb.Kept, dem.Kept}} {
					for _, s := range pair.ips {
						if a, err := netip.ParseAddr(s); err == nil && subnet.Contains(a) {
							pair.to[a] = gb.Token
						}
					}
				}
			}
			in.Demands = append(in.Demands, dem)
		}
	}

	var eps v2beta1.SpiderEndpointList
	if err := r.cache.List(ctx, &eps, client.MatchingFields{endpointPoolIndex: sp.Name}); err != nil {
		return round{}, err
	}
	heldBy := map[netip.Addr]uint64{} // the PodKey of the pod each held address is for
	for i := range eps.Items {
		cur := &eps.Items[i].Status.Current
		for _, a := range ipam.EndpointAddrs(&eps.Items[i], sp.Name) {
			in.Held[a] = cur.Node
			heldBy[a] = records.PodKey(cur.UID)
		}
	}
	if in.Pending, err = r.pending(ctx, sp, subnet, in.Held, heldBy); err != nil {
		return round{}, err
	}
	in.Token = newToken()
	if in.Gone, rd.goneIn, err = r.goneNodes(ctx, in.Blocks); err != nil {
		return round{}, err
	}
	rd.in = in
	return rd, nil
}

// goneNodes returns the nodes with grants in blocks that are gone for good: no Node and
// no IPAMNode for the gone delay (dated in memory: a new leader waits the delay again).
// It also returns how long until the next node seen gone is gone for good.
func (r *reconciler) goneNodes(ctx context.Context, blocks map[netip.Addr]*ipam.GrantBlock) (map[string]bool, time.Duration, error) {
	names := map[string]bool{}
	for _, b := range blocks {
		for _, n := range b.Owners {
			names[n] = true
		}
	}
	gone := map[string]bool{}
	var next time.Duration
	now := r.clock.Now()
	for n := range names {
		exists, err := r.nodeExists(ctx, n)
		if err != nil {
			return nil, 0, err
		}
		if exists {
			r.gone.forget(n)
			continue
		}
		left := r.goneDelay - now.Sub(r.gone.first(n, now))
		if left <= 0 {
			gone[n] = true
		} else if next == 0 || left < next {
			next = left
		}
	}
	return gone, next, nil
}

// nodeExists reports whether the node's Node or its IPAMNode is in the cache.
func (r *reconciler) nodeExists(ctx context.Context, name string) (bool, error) {
	for _, o := range []client.Object{&corev1.Node{}, &ipamv1.IPAMNode{}} {
		err := r.cache.Get(ctx, client.ObjectKey{Name: name}, o)
		if err == nil {
			return true, nil
		}
		if !apierrors.IsNotFound(err) {
			return false, err
		}
	}
	return false, nil
}

// pending maps every address the pool's records (format 1) still hold to the node that
// holds it: a node's reserve to that node, a pod's record to the node of the endpoint
// that holds the address for that pod; "" when neither is known yet.
func (r *reconciler) pending(ctx context.Context, sp *v2beta1.SpiderIPPool, subnet netip.Prefix, held map[netip.Addr]string, heldBy map[netip.Addr]uint64) (map[netip.Addr]string, error) {
	st := sp.Status.Orbweaver
	if st == nil || len(st.Records) == 0 {
		return nil, nil
	}
	recs, err := records.Decode(subnet, st.Records)
	if err != nil {
		return nil, fmt.Errorf("%w %q: its records, to move to node grants: %v", ipam.ErrInvalidPool, sp.Name, err)
	}
	reserves := map[records.Owner]string{}
	var nodes ipamv1.IPAMNodeList
	if err := r.cache.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	for i := range nodes.Items {
		reserves[records.ReserveOwner(nodes.Items[i].Name)] = nodes.Items[i].Name
	}
	out := make(map[netip.Addr]string, len(recs))
	for _, rec := range recs {
		switch {
		case rec.Owner.IsReserve():
			out[rec.IP] = reserves[rec.Owner]
		case heldBy[rec.IP] == rec.Owner.Pod:
			out[rec.IP] = held[rec.IP]
		default:
			out[rec.IP] = ""
		}
	}
	return out, nil
}

// newToken names the reclaim requests of one round: random, so that no two rounds, of
// this controller or another, share one.
func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// ownedBy reports whether b belongs to this incarnation of the pool.
func ownedBy(b *ipamv1.IPBlock, sp *v2beta1.SpiderIPPool) bool {
	for _, o := range b.OwnerReferences {
		if o.UID == sp.UID {
			return true
		}
	}
	return false
}

// poolSet is a set of pool names safe for concurrent use.
type poolSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func (s *poolSet) set(pool string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.m[pool] = true
	} else {
		delete(s.m, pool)
	}
}

func (s *poolSet) has(pool string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[pool]
}
