//go:build tools

// Package tools pins Prometheus, whose server scrapes real orbweaver components in
// test/monitoring and whose promtool checks the chart's alert rules. It needs a module
// of its own: Prometheus' Kubernetes, OpenTelemetry and gRPC libraries differ from the
// other tools', and nothing of it may move their versions.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
