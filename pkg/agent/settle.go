package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// RBAC of settleInheritedReserves: the pools and this node's endpoints listed fresh.
//
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools;spiderendpoints,verbs=list

// settleInheritedReserves resolves what a previous agent of this node left in reserve
// (it crashed, or could not write on its way out). Each such address was either handed to
// a pod, whose SpiderEndpoint names it, or spare. The previous agent may have sent an
// endpoint write that the API server has not applied yet, so nothing is decided before
// quarantine has passed; then each address named by one of this node's endpoints is
// recorded under that pod in the pool, and the others become spares (or free). Runs
// before the agent serves, with the node lock held.
func settleInheritedReserves(ctx context.Context, s *Service, direct client.Reader, quarantine time.Duration, log logr.Logger) error {
	owner := records.ReserveOwner(s.node)
	var pools v2beta1.SpiderIPPoolList
	if err := direct.List(ctx, &pools); err != nil {
		return fmt.Errorf("list SpiderIPPools: %w", err)
	}
	inherited := map[string][]netip.Addr{}
	count := 0
	for i := range pools.Items {
		p, err := ipam.NewPool(&pools.Items[i], ip.Set{})
		if err != nil {
			continue
		}
		if held := p.AllHeldBy(owner); len(held) > 0 {
			inherited[p.Name()] = held
			count += len(held)
		}
	}
	if count == 0 {
		return nil
	}
	log.Info("a previous agent of this node left addresses in reserve; settling them once the quarantine has passed", "addresses", count, "pools", len(inherited), "quarantine", quarantine)
	sleep(ctx, quarantine)
	if err := ctx.Err(); err != nil {
		return err
	}
	var endpoints v2beta1.SpiderEndpointList
	if err := direct.List(ctx, &endpoints, client.MatchingFields{"status.current.node": s.node}); err != nil {
		return fmt.Errorf("list this node's SpiderEndpoints: %w", err)
	}
	named := map[poolAddr]records.Owner{}
	for i := range endpoints.Items {
		se := &endpoints.Items[i]
		for j := range se.Status.Current.IPs {
			nic := &se.Status.Current.IPs[j]
			for _, a := range nicAddrs(nic) {
				named[a] = records.OwnerOf(se.Status.Current.UID, containerOf(se), nic.NIC)
			}
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	handed := 0
	for pool, addrs := range inherited {
		w := s.writers.writer(pool)
		for _, a := range addrs {
			o, isHanded := named[poolAddr{pool, a}]
			if isHanded {
				handed++
			}
			wg.Add(1)
			go func() { // concurrent, so the writer carries them in one write
				defer wg.Done()
				var err error
				if isHanded {
					_, err = w.Rebind(ctx, a, owner, o)
				} else {
					_, err = w.Release(ctx, a, owner)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s of SpiderIPPool %q: %w", a, pool, err))
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	log.Info("settled the previous agent's reserve", "handedToPods", handed, "freed", count-handed)
	return nil
}
