package eip

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff is the retry policy for throttled and transient cloud errors.
type Backoff struct {
	// Attempts is the number of tries, first included (at least 1).
	Attempts int
	// Initial is the first wait; each next one doubles, up to Max, with ±25% jitter so
	// that many workers throttled together do not come back together.
	Initial, Max time.Duration
}

// DefaultBackoff rides out a throttling burst of a few seconds: 6 tries over about 6 s.
var DefaultBackoff = Backoff{Attempts: 6, Initial: 200 * time.Millisecond, Max: 2 * time.Second}

// Retrying returns p with every call retried per b while it fails with a Retryable
// error. It is the one place cloud calls are retried: adapters turn their SDK's own
// retries off. Errors that are not retryable come back at once.
func Retrying(p Provider, b Backoff) Provider {
	if b.Attempts < 1 {
		b.Attempts = 1
	}
	return retrying{p: p, b: b}
}

type retrying struct {
	p Provider
	b Backoff
}

// do runs call until it succeeds, fails for good, runs out of tries or ctx ends.
func (r retrying) do(ctx context.Context, call func() error) error {
	wait := r.b.Initial
	var err error
	for try := 1; ; try++ {
		if err = call(); err == nil || !Retryable(err) || try >= r.b.Attempts {
			if err != nil && Retryable(err) {
				return fmt.Errorf("after %d tries: %w", try, err)
			}
			return err
		}
		d := wait + time.Duration(rand.Int64N(int64(wait)/2+1)) - wait/4
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (retrying after: %w)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, r.b.Max)
	}
}

func (r retrying) Name() string { return r.p.Name() }

func (r retrying) Allocate(ctx context.Context, req AllocateRequest) (a Address, err error) {
	err = r.do(ctx, func() (e error) { a, e = r.p.Allocate(ctx, req); return e })
	return a, err
}

func (r retrying) Associate(ctx context.Context, id, nic, privateIP string) error {
	return r.do(ctx, func() error { return r.p.Associate(ctx, id, nic, privateIP) })
}

func (r retrying) Disassociate(ctx context.Context, id string) error {
	return r.do(ctx, func() error { return r.p.Disassociate(ctx, id) })
}

func (r retrying) Release(ctx context.Context, id string) error {
	return r.do(ctx, func() error { return r.p.Release(ctx, id) })
}

func (r retrying) Describe(ctx context.Context, f Filter) (out []Address, err error) {
	err = r.do(ctx, func() (e error) { out, e = r.p.Describe(ctx, f); return e })
	return out, err
}

func (r retrying) InterfaceOf(ctx context.Context, privateIP string) (nic string, err error) {
	err = r.do(ctx, func() (e error) { nic, e = r.p.InterfaceOf(ctx, privateIP); return e })
	return nic, err
}

// Unhonoured forwards to the wrapped provider (see UnhonouredBy).
func (r retrying) Unhonoured(req AllocateRequest) []string { return UnhonouredBy(r.p, req) }
