package autopool

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Failure reasons, the reason label of orbweaver_autopool_failures_total.
const (
	failSubnetMissing   = "subnet_missing"
	failSubnetExhausted = "subnet_exhausted"
	failBadAnnotation   = "bad_annotation"
	failFlexible        = "third_party_flexible"
	failInvalid         = "invalid"
	failWrite           = "write"
)

// Deletion reasons, the reason label of orbweaver_autopool_pools_deleted_total.
const (
	deleteAppGone  = "application_deleted"
	deleteUnwanted = "not_wanted"
)

// metrics are the orbweaver_autopool_* series, labelled by the application's kind.
type metrics struct {
	created  *prometheus.CounterVec
	resized  *prometheus.CounterVec
	adopted  *prometheus.CounterVec
	deleted  *prometheus.CounterVec
	failures *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orbweaver_autopool_pools_created_total",
			Help: "Auto pools created, by application kind.",
		}, []string{"kind"}),
		resized: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orbweaver_autopool_pools_resized_total",
			Help: "Auto pool resizes written, by application kind and direction (grow, shrink).",
		}, []string{"kind", "direction"}),
		adopted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orbweaver_autopool_pools_adopted_total",
			Help: "Kept auto pools (ippool-reclaim \"false\") taken over by a new application of the same kind, namespace and name.",
		}, []string{"kind"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orbweaver_autopool_pools_deleted_total",
			Help: "Auto pools deleted, by application kind and reason (application_deleted, not_wanted).",
		}, []string{"kind", "reason"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orbweaver_autopool_failures_total",
			Help: "Reconciles that could not give an application the pools it asks for, by application kind and reason (subnet_missing, subnet_exhausted, bad_annotation, third_party_flexible, invalid, write).",
		}, []string{"kind", "reason"}),
	}
}

// register adds the series to reg; one that is registered already (a second manager in
// the same process) is shared.
func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []**prometheus.CounterVec{&m.created, &m.resized, &m.adopted, &m.deleted, &m.failures} {
		if err := reg.Register(*c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return fmt.Errorf("register autopool metrics: %w", err)
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return fmt.Errorf("register autopool metrics: %w", err)
			}
			*c = existing
		}
	}
	return nil
}
