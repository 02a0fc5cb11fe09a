package eiptest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

func TestCloudConformance(t *testing.T) {
	t.Run("synchronous", func(t *testing.T) { c := NewCloud(); Conformance(t, c, c, 0) })
	t.Run("asynchronous", func(t *testing.T) {
		c := NewCloud()
		c.AsyncDelay = 50 * time.Millisecond
		Conformance(t, c, c, c.AsyncDelay)
	})
}

// steppedClock is a clock tests move by hand.
type steppedClock struct {
	mu  sync.Mutex
	now time.Time
}

func (s *steppedClock) Now() time.Time { s.mu.Lock(); defer s.mu.Unlock(); return s.now }
func (s *steppedClock) Step(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = s.now.Add(d)
}

func TestCloudRules(t *testing.T) {
	ctx := context.Background()
	clock := &steppedClock{now: time.Unix(1_700_000_000, 0)}
	c := NewCloud()
	c.Now, c.AsyncDelay, c.Quota = clock.Now, 10*time.Second, 2

	a, err := c.Allocate(ctx, eip.AllocateRequest{ClientToken: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Allocate(ctx, eip.AllocateRequest{ClientToken: "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Allocate(ctx, eip.AllocateRequest{ClientToken: "c"}); !errors.Is(err, eip.ErrQuotaExceeded) {
		t.Fatalf("a third EIP with a quota of 2: %v, want ErrQuotaExceeded", err)
	}
	if err := c.Associate(ctx, a.ID, "eni-1", "10.0.0.5"); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Describe(ctx, eip.Filter{IDs: []string{a.ID}}); got[0].State != eip.Associating {
		t.Fatalf("state %s before the async delay, want Associating", got[0].State)
	}
	clock.Step(10 * time.Second)
	if got, _ := c.Describe(ctx, eip.Filter{PrivateIP: "10.0.0.5"}); len(got) != 1 || got[0].State != eip.InUse {
		t.Fatalf("after the delay: %+v, want InUse", got)
	}

	c.ThrottleEvery = 2
	throttled := 0
	for i := 0; i < 10; i++ {
		if _, err := c.Describe(ctx, eip.Filter{}); errors.Is(err, eip.ErrThrottled) {
			throttled++
			if !eip.Retryable(err) {
				t.Fatal("a throttling error is not retryable")
			}
		}
	}
	if throttled != 5 {
		t.Fatalf("%d of 10 calls throttled, want 5", throttled)
	}
	if c.CallCount("Describe") < 10 || c.CallCount("Allocate") != 3 {
		t.Fatalf("call counts: Describe %d, Allocate %d", c.CallCount("Describe"), c.CallCount("Allocate"))
	}
}

func TestCloudBandwidthPackages(t *testing.T) {
	ctx := context.Background()
	c := NewCloud()
	c.AddBandwidthPackage("cbwp-1")
	c.AddBandwidthPackage("cbwp-2")
	a, err := c.Allocate(ctx, eip.AllocateRequest{ClientToken: "a"})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		call func() error
		want error // nil: success; errAny: any error
	}{
		{"join an unknown package", func() error { return c.JoinPackage(ctx, "cbwp-none", a.ID) }, ErrNoSuchPackage},
		{"join with an unknown EIP", func() error { return c.JoinPackage(ctx, "cbwp-1", "eip-none") }, eip.ErrNotFound},
		{"leave a package it is not in", func() error { return c.LeavePackage(ctx, "cbwp-1", a.ID) }, errAny},
		{"join", func() error { return c.JoinPackage(ctx, "cbwp-1", a.ID) }, nil},
		{"join again", func() error { return c.JoinPackage(ctx, "cbwp-1", a.ID) }, nil},
		{"join a second package", func() error { return c.JoinPackage(ctx, "cbwp-2", a.ID) }, eip.ErrAssociated},
		{"release while in a package", func() error { return c.Release(ctx, a.ID) }, eip.ErrAssociated},
		{"leave", func() error { return c.LeavePackage(ctx, "cbwp-1", a.ID) }, nil},
		{"release", func() error { return c.Release(ctx, a.ID) }, nil},
	}
	for _, s := range steps {
		err := s.call()
		switch {
		case s.want == nil && err != nil, s.want == errAny && err == nil, s.want != nil && s.want != errAny && !errors.Is(err, s.want):
			t.Fatalf("%s: %v, want %v", s.name, err, s.want)
		}
		if s.name == "join" {
			if got, _ := c.Describe(ctx, eip.Filter{IDs: []string{a.ID}}); len(got) != 1 || got[0].BandwidthPackage != "cbwp-1" {
				t.Fatalf("after join: %+v", got)
			}
		}
	}
}

var errAny = errors.New("any error")
