package eiptest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// Conformance runs the rules every eip.Provider must keep against p, a provider over
// an empty account: a Cloud, or an adapter through its SDK against an emulator over
// cloud. wait is how long async transitions may take. The suite places private IPs on
// interfaces through cloud.Place, as a node's ENI setup would.
func Conformance(t *testing.T, p eip.Provider, cloud *Cloud, wait time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second+4*wait)
	defer cancel()
	until := func(id string, s eip.State) eip.Address {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, wait+5*time.Second)
		defer wcancel()
		a, err := eip.WaitFor(wctx, p, id, s, 10*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tags := map[string]string{"orbweaver.io/cluster": "c1", "orbweaver.io/pool": "p1"}

	t.Run("allocate is idempotent per client token", func(t *testing.T) {
		a, err := p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-1", Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-1", Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		if a.ID == "" || a.ID != b.ID || a.PublicIP == "" {
			t.Fatalf("two allocations with one token: %+v and %+v", a, b)
		}
		got, err := p.Describe(ctx, eip.Filter{Tags: tags})
		if err != nil || len(got) != 1 || got[0].ID != a.ID {
			t.Fatalf("describe by tags: %+v, %v; want just %s", got, err, a.ID)
		}
		if err := p.Release(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("the interface that carries a private IP is found", func(t *testing.T) {
		cloud.Place("eni-7", "10.0.7.7")
		nic, err := p.InterfaceOf(ctx, "10.0.7.7")
		if err != nil || nic != "eni-7" {
			t.Fatalf("InterfaceOf(10.0.7.7) = %q, %v; want eni-7", nic, err)
		}
		cloud.Place("eni-8", "10.0.7.7") // the pod moved node
		if nic, err := p.InterfaceOf(ctx, "10.0.7.7"); err != nil || nic != "eni-8" {
			t.Fatalf("after the move InterfaceOf(10.0.7.7) = %q, %v; want eni-8", nic, err)
		}
		if nic, err := p.InterfaceOf(ctx, "10.0.7.99"); !errors.Is(err, eip.ErrNotFound) {
			t.Fatalf("InterfaceOf(an IP nobody carries) = %q, %v; want ErrNotFound", nic, err)
		}
	})

	t.Run("one association per EIP and per private IP; release refused while bound", func(t *testing.T) {
		cloud.Place("eni-1", "10.0.0.5")
		cloud.Place("eni-2", "10.0.0.6")
		a, err := p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-2"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-3"})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Associate(ctx, a.ID, "eni-1", "10.0.0.5"); err != nil {
			t.Fatal(err)
		}
		got := until(a.ID, eip.InUse)
		if got.NetworkInterface != "eni-1" || got.PrivateIP != "10.0.0.5" {
			t.Fatalf("bound to %s/%s, want eni-1/10.0.0.5", got.NetworkInterface, got.PrivateIP)
		}
		if err := p.Associate(ctx, a.ID, "eni-1", "10.0.0.5"); err != nil {
			t.Fatalf("re-associating with the same target: %v", err)
		}
		if err := p.Associate(ctx, a.ID, "eni-2", "10.0.0.6"); !errors.Is(err, eip.ErrAssociated) {
			t.Fatalf("associating a bound EIP elsewhere: %v, want ErrAssociated", err)
		}
		if err := p.Associate(ctx, b.ID, "eni-1", "10.0.0.5"); !errors.Is(err, eip.ErrAssociated) {
			t.Fatalf("a second EIP on one private IP: %v, want ErrAssociated", err)
		}
		if err := p.Associate(ctx, b.ID, "eni-1", "10.0.0.6"); !errors.Is(err, eip.ErrInvalidTarget) {
			t.Fatalf("associating with an IP the interface does not carry: %v, want ErrInvalidTarget", err)
		}
		if err := p.Release(ctx, a.ID); !errors.Is(err, eip.ErrAssociated) {
			t.Fatalf("releasing a bound EIP: %v, want ErrAssociated", err)
		}
		if err := p.Disassociate(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		until(a.ID, eip.Available)
		if err := p.Disassociate(ctx, a.ID); err != nil {
			t.Fatalf("disassociating an unbound EIP: %v", err)
		}
		for _, id := range []string{a.ID, b.ID} {
			if err := p.Release(ctx, id); err != nil {
				t.Fatal(err)
			}
			if err := p.Release(ctx, id); err != nil {
				t.Fatalf("releasing a released EIP: %v", err)
			}
		}
		if got, err := p.Describe(ctx, eip.Filter{IDs: []string{a.ID}}); err != nil || len(got) != 0 {
			t.Fatalf("a released EIP is described: %+v, %v", got, err)
		}
	})

	t.Run("errors keep their class through the wire", func(t *testing.T) {
		if err := p.Associate(ctx, "eip-does-not-exist", "eni-1", "10.0.0.5"); !errors.Is(err, eip.ErrNotFound) {
			t.Fatalf("associating a missing EIP: %v, want ErrNotFound", err)
		}
		cloud.SetFaults(Faults{Quota: 1})
		a, err := p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-q1"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-q2"}); !errors.Is(err, eip.ErrQuotaExceeded) {
			t.Fatalf("allocating over the quota: %v, want ErrQuotaExceeded", err)
		}
		cloud.SetFaults(Faults{ThrottleEvery: 1})
		if _, err := p.Describe(ctx, eip.Filter{}); !errors.Is(err, eip.ErrThrottled) || !eip.Retryable(err) {
			t.Fatalf("a throttled call: %v, want ErrThrottled", err)
		}
		cloud.SetFaults(Faults{Deny: map[string]bool{"Release": true}})
		if err := p.Release(ctx, a.ID); !errors.Is(err, eip.ErrForbidden) || eip.Retryable(err) {
			t.Fatalf("a forbidden call: %v, want ErrForbidden", err)
		}
		cloud.SetFaults(Faults{})
		if err := p.Release(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
	})
}
