// Package buildinfo is the orbweaver_build_info metric of the agent and the controller.
package buildinfo

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orbweaver-ipam/orbweaver/pkg/version"
)

// Collector is orbweaver_build_info: always 1, with the version, commit and Go version
// as labels, so that a dashboard sees which versions run where.
func Collector() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "orbweaver_build_info",
		Help: "Always 1; the labels say which orbweaver build runs: version, commit, Go version.",
		ConstLabels: prometheus.Labels{
			"version": version.Version(), "commit": version.Commit(), "goversion": runtime.Version(),
		},
	})
	g.Set(1)
	return g
}
