package ippool

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// metrics are the pool controller's Prometheus metrics: one series per pool for the
// gauges (pools are few), removed when the pool is gone.
type metrics struct {
	total, allocated, spare, free *prometheus.GaugeVec
	writes                        *prometheus.CounterVec
}

// Results of a status or finalizer write, the values of the result label.
const (
	resultOK       = "ok"
	resultConflict = "conflict"
	resultError    = "error"
)

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "orbweaver", Subsystem: "ippool", Name: name, Help: help}, []string{"pool"})
	}
	m := &metrics{
		total:     gauge("total_addresses", "Addresses of a pool: spec.ips minus spec.excludeIPs (status.totalIPCount)."),
		allocated: gauge("allocated_addresses", "Addresses of a pool held by pods; in Grants mode, by pods' SpiderEndpoints (status.allocatedIPCount)."),
		spare:     gauge("spare_addresses", "Addresses of a pool held by node agents' reserves, not yet handed to a pod; 0 in Grants mode (status.orbweaver.spareIPCount)."),
		free:      gauge("free_addresses", "Addresses of a pool a new allocation could take now: neither held nor reserved by a SpiderReservedIP (status.orbweaver.freeIPCount)."),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orbweaver", Subsystem: "ippool", Name: "writes_total",
			Help: "Writes of the pool controller by kind (status, finalizer, import: of SpiderPool's records) and result (ok, conflict, error).",
		}, []string{"kind", "result"}),
	}
	for _, kind := range []string{"status", "finalizer", "import"} {
		for _, result := range []string{resultOK, resultConflict, resultError} {
			m.writes.WithLabelValues(kind, result)
		}
	}
	if r == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.total, m.allocated, m.spare, m.free, m.writes} {
		if err := r.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe records a pool's counts. The allocated and spare gauges are left out while
// the records do not decode.
func (m *metrics) observe(pool string, f facts) {
	m.total.WithLabelValues(pool).Set(float64(f.total))
	m.free.WithLabelValues(pool).Set(float64(f.free))
	if f.recordsErr == nil {
		m.allocated.WithLabelValues(pool).Set(float64(f.allocated))
		m.spare.WithLabelValues(pool).Set(float64(f.spare))
	} else {
		m.allocated.DeleteLabelValues(pool)
		m.spare.DeleteLabelValues(pool)
	}
}

// forget removes a deleted pool's series.
func (m *metrics) forget(pool string) {
	m.total.DeleteLabelValues(pool)
	m.allocated.DeleteLabelValues(pool)
	m.spare.DeleteLabelValues(pool)
	m.free.DeleteLabelValues(pool)
}

func (m *metrics) wrote(kind string, err error) {
	result := resultOK
	switch {
	case errors.Is(err, ipam.ErrConflict):
		result = resultConflict
	case err != nil:
		result = resultError
	}
	m.writes.WithLabelValues(kind, result).Inc()
}
