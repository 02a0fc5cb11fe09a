package eipbinding

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

type metrics struct {
	calls   *prometheus.CounterVec
	orphans *prometheus.CounterVec
	refused *prometheus.CounterVec
	bound   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orbweaver_eip_cloud_calls_total",
			Help: "EIP cloud API calls by provider, operation and result (ok, throttled, transient, quota, forbidden, notfound, associated, invalid, unsupported, error).",
		}, []string{"provider", "op", "result"}),
		orphans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orbweaver_eip_orphans_released_total",
			Help: "EIPs tagged for this cluster that no pool tracked, released by the orphan collector.",
		}, []string{"provider"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orbweaver_eip_requests_refused_total",
			Help: "Pods' EIP requests (by annotation) refused, by reason (NamespaceNotAllowed, EIPNotFound, EIPOfAnotherCluster, EIPOfAnotherPool, EIPAssociatedElsewhere, EIPNotGranted, EIPListTooShort); counted once per pod, pool and refusal.",
		}, []string{"reason"}),
		bound: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "orbweaver_eip_pod_bound_seconds",
			Help:    "Time from a pod's creation to its EIP readiness gate turning True.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 10),
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.calls, m.orphans, m.refused, m.bound} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// call counts one cloud call by its result class.
func (m *metrics) call(provider, op string, err error) {
	m.calls.WithLabelValues(provider, op, resultOf(err)).Inc()
}

func resultOf(err error) string {
	for _, c := range []struct {
		err  error
		name string
	}{{eip.ErrThrottled, "throttled"}, {eip.ErrTransient, "transient"}, {eip.ErrQuotaExceeded, "quota"}, {eip.ErrForbidden, "forbidden"},
		{eip.ErrNotFound, "notfound"}, {eip.ErrAssociated, "associated"}, {eip.ErrInvalidTarget, "invalid"},
		{eip.ErrUnsupported, "unsupported"}} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	if err != nil {
		return "error"
	}
	return "ok"
}
