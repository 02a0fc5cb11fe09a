package agent

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// Metrics are the agent's Prometheus metrics. Each agent registers its own set on the
// registry it is given; nothing is global.
type Metrics struct {
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	poolWrites *prometheus.CounterVec
	batchSize  prometheus.Histogram
}

// NewMetrics returns unregistered metrics; Register adds them to a registry.
func NewMetrics() *Metrics {
	return &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orbweaver", Subsystem: "agent", Name: "requests_total",
			Help: "IPAM requests by operation (add, del, check, gc) and result (ok or the error reason).",
		}, []string{"op", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "orbweaver", Subsystem: "agent", Name: "request_duration_seconds",
			Help:    "Time to answer an IPAM request, by operation.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"op"}),
		poolWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orbweaver", Subsystem: "agent", Name: "pool_writes_total",
			Help: "SpiderIPPool status writes by pool and result (ok, conflict, error).",
		}, []string{"pool", "result"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "orbweaver", Subsystem: "agent", Name: "pool_write_batch_size",
			Help:    "Requests carried by one pool write (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
	}
}

// Register adds the metrics to a registry.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.poolWrites, m.batchSize} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *Metrics) observe(op string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		_, result = classify(err)
	}
	m.requests.WithLabelValues(op, result).Inc()
	m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (m *Metrics) onWrite(pool string, batch int, err error) {
	result := "ok"
	switch {
	case errors.Is(err, ipam.ErrConflict):
		result = "conflict"
	case err != nil:
		result = "error"
	}
	m.poolWrites.WithLabelValues(pool, result).Inc()
	m.batchSize.Observe(float64(batch))
}
