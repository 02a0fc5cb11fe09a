package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// floor is no IPAM at all: the physical limit of any design that records each pod on
// this API server. Each ADD only creates the pod's SpiderEndpoint, as orbweaver's and
// SpiderPool's agents must, with an address from an in-memory counter; each DEL deletes
// it. The writes go from this process (one API client per node, through the counting
// proxy) with the same concurrency as the peers' plugin execs, but without exec'ing a
// plugin: a peer's ratio to the floor is what its allocation protocol, its plugin and its
// agents cost on top of the one write a record needs.
type floor struct {
	mu      sync.Mutex
	clients map[string]client.Client // node -> its own client
	pools   []Pool
	free    map[int][]netip.Addr // per pool index: released addresses
	next    map[int]netip.Addr   // per pool index: the next never-used address
	eps     map[string]*v2beta1.SpiderEndpoint
	c       client.Client
}

func newFloorPeer(PeerParams) (Peer, error) { return &floor{}, nil }

func (f *floor) Name() string { return "floor" }

// Binary is empty: the floor execs nothing (Caller).
func (f *floor) Binary() string { return "" }

func (f *floor) NetConf(string, int) []byte { return nil }

func (f *floor) Setup(_ context.Context, h *Harness, sc Scenario) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.clients == nil {
		f.clients = map[string]client.Client{}
		f.eps = map[string]*v2beta1.SpiderEndpoint{}
		f.c = h.Env.Client
	}
	for _, n := range sc.Nodes {
		if f.clients[n] != nil {
			continue
		}
		c, err := client.New(h.ClientConfig(), client.Options{Scheme: h.Env.Scheme})
		if err != nil {
			return fmt.Errorf("floor: client: %w", err)
		}
		f.clients[n] = c
	}
	if !sc.Reused {
		f.pools, f.free, f.next = sc.Pools, map[int][]netip.Addr{}, map[int]netip.Addr{}
		for i, p := range sc.Pools {
			f.next[i] = p.First
		}
	}
	return nil
}

// take hands out a pool's next address, in memory.
func (f *floor) take(pool int) (netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if free := f.free[pool]; len(free) > 0 {
		a := free[len(free)-1]
		f.free[pool] = free[:len(free)-1]
		return a, nil
	}
	a := f.next[pool]
	if !f.pools[pool].Contains(a) {
		return netip.Addr{}, fmt.Errorf("pool %s exhausted", f.pools[pool].Name)
	}
	f.next[pool] = a.Next()
	return a, nil
}

func (f *floor) give(pool int, a netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.free[pool] = append(f.free[pool], a)
}

// Call creates (ADD) or deletes (DEL) the pod's SpiderEndpoint.
func (f *floor) Call(ctx context.Context, command string, pod *Pod) (netip.Addr, error) {
	f.mu.Lock()
	c := f.clients[pod.Node]
	f.mu.Unlock()
	switch command {
	case "ADD":
		a, err := f.take(pod.Pool)
		if err != nil {
			return netip.Addr{}, err
		}
		se := benchEndpoint(pod, f.pools[pod.Pool], a)
		if err := c.Create(ctx, se); err != nil {
			f.give(pod.Pool, a)
			return netip.Addr{}, fmt.Errorf("create SpiderEndpoint: %w", err)
		}
		f.mu.Lock()
		f.eps[pod.String()] = se
		f.mu.Unlock()
		return a, nil
	case "DEL":
		f.mu.Lock()
		se := f.eps[pod.String()]
		delete(f.eps, pod.String())
		f.mu.Unlock()
		if se == nil {
			return netip.Addr{}, nil
		}
		if err := c.Delete(ctx, se); err != nil && !apierrors.IsNotFound(err) {
			return netip.Addr{}, fmt.Errorf("delete SpiderEndpoint: %w", err)
		}
		if p, err := netip.ParsePrefix(*se.Status.Current.IPs[0].IPv4); err == nil {
			f.give(pod.Pool, p.Addr())
		}
		return netip.Addr{}, nil
	}
	return netip.Addr{}, fmt.Errorf("floor: %s is not supported", command)
}

// Teardown deletes the endpoints the floor made.
func (f *floor) Teardown(ctx context.Context) error {
	if f.c == nil {
		return nil
	}
	var errs []error
	f.mu.Lock()
	eps := f.eps
	f.eps = map[string]*v2beta1.SpiderEndpoint{}
	f.mu.Unlock()
	for _, se := range eps {
		if err := f.c.Delete(ctx, se); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func ptr[T any](v T) *T { return &v }

var _ Caller = (*floor)(nil)
