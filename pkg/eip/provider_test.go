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
