// Package monitoring proves the chart's monitoring bundle, whose two sources are
// charts/orbweaver/monitoring/rules.yaml (the alerts) and dashboard.json (the Grafana
// dashboard):
//
//   - promtool (bin/promtool) checks the rules;
//   - the chart renders them, unchanged, as a PrometheusRule and a ConfigMap for Grafana's
//     sidecar, and its PodMonitors and ServiceMonitors select the pods' metrics ports;
//   - a real Prometheus (bin/prometheus) scrapes a real orbweaver-agent and a real
//     orbweaver-controller, run as processes against a real API server after real
//     allocations, and every dashboard query and every alert expression is evaluated
//     through its HTTP API and must return series, as must every metric they name.
//
// bin/promtool, bin/prometheus and bin/helm come from `make tools`; without them the
// tests that need them are skipped, unless CI is set, when they fail.
package monitoring

import (
	"os"
	"testing"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

// env is the package's API server; nil with -short.
var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }
