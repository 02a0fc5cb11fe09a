// Package eiptest is an in-memory EIP cloud with the clouds' rules, and the conformance
// suite every eip.Provider must pass. The local cloud emulators (one per wire protocol)
// are front ends over Cloud, so all of them enforce the same rules.
package eiptest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// Cloud is an in-memory EIP service. Its rules are the real clouds':
//   - one association per EIP, and one EIP per (network interface, private IP);
//   - release refused while associated;
//   - association and disassociation asynchronous: Associating (Unassociating) until
//     AsyncDelay has passed on the clock, then InUse (Available);
//   - Allocate idempotent per ClientToken;
//   - at most Quota EIPs (0: no limit);
//   - every ThrottleEvery-th call refused with eip.ErrThrottled (0: never);
//   - calls to the operations in Deny refused with eip.ErrForbidden;
//   - a private IP is associated only on the interface that carries it (Place), as on
//     the real clouds; until Place is first called, any interface is accepted, so the
//     rules can be exercised without a network model;
//   - an EIP joins at most one shared bandwidth package (AddBandwidthPackage,
//     JoinPackage, LeavePackage), and is not released while it is in one (the stricter
//     reading: the clouds' references do not say that release takes it out).
//
// CallCount counts calls by operation, for tests that count cloud calls per pod start.
type Cloud struct {
	// Now is the clock (time.Now when nil); tests step it.
	Now           func() time.Time
	AsyncDelay    time.Duration
	Quota         int
	ThrottleEvery int
	// Deny holds operation names ("Allocate", "Associate", ...) refused as forbidden.
	Deny map[string]bool

	mu sync.Mutex
	// carriedBy maps a private IP to the interface that carries it (nil: no model).
	carriedBy map[string]string
	seq       int
	calls     int
	byID      map[string]*record
	byToken   map[string]string
	byOp      map[string]int
	packages  map[string]bool // shared bandwidth packages by ID
}

// ErrNoSuchPackage: JoinPackage or LeavePackage named a bandwidth package the cloud
// does not have. The emulators answer with their cloud's not-found code for packages.
var ErrNoSuchPackage = errors.New("bandwidth package not found")

type record struct {
	addr  eip.Address
	since time.Time // when the last async transition started
}

// NewCloud returns an empty cloud.
func NewCloud() *Cloud {
	return &Cloud{byID: map[string]*record{}, byToken: map[string]string{}, byOp: map[string]int{}, packages: map[string]bool{}}
}

func (c *Cloud) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// enter counts a call and applies throttling; c.mu is held.
func (c *Cloud) enter(op string) error {
	c.calls++
	c.byOp[op]++
	if c.ThrottleEvery > 0 && c.calls%c.ThrottleEvery == 0 {
		return fmt.Errorf("%s: %w (injected)", op, eip.ErrThrottled)
	}
	if c.Deny[op] {
		return fmt.Errorf("%s: %w (injected)", op, eip.ErrForbidden)
	}
	return nil
}

// Faults are the injectable failures; see Cloud.
type Faults struct {
	Quota         int
	ThrottleEvery int
	Deny          map[string]bool
}

// SetFaults replaces the injected failures while the cloud is serving.
func (c *Cloud) SetFaults(f Faults) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Quota, c.ThrottleEvery, c.Deny = f.Quota, f.ThrottleEvery, maps.Clone(f.Deny)
}

// Place puts privateIP on interface nic (moving it off any other), as a node's ENI
// setup does for a pod's IP. An empty nic takes the IP off every interface.
func (c *Cloud) Place(nic, privateIP string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.carriedBy == nil {
		c.carriedBy = map[string]string{}
	}
	if nic == "" {
		delete(c.carriedBy, privateIP)
		return
	}
	c.carriedBy[privateIP] = nic
}

// InterfaceOf implements eip.Provider.
func (c *Cloud) InterfaceOf(_ context.Context, privateIP string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("InterfaceOf"); err != nil {
		return "", err
	}
	if nic, ok := c.carriedBy[privateIP]; ok {
		return nic, nil
	}
	return "", fmt.Errorf("no network interface carries %s: %w", privateIP, eip.ErrNotFound)
}

