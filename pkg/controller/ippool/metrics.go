package ippool

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// metrics are the pool controller's Prometheus metrics: one series per pool for the
// gauges (pools are few), removed when the pool is gone.
type metrics struct {
	total, allocated, spare, free *prometheus.GaugeVec
	writes                        *prometheus.CounterVec
	// eipNotReady and eipBindings are the pool's EIPReady condition and its EIP
	// bindings by phase; 0 for a pool without EIPs.
	eipNotReady, eipBindings *prometheus.GaugeVec
}

// eipPhases are the values of the phase label of orbweaver_ippool_eip_bindings.
var eipPhases = []v2beta1.EIPPhase{v2beta1.EIPAllocating, v2beta1.EIPAllocated, v2beta1.EIPAssociating,
	v2beta1.EIPBound, v2beta1.EIPUnbinding, v2beta1.EIPReleasing}

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
		eipNotReady: gauge("eip_not_ready", "1 when a pool with spec.orbweaver.eip has an EIPReady condition that is not True (an IP held by a pod lacks its bound EIP); 0 otherwise."),
		eipBindings: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "orbweaver", Subsystem: "ippool", Name: "eip_bindings",
			Help: "EIP bindings of a pool (status.orbweaver.eips) by phase (Allocating, Allocated, Associating, Bound, Unbinding, Releasing).",
		}, []string{"pool", "phase"}),
	}
	for _, kind := range []string{"status", "finalizer", "import"} {
		for _, result := range []string{resultOK, resultConflict, resultError} {
			m.writes.WithLabelValues(kind, result)
		}
	}
	if r == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.total, m.allocated, m.spare, m.free, m.writes, m.eipNotReady, m.eipBindings} {
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

// observeEIPs records a pool's EIP readiness and its bindings by phase: every phase
// shows, at 0 when no binding is in it, so that alerts on stuck phases have a series.
func (m *metrics) observeEIPs(sp *v2beta1.SpiderIPPool) {
	notReady := 0.0
	counts := map[v2beta1.EIPPhase]int{}
	if ob := sp.Status.Orbweaver; ob != nil {
		for _, b := range ob.EIPs {
			counts[b.Phase]++
		}
		if sp.Spec.Orbweaver != nil && sp.Spec.Orbweaver.EIP != nil {
			if c := meta.FindStatusCondition(ob.Conditions, v2beta1.IPPoolEIPReadyCondition); c != nil && c.Status != metav1.ConditionTrue {
				notReady = 1
			}
		}
	}
	m.eipNotReady.WithLabelValues(sp.Name).Set(notReady)
	for _, phase := range eipPhases {
		m.eipBindings.WithLabelValues(sp.Name, string(phase)).Set(float64(counts[phase]))
	}
}

// forget removes a deleted pool's series.
func (m *metrics) forget(pool string) {
	m.total.DeleteLabelValues(pool)
	m.allocated.DeleteLabelValues(pool)
	m.spare.DeleteLabelValues(pool)
	m.free.DeleteLabelValues(pool)
	m.eipNotReady.DeleteLabelValues(pool)
	m.eipBindings.DeletePartialMatch(prometheus.Labels{"pool": pool})
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
