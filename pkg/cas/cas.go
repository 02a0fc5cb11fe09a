// Package cas retries compare-and-swap writes to the API server. A writer reads an
// object, decides from what it read, and writes with the resourceVersion it read, so
// that a write decided on an older version loses (409 Conflict) instead of undoing
// another writer's. The loser reads again and decides again: Retry runs that loop.
package cas

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
)

// LostToAnotherWriter is a lost test for Retry: a 409 Conflict (an update from an older
// version) or AlreadyExists (a create another writer made first).
func LostToAnotherWriter(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}

// Retry runs try until it succeeds, fails with an error that lost does not report as a
// lost race, or has run b.Steps times (at least once), waiting b.Step() between runs.
// Each run reads afresh what it writes.
//
// An error try returns is returned as it is, except after the last run: then it is
// wrapped, saying how many runs lost (lost still holds for it). When ctx ends during a
// wait, the error wraps ctx.Err() and names what the last run lost to.
func Retry(ctx context.Context, b wait.Backoff, lost func(error) bool, try func() error) error {
	tries := max(b.Steps, 1)
	for n := 1; ; n++ {
		err := try()
		if err == nil || !lost(err) {
			return err
		}
		if n >= tries {
			return fmt.Errorf("gave up after %d tries: %w", n, err)
		}
		t := time.NewTimer(b.Step())
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (after %d tries, the last lost: %v)", ctx.Err(), n, err)
		case <-t.C:
		}
	}
}
