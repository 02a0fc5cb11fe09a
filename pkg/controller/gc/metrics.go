package gc

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// metrics are the controller's orbweaver_gc_* metrics. Counters of decisions count
// what landed (what Apply and the API server say took effect), not what was planned.
type metrics struct {
	released   *prometheus.CounterVec
	rebound    *prometheus.CounterVec
	deleted    *prometheus.CounterVec
	runs       *prometheus.CounterVec
	duration   prometheus.Histogram
	poolWrites *prometheus.CounterVec
	pending    prometheus.Gauge
	warnings   prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		released: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orbweaver", Subsystem: "gc", Name: "released_addresses_total",
			Help: "Addresses GC released back to their pools, by reason.",
		}, []string{"reason"}),
		rebound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orbweaver", Subsystem: "gc", Name: "rebound_addresses_total",
			Help: "Addresses GC moved from a deleted node's reserve to the pod holding them, by reason.",
		}, []string{"reason"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orbweaver", Subsystem: "gc", Name: "endpoint_deletions_total",
			Help: "SpiderEndpoints GC deleted, by reason.",
		}, []string{"reason"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orbweaver", Subsystem: "gc", Name: "runs_total",
			Help: "GC passes, by result (ok, error).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "orbweaver", Subsystem: "gc", Name: "run_duration_seconds",
			Help:    "Time of one GC pass: read, plan and write.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		poolWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orbweaver", Subsystem: "gc", Name: "pool_writes_total",
			Help: "SpiderIPPool status writes by GC, by result (ok, conflict, error).",
		}, []string{"result"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "orbweaver", Subsystem: "gc", Name: "pending_rechecks",
			Help: "Decisions the last pass found not due yet (grace periods, GoneDelay, reclaim durations).",
		}),
		warnings: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "orbweaver", Subsystem: "gc", Name: "warnings",
			Help: "Inputs the last pass could not use (invalid reclaim policies, unreadable endpoints or pools); their addresses are kept.",
		}),
	}
	// Every label value shows, at 0, before anything happens.
	for _, reason := range ipam.GCReasons() {
		m.released.WithLabelValues(string(reason))
		m.rebound.WithLabelValues(string(reason))
		m.deleted.WithLabelValues(string(reason))
	}
	for _, result := range []string{"ok", "error"} {
		m.runs.WithLabelValues(result)
	}
	for _, result := range []string{"ok", "conflict", "error"} {
		m.poolWrites.WithLabelValues(result)
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.released, m.rebound, m.deleted, m.runs, m.duration, m.poolWrites, m.pending, m.warnings} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *metrics) observeRun(d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.runs.WithLabelValues(result).Inc()
	m.duration.Observe(d.Seconds())
}

func (m *metrics) poolWrite(err error) {
	result := "ok"
	switch {
	case errors.Is(err, ipam.ErrConflict):
		result = "conflict"
	case err != nil:
		result = "error"
	}
	m.poolWrites.WithLabelValues(result).Inc()
}
