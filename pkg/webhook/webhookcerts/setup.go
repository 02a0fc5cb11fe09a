package webhookcerts

import (
	"context"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// DefaultInterval is how often the certificate is looked at when Params.Interval is zero.
const DefaultInterval = 12 * time.Hour

// Params are what SetupWithManager needs.
type Params struct {
	// Manager keeps the certificate.
	Manager *Manager
	// Interval between two looks at the certificate (DefaultInterval when zero).
	Interval time.Duration
}

// SetupWithManager makes the certificate now, before the webhook server starts (it reads
// the files), and adds a runnable that renews it every Interval on every replica, not
// only the leader (every replica serves the webhooks).
func SetupWithManager(ctx context.Context, mgr ctrl.Manager, p Params) error {
	if p.Interval <= 0 {
		p.Interval = DefaultInterval
	}
	if _, err := p.Manager.Ensure(ctx); err != nil {
		return err
	}
	log := mgr.GetLogger().WithName("webhook-certs")
	return mgr.Add(everyReplica(func(ctx context.Context) error {
		p.Manager.Run(ctx, p.Interval, func(err error) { log.Error(err, "renewing the webhook certificate") })
		return nil
	}))
}

// everyReplica is a runnable that runs on every replica, not only the leader.
type everyReplica func(ctx context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }

var _ manager.LeaderElectionRunnable = everyReplica(nil)
