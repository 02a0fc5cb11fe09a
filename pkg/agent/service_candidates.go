package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// selectPools chooses the candidate pools of one NIC from the caches, by the rules of
// ipam.SelectPools.
func (s *Service) selectPools(ctx context.Context, req *addRequest) (candidates, error) {
	ns, err := s.cluster.Namespace(ctx, req.pod.Namespace)
	if err != nil {
		return candidates{}, fmt.Errorf("look up namespace %q: %w", req.pod.Namespace, err)
	}
	node, err := s.cluster.Node(ctx)
	if err != nil {
		return candidates{}, fmt.Errorf("look up this node: %w", err)
	}
	pools, err := s.cluster.Pools(ctx)
	if err != nil {
		return candidates{}, fmt.Errorf("list SpiderIPPools: %w", err)
	}
	ifName := *req.att.IfName
	top, err := s.autoPoolTop(ctx, req.pod)
	if err != nil {
		return candidates{}, err
	}
	in := ipam.SelectionInput{
		Pod: req.pod, Namespace: ns, Node: node,
		TopController:  top,
		IfName:         ifName,
		MultusNetwork:  ipam.MultusNetworkOf(req.pod, ifName, s.multusClusterNetwork),
		CNIDefaultIPv4: req.args.DefaultIPv4IPPool,
		CNIDefaultIPv6: req.args.DefaultIPv6IPPool,
		Pools:          pools,
		EnableIPv4:     s.enableIPv4,
		EnableIPv6:     s.enableIPv6,
	}
	sel, err := ipam.SelectPools(in)
	if errors.Is(err, ipam.ErrUnknownPool) {
		// A pool created a moment before the pod may not have reached this node's cache:
		// ask the API server once before telling the user it does not exist.
		if in.Pools, err = s.cluster.FreshPools(ctx); err != nil {
			return candidates{}, fmt.Errorf("list SpiderIPPools: %w", err)
		}
		sel, err = ipam.SelectPools(in)
	}
	if err != nil {
		return candidates{}, fmt.Errorf("choose a pool for pod %s interface %s: %w", podRef(req.att), ifName, err)
	}
	return candidates{ipv4: sel.IPv4, ipv6: sel.IPv6, cleanGateway: sel.CleanGateway, routes: sel.Routes, auto: sel.Auto}, nil
}

// autoPoolTop is the pod's top controller as auto pools know it: ipam.TopControllerOf,
// and for a Job's pod that asks for an auto pool, the Job's CronJob when it has one (the
// CronJob's pool serves all its Jobs). Only then is the Job read.
func (s *Service) autoPoolTop(ctx context.Context, pod *corev1.Pod) (ipam.TopController, error) {
	top := topControllerOf(pod)
	if !ipam.NeedsJobController(pod, top) {
		return top, nil
	}
	ref, err := s.cluster.JobController(ctx, pod.Namespace, top.Name)
	if err != nil {
		return top, fmt.Errorf("look up Job %s/%s, the controller of pod %s: %w", pod.Namespace, top.Name, pod.Name, err)
	}
	return ipam.AutoPoolTopController(top, ref), nil
}

// selectPoolsWaiting is selectPools, except that while the pod's application's auto pool
// does not exist yet it waits for the pool watch to show it, up to autoPoolWait.
func (s *Service) selectPoolsWaiting(ctx context.Context, req *addRequest) (candidates, error) {
	deadline := s.autoPoolDeadline(ctx)
	for {
		changed := s.poolChanges.next() // before the read, so no change is missed
		c, err := s.selectPools(ctx, req)
		if !errors.Is(err, ipam.ErrAutoPoolNotReady) || !s.awaitOn(ctx, changed, deadline) {
			return c, err
		}
	}
}

// autoPoolDeadline is when an ADD stops waiting for its auto pool: autoPoolWait from
// now, and before the request's own deadline.
func (s *Service) autoPoolDeadline(ctx context.Context) time.Time {
	d := time.Now().Add(s.autoPoolWait)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-time.Second).Before(d) {
		d = dl.Add(-time.Second)
	}
	return d
}

// awaitPoolChange waits for the next pool change until deadline; false when none came.
func (s *Service) awaitPoolChange(ctx context.Context, deadline time.Time) bool {
	return s.awaitOn(ctx, s.poolChanges.next(), deadline)
}

func (s *Service) awaitOn(ctx context.Context, changed <-chan struct{}, deadline time.Time) bool {
	left := time.Until(deadline)
	if left <= 0 {
		return false
	}
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case <-changed:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// PoolChanged wakes the ADDs waiting for a pool to appear or change; the agent calls it
// from its pool watch.
func (s *Service) PoolChanged() { s.poolChanges.notify() }

// changes tells waiters that something changed: each next() channel closes at the next
// notify.
type changes struct {
	mu sync.Mutex
	ch chan struct{}
}

func (c *changes) next() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

func (c *changes) notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}

// topControllerOf is ipam.TopControllerOf (shared with `kubectl orbweaver pool why`).
func topControllerOf(pod *corev1.Pod) ipam.TopController { return ipam.TopControllerOf(pod) }

// routesFor keeps the custom routes whose gateway lies in one of the NIC's allocated
// subnets, as SpiderPool does; the others belong to another interface.
func routesFor(routes []v2beta1.Route, subnets []netip.Prefix) []v2beta1.Route {
	var out []v2beta1.Route
	for _, r := range routes {
		gw, err := netip.ParseAddr(string(r.Gw))
		if err != nil {
			continue
		}
		for _, s := range subnets {
			if s.Contains(gw) {
				out = append(out, r)
				break
			}
		}
	}
	return out
}
