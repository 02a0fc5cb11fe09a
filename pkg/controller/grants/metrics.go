package grants

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the grant controller's Prometheus metrics.
type metrics struct {
	rounds    *prometheus.CounterVec
	granted   prometheus.Counter
	reclaimed prometheus.Counter
	returned  prometheus.Counter
	migrated  prometheus.Counter
	writes    *prometheus.CounterVec
	unmet     *prometheus.GaugeVec
}

// Results of a block write, the values of the result label.
const (
	resultOK       = "ok"
	resultConflict = "conflict"
	resultError    = "error"
)

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orbweaver", Subsystem: "grants", Name: "rounds_total",
			Help: "Grant rounds by outcome: idle (nothing to write), written, stale (waited for the cache to show the controller's own last write), conflict, error.",
		}, []string{"outcome"}),
		granted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "orbweaver", Subsystem: "grants", Name: "granted_addresses_total",
			Help: "Addresses granted to nodes.",
		}),
		reclaimed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "orbweaver", Subsystem: "grants", Name: "reclaim_requests_total",
			Help: "Addresses a node was asked to give back because another node needed them.",
		}),
		returned: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "orbweaver", Subsystem: "grants", Name: "returned_addresses_total",
			Help: "Addresses nodes gave back in answer to a reclaim request and the controller took from them.",
		}),
		migrated: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "orbweaver", Subsystem: "grants", Name: "migrated_addresses_total",
			Help: "Addresses a pool's records (format 1) held that were granted to their node when the pool switched to node grants.",
		}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orbweaver", Subsystem: "grants", Name: "block_writes_total",
			Help: "IPBlock creates, updates and deletes by result (ok, conflict, error).",
		}, []string{"result"}),
		unmet: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "orbweaver", Subsystem: "grants", Name: "unmet_addresses",
			Help: "Addresses nodes need of a pool that the last round could not grant.",
		}, []string{"pool"}),
	}
	for _, o := range []string{"idle", "written", "stale", "conflict", "error"} {
		m.rounds.WithLabelValues(o)
	}
	for _, res := range []string{resultOK, resultConflict, resultError} {
		m.writes.WithLabelValues(res)
	}
	if r == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.rounds, m.granted, m.reclaimed, m.returned, m.migrated, m.writes, m.unmet} {
		if err := r.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
