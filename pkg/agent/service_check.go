package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// Check reports whether the pod's record for this container and NIC holds exactly the
// given addresses.
func (s *Service) Check(ctx context.Context, args *models.CheckArgs) (err error) {
	start := time.Now()
	defer func() { s.metrics.observe("check", start, err) }()
	att := args.Attachment
	se, err := s.endpoints.Get(ctx, *att.PodNamespace, *att.PodName)
	if err != nil {
		return checkFailed(fmt.Errorf("no SpiderEndpoint for pod %s: %w", podRef(att), err))
	}
	// An endpoint SpiderPool wrote records no sandbox: any sandbox of its pod holds it.
	switch ipam.RelateEndpoint(endpointFacts(se, nil), ipam.CallFacts{PodUID: att.PodUID, ContainerID: *att.ContainerID}) {
	case ipam.EndpointSame:
	case ipam.EndpointOtherSandbox:
		return checkFailed(fmt.Errorf("SpiderEndpoint %s records container %s, not %s", podRef(att), short(containerOf(se)), short(*att.ContainerID)))
	default:
		return checkFailed(fmt.Errorf("SpiderEndpoint %s records pod %s, not %s", podRef(att), se.Status.Current.UID, att.PodUID))
	}
	nic := findNIC(se, *att.IfName)
	if nic == nil {
		return checkFailed(fmt.Errorf("SpiderEndpoint %s has no interface %s", podRef(att), *att.IfName))
	}
	var recorded []string
	for _, c := range []*string{nic.IPv4, nic.IPv6} {
		if c != nil {
			recorded = append(recorded, *c)
		}
	}
	var given []string
	for _, ip := range args.Ips {
		given = append(given, ip)
	}
	slices.Sort(recorded)
	slices.Sort(given)
	if len(given) > 0 && !slices.Equal(recorded, given) {
		return checkFailed(fmt.Errorf("interface %s of pod %s has %v, the record says %v", *att.IfName, podRef(att), given, recorded))
	}
	// The pools must still record this attachment as the owner (or this node's reserve
	// must have handed it the address).
	owner := records.OwnerOf(se.Status.Current.UID, containerOf(se), *att.IfName)
	for _, a := range nicAddrs(nic) {
		if s.handedTo(a, owner) {
			continue
		}
		if g, ok := s.writers.get(a.pool).(*grantPool); ok {
			// Node grants: the endpoint is the record; the address must be granted to
			// this node.
			granted, err := g.Granted(ctx, a.addr)
			if err != nil {
				return checkFailed(err)
			}
			if !granted {
				return checkFailed(fmt.Errorf("%s of pool %q is not granted to node %s (kubectl get ipb -l %s=%s)", a.addr, a.pool, s.node, ipam.BlockPoolLabel, a.pool))
			}
			continue
		}
		// The cache may not show this node's last write yet: ask the API server before
		// calling the record missing.
		held, err := s.poolRecords(ctx, a, owner, s.cluster.Pool)
		if err == nil && !held {
			held, err = s.poolRecords(ctx, a, owner, s.writers.store.GetPool)
		}
		if err != nil {
			return checkFailed(err)
		}
		if !held {
			return checkFailed(fmt.Errorf("SpiderIPPool %q does not record %s for pod %s", a.pool, a.addr, podRef(att)))
		}
	}
	return nil
}

// poolRecords reports whether the pool, read by get, records the address for the owner.
func (s *Service) poolRecords(ctx context.Context, a poolAddr, owner records.Owner, get func(context.Context, string) (*v2beta1.SpiderIPPool, error)) (bool, error) {
	obj, err := get(ctx, a.pool)
	if err != nil {
		return false, err
	}
	p, err := ipam.NewPool(obj, ip.Set{})
	if err != nil {
		return false, err
	}
	h, ok := p.Holder(a.addr)
	return ok && h == owner, nil
}

// errCheckFailed marks a CHECK whose record does not match.
var errCheckFailed = errors.New("CHECK failed")

func checkFailed(err error) error { return fmt.Errorf("%w: %w", errCheckFailed, err) }

// handedTo reports whether this node's reserve handed the address to the owner (the
// pool records it as the node's until the next write moves it).
func (s *Service) handedTo(a poolAddr, owner records.Owner) bool {
	w := s.writers.lookup(a.pool)
	return w != nil && w.HandedTo(a.addr, owner)
}
