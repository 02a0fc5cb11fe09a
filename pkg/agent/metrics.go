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

// requestOps are the values of the op label of orbweaver_agent_requests_total and _request_duration_seconds.
var requestOps = []string{"add", "del", "check", "gc"}

// requestResults are the values of the result label: ok, or the reason an error classifies
// to (BadRequest is refused before the service and never counted).
var requestResults = []string{"ok", ReasonPoolExhausted, ReasonNoPool, ReasonPoolRefused, ReasonUnknownPool, ReasonInvalidPool,
	ReasonBadAnnotation, ReasonBadCNIConfig, ReasonAutoPoolNotReady, ReasonConflict, ReasonNotReady, ReasonInternal,
	ReasonCheckFailed, ReasonSpiderPoolRunning, ReasonKeptIPNotServed, ReasonOrdinalAddress}

// writeResults are the values of the result label of orbweaver_agent_pool_writes_total.
var writeResults = []string{"ok", "conflict", "error"}

// NewMetrics returns unregistered metrics; Register adds them to a registry. Every
// operation and result shows, at 0, before the first request, so that alerts on
// failures (rate of a result other than ok) have a series to evaluate.
func NewMetrics() *Metrics {
	m := newMetrics()
	for _, op := range requestOps {
		m.duration.WithLabelValues(op)
		for _, result := range requestResults {
			m.requests.WithLabelValues(op, result)
		}
	}
	return m
}

func newMetrics() *Metrics {
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
	// A pool's first write shows its every result, conflicts at 0 included.
	for _, r := range writeResults {
		m.poolWrites.WithLabelValues(pool, r)
	}
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

// registerReserves adds gauges of the node's reserves, read from the writers when
// scraped.
func (m *Metrics) registerReserves(r prometheus.Registerer, ws *writerSet) error {
	return r.Register(reserveCollector{ws: ws})
}

var (
	reserveSpareDesc = prometheus.NewDesc("orbweaver_agent_reserve_spare_addresses",
		"Addresses of the pool reserved for this node and not handed out.", []string{"pool"}, nil)
	reserveHandedDesc = prometheus.NewDesc("orbweaver_agent_reserve_handed_addresses",
		"Addresses handed to pods from this node's reserve that the pool does not record under the pod yet.", []string{"pool"}, nil)
	reserveHandoutsDesc = prometheus.NewDesc("orbweaver_agent_reserve_handouts_total",
		"Addresses handed to pods from this node's reserve, without a pool write.", []string{"pool"}, nil)
)

type reserveCollector struct{ ws *writerSet }

func (c reserveCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- reserveSpareDesc
	ch <- reserveHandedDesc
	ch <- reserveHandoutsDesc
}

func (c reserveCollector) Collect(ch chan<- prometheus.Metric) {
	for _, w := range c.ws.all() {
		if w.res == nil {
			continue
		}
		spare, handed, handouts := w.res.counts()
		ch <- prometheus.MustNewConstMetric(reserveSpareDesc, prometheus.GaugeValue, float64(spare), w.name)
		ch <- prometheus.MustNewConstMetric(reserveHandedDesc, prometheus.GaugeValue, float64(handed), w.name)
		ch <- prometheus.MustNewConstMetric(reserveHandoutsDesc, prometheus.CounterValue, float64(handouts), w.name)
	}
}