// Snapshot returns every EIP as it is now, without counting a call or throttling:
// for tests that check the cloud's state behind the provider's back.
func (c *Cloud) Snapshot() []eip.Address {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]eip.Address, 0, len(c.byID))
	for _, r := range c.byID {
		c.settle(r)
		out = append(out, clone(r.addr))
	}
	slices.SortFunc(out, func(a, b eip.Address) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// CallCount returns how many calls of op the cloud has seen ("" for all of them).
func (c *Cloud) CallCount(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if op == "" {
		return c.calls
	}
	return c.byOp[op]
}

// settle finishes async transitions whose delay has passed; c.mu is held.
func (c *Cloud) settle(r *record) {
	if c.now().Sub(r.since) < c.AsyncDelay {
		return
	}
	switch r.addr.State {
	case eip.Associating:
		r.addr.State = eip.InUse
	case eip.Unassociating:
		r.addr.State = eip.Available
		r.addr.NetworkInterface, r.addr.PrivateIP = "", ""
	}
}

var _ eip.Provider = (*Cloud)(nil)

// Name is "fake".
func (c *Cloud) Name() string { return "fake" }

// Allocate implements eip.Provider.
func (c *Cloud) Allocate(_ context.Context, req eip.AllocateRequest) (eip.Address, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("Allocate"); err != nil {
		return eip.Address{}, err
	}
	if id, ok := c.byToken[req.ClientToken]; ok && req.ClientToken != "" {
		if r, ok := c.byID[id]; ok {
			return clone(r.addr), nil
		}
	}
	if c.Quota > 0 && len(c.byID) >= c.Quota {
		return eip.Address{}, fmt.Errorf("Allocate: %d of %d EIPs in use: %w", len(c.byID), c.Quota, eip.ErrQuotaExceeded)
	}
	c.seq++
	// Public addresses from TEST-NET-3 (RFC 5737): documentation only, never routed.
	pub := netip.AddrFrom4([4]byte{203, 0, 113, byte(c.seq % 250)})
	r := &record{addr: eip.Address{ID: fmt.Sprintf("eip-%06d", c.seq), PublicIP: pub.String(), State: eip.Available, Tags: maps.Clone(req.Tags)}}
	c.byID[r.addr.ID] = r
	if req.ClientToken != "" {
		c.byToken[req.ClientToken] = r.addr.ID
	}
	return clone(r.addr), nil
}

// Associate implements eip.Provider.
func (c *Cloud) Associate(_ context.Context, id, nic, privateIP string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("Associate"); err != nil {
		return err
	}
	r, ok := c.byID[id]
	if !ok {
		return fmt.Errorf("Associate %s: %w", id, eip.ErrNotFound)
	}
	c.settle(r)
	if c.carriedBy != nil && c.carriedBy[privateIP] != nic {
		return fmt.Errorf("Associate %s with %s/%s: the interface does not carry that private IP (it is on %q): %w", id, nic, privateIP, c.carriedBy[privateIP], eip.ErrInvalidTarget)
	}
	if r.addr.State != eip.Available {
		if r.addr.NetworkInterface == nic && r.addr.PrivateIP == privateIP && r.addr.State != eip.Unassociating {
			return nil // already bound there
		}
		return fmt.Errorf("Associate %s with %s/%s: bound to %s/%s (%s): %w", id, nic, privateIP, r.addr.NetworkInterface, r.addr.PrivateIP, r.addr.State, eip.ErrAssociated)
	}
	for _, other := range c.byID {
		c.settle(other)
		if other != r && other.addr.State != eip.Available && other.addr.NetworkInterface == nic && other.addr.PrivateIP == privateIP {
			return fmt.Errorf("Associate %s with %s/%s: the private IP already has EIP %s: %w", id, nic, privateIP, other.addr.ID, eip.ErrAssociated)
		}
	}
	r.addr.State, r.addr.NetworkInterface, r.addr.PrivateIP, r.since = eip.Associating, nic, privateIP, c.now()
	c.settle(r)
	return nil
}

// Disassociate implements eip.Provider.
func (c *Cloud) Disassociate(_ context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("Disassociate"); err != nil {
		return err
	}
	r, ok := c.byID[id]
	if !ok {
		return fmt.Errorf("Disassociate %s: %w", id, eip.ErrNotFound)
	}
	c.settle(r)
	if r.addr.State == eip.Available || r.addr.State == eip.Unassociating {
		return nil
	}
	r.addr.State, r.since = eip.Unassociating, c.now()
	c.settle(r)
	return nil
}

// Release implements eip.Provider.
func (c *Cloud) Release(_ context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("Release"); err != nil {
		return err
	}
	r, ok := c.byID[id]
	if !ok {
		return nil
	}
	c.settle(r)
	if r.addr.State != eip.Available {
		return fmt.Errorf("Release %s: %s with %s/%s: %w", id, r.addr.State, r.addr.NetworkInterface, r.addr.PrivateIP, eip.ErrAssociated)
	}
	if r.addr.BandwidthPackage != "" {
		return fmt.Errorf("Release %s: in bandwidth package %s: %w", id, r.addr.BandwidthPackage, eip.ErrAssociated)
	}
	delete(c.byID, id)
	for tok, tid := range c.byToken {
		if tid == id {
			delete(c.byToken, tok)
		}
	}
	return nil
}

// Describe implements eip.Provider.
func (c *Cloud) Describe(_ context.Context, f eip.Filter) ([]eip.Address, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("Describe"); err != nil {
		return nil, err
	}
	var out []eip.Address
	for _, r := range c.byID {
		c.settle(r)
		a := r.addr
		if len(f.IDs) > 0 && !slices.Contains(f.IDs, a.ID) ||
			f.PrivateIP != "" && a.PrivateIP != f.PrivateIP ||
			f.NetworkInterface != "" && a.NetworkInterface != f.NetworkInterface {
			continue
		}
		match := true
		for k, v := range f.Tags {
			if a.Tags[k] != v {
				match = false
			}
		}
		if match {
			out = append(out, clone(a))
		}
	}
	slices.SortFunc(out, func(a, b eip.Address) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// AddBandwidthPackage creates a shared bandwidth package, as a user buys one.
func (c *Cloud) AddBandwidthPackage(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.packages[id] = true
}

// JoinPackage puts EIP id into bandwidth package pkg; joining the package it is
// already in is not an error, joining a second one is ErrAssociated.
func (c *Cloud) JoinPackage(_ context.Context, pkg, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("JoinPackage"); err != nil {
		return err
	}
	if !c.packages[pkg] {
		return fmt.Errorf("JoinPackage %s: %w", pkg, ErrNoSuchPackage)
	}
	r, ok := c.byID[id]
	if !ok {
		return fmt.Errorf("JoinPackage %s: EIP %s: %w", pkg, id, eip.ErrNotFound)
	}
	switch r.addr.BandwidthPackage {
	case pkg:
		return nil
	case "":
		r.addr.BandwidthPackage = pkg
		return nil
	}
	return fmt.Errorf("JoinPackage %s: EIP %s is in bandwidth package %s: %w", pkg, id, r.addr.BandwidthPackage, eip.ErrAssociated)
}

// LeavePackage takes EIP id out of bandwidth package pkg; an EIP not in it is an
// error, as on the clouds, and so is an EIP that does not exist.
func (c *Cloud) LeavePackage(_ context.Context, pkg, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enter("LeavePackage"); err != nil {
		return err
	}
	if !c.packages[pkg] {
		return fmt.Errorf("LeavePackage %s: %w", pkg, ErrNoSuchPackage)
	}
	r, ok := c.byID[id]
	if !ok {
		return fmt.Errorf("LeavePackage %s: EIP %s: %w", pkg, id, eip.ErrNotFound)
	}
	if r.addr.BandwidthPackage != pkg {
		return fmt.Errorf("LeavePackage %s: EIP %s is not in it (in %q)", pkg, id, r.addr.BandwidthPackage)
	}
	r.addr.BandwidthPackage = ""
	return nil
}

func clone(a eip.Address) eip.Address {
	a.Tags = maps.Clone(a.Tags)
	return a
}
