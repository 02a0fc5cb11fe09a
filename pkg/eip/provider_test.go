package eip_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
)

func TestRetryable(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{eip.ErrThrottled, true}, {eip.ErrTransient, true},
		{errors.Join(errors.New("Throttling.User"), eip.ErrThrottled), true},
		{eip.ErrQuotaExceeded, false}, {eip.ErrForbidden, false}, {eip.ErrAssociated, false}, {eip.ErrNotFound, false},
	} {
		if got := eip.Retryable(tt.err); got != tt.want {
			t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestWaitFor: it rides out throttling, ends at the wanted state, reports a missing
// EIP, and gives up with its context.
func TestWaitFor(t *testing.T) {
	ctx := context.Background()
	c := eiptest.NewCloud()
	c.AsyncDelay = 30 * time.Millisecond
	a, err := c.Allocate(ctx, eip.AllocateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Associate(ctx, a.ID, "eni-1", "10.0.0.5"); err != nil {
		t.Fatal(err)
	}
	c.ThrottleEvery = 2
	got, err := eip.WaitFor(ctx, c, a.ID, eip.InUse, time.Millisecond)
	if err != nil || got.State != eip.InUse {
		t.Fatalf("WaitFor InUse under throttling: %+v, %v", got, err)
	}
	c.ThrottleEvery = 0
	if _, err := eip.WaitFor(ctx, c, "eip-none", eip.InUse, time.Millisecond); !errors.Is(err, eip.ErrNotFound) {
		t.Fatalf("WaitFor a missing EIP: %v, want ErrNotFound", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := eip.WaitFor(short, c, a.ID, eip.Available, time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor a state that never comes: %v, want the context's deadline", err)
	}
}

// TestRetrying: throttled calls are retried until they pass, within the tries; a
// forbidden call is not retried; the tries are bounded.
func TestRetrying(t *testing.T) {
	ctx := context.Background()
	fast := eip.Backoff{Attempts: 4, Initial: time.Millisecond, Max: 4 * time.Millisecond}
	for _, tt := range []struct {
		name      string
		faults    eiptest.Faults
		wantErr   error
		wantCalls int
	}{
		{name: "every other call throttled", faults: eiptest.Faults{ThrottleEvery: 2}, wantCalls: 2},
		{name: "every call throttled", faults: eiptest.Faults{ThrottleEvery: 1}, wantErr: eip.ErrThrottled, wantCalls: 4},
		{name: "a forbidden call is not retried", faults: eiptest.Faults{Deny: map[string]bool{"Allocate": true}}, wantErr: eip.ErrForbidden, wantCalls: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := eiptest.NewCloud()
			if _, err := c.Describe(ctx, eip.Filter{}); err != nil { // call 1, so that call 2 is throttled
				t.Fatal(err)
			}
			c.SetFaults(tt.faults)
			p := eip.Retrying(c, fast)
			_, err := p.Allocate(ctx, eip.AllocateRequest{ClientToken: "t"})
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Allocate: %v, want %v", err, tt.wantErr)
			}
			if got := c.CallCount("Allocate"); got != tt.wantCalls {
				t.Fatalf("%d Allocate calls, want %d", got, tt.wantCalls)
			}
		})
	}
}
