package eiptest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// Conformance runs the rules every eip.Provider must keep against p, a provider over
// an empty account (a Cloud, or an adapter through its SDK against an emulator over a
// Cloud). wait is how long async transitions may take.
func Conformance(t *testing.T, p eip.Provider, wait time.Duration) {
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

	t.Run("one association per EIP and per private IP; release refused while bound", func(t *testing.T) {
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
}
