package cas

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
)

var (
	errLost = errors.New("lost a race")
	errHard = errors.New("forbidden")
)

func isLost(err error) bool { return errors.Is(err, errLost) }

// TestRetry: a run that loses is run again, up to b.Steps runs (one with no steps); an
// error that is not a lost race ends it at once; the last lost race comes back wrapped.
func TestRetry(t *testing.T) {
	for _, tt := range []struct {
		name      string
		steps     int
		errs      []error // returned by successive runs; nil after the list
		wantRuns  int
		wantErr   error // nil: no error
		wantInErr string
	}{
		{name: "first run", steps: 3, wantRuns: 1},
		{name: "two lost, then written", steps: 3, errs: []error{errLost, errLost}, wantRuns: 3},
		{name: "another error: no retry", steps: 3, errs: []error{errLost, errHard}, wantRuns: 2, wantErr: errHard},
		{name: "lost every time", steps: 3, errs: []error{errLost, errLost, errLost, errLost}, wantRuns: 3, wantErr: errLost, wantInErr: "gave up after 3 tries"},
		{name: "no steps: one run", errs: []error{errLost, errLost}, wantRuns: 1, wantErr: errLost, wantInErr: "gave up after 1 tries"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			runs := 0
			err := Retry(context.Background(), wait.Backoff{Duration: time.Millisecond, Factor: 2, Steps: tt.steps}, isLost, func() error {
				runs++
				if runs <= len(tt.errs) {
					return tt.errs[runs-1]
				}
				return nil
			})
			if runs != tt.wantRuns {
				t.Errorf("%d runs, want %d", runs, tt.wantRuns)
			}
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("error %q, want it to say %q", err, tt.wantInErr)
			}
		})
	}
}

// TestRetryContext: a context that ends during a wait ends the retries with its error,
// naming what the last run lost to.
func TestRetryContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	runs := 0
	err := Retry(ctx, wait.Backoff{Duration: time.Hour, Steps: 5}, isLost, func() error {
		runs++
		cancel()
		return errLost
	})
	if runs != 1 || !errors.Is(err, context.Canceled) || errors.Is(err, errLost) || !strings.Contains(err.Error(), errLost.Error()) {
		t.Errorf("%d runs, error %v; want 1 run and context.Canceled naming %q", runs, err, errLost)
	}
}

func TestLostToAnotherWriter(t *testing.T) {
	gr := schema.GroupResource{Resource: "leases"}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{apierrors.NewConflict(gr, "l", errors.New("modified")), true},
		{fmt.Errorf("wrapped: %w", apierrors.NewAlreadyExists(gr, "l")), true},
		{apierrors.NewNotFound(gr, "l"), false},
		{errors.New("other"), false},
	} {
		if got := LostToAnotherWriter(tt.err); got != tt.want {
			t.Errorf("LostToAnotherWriter(%v) = %t, want %t", tt.err, got, tt.want)
		}
	}
}
