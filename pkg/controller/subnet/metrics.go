package subnet

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the subnet controller's Prometheus metrics: one series per subnet for the
// gauges (subnets are few), removed when the subnet is gone.
type metrics struct {
	total, allocated, free, pools *prometheus.GaugeVec
	writes                        *prometheus.CounterVec
}

// Results of a status or finalizer write, the values of the result label.
const (
	resultOK       = "ok"
	resultConflict = "conflict"
	resultError    = "error"
)

// errConflict marks a write that lost a compare-and-swap.
var errConflict = errors.New("conflict")

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "orbweaver", Subsystem: "subnet", Name: name, Help: help}, []string{"subnet"})
	}
	m := &metrics{
		total:     gauge("total_addresses", "Addresses of a subnet: spec.ips minus spec.excludeIPs (status.totalIPCount)."),
		allocated: gauge("allocated_addresses", "Addresses of a subnet handed to its pools (status.allocatedIPCount)."),
		free:      gauge("free_addresses", "Addresses of a subnet left for new and growing pools: in no pool, not reserved by a SpiderReservedIP."),
		pools:     gauge("pools", "Pools that belong to a subnet."),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orbweaver", Subsystem: "subnet", Name: "writes_total",
			Help: "Writes of the subnet controller by kind (status, finalizer) and result (ok, conflict, error).",
		}, []string{"kind", "result"}),
	}
	for _, kind := range []string{"status", "finalizer"} {
		for _, result := range []string{resultOK, resultConflict, resultError} {
			m.writes.WithLabelValues(kind, result)
		}
	}
	if r == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.total, m.allocated, m.free, m.pools, m.writes} {
		if err := r.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observe(subnet string, f facts) {
	m.total.WithLabelValues(subnet).Set(float64(f.total.Count().Int64Saturating()))
	m.allocated.WithLabelValues(subnet).Set(float64(f.allocated()))
	m.free.WithLabelValues(subnet).Set(float64(f.free.Count().Int64Saturating()))
	m.pools.WithLabelValues(subnet).Set(float64(len(f.owned)))
}

// forget removes a deleted subnet's series.
func (m *metrics) forget(subnet string) {
	for _, g := range []*prometheus.GaugeVec{m.total, m.allocated, m.free, m.pools} {
		g.DeleteLabelValues(subnet)
	}
}

func (m *metrics) wrote(kind string, err error) {
	result := resultOK
	switch {
	case errors.Is(err, errConflict):
		result = resultConflict
	case err != nil:
		result = resultError
	}
	m.writes.WithLabelValues(kind, result).Inc()
}
