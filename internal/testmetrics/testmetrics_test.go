package testmetrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestValue(t *testing.T) {
	reg := prometheus.NewRegistry()
	writes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "writes_total"}, []string{"pool", "result"})
	free := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "free"}, []string{"pool"})
	reg.MustRegister(writes, free)
	writes.WithLabelValues("a", "ok").Add(3)
	writes.WithLabelValues("a", "conflict").Add(1)
	free.WithLabelValues("b").Set(7)

	tests := []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
		wantOK bool
	}{
		{"counter by every label", "writes_total", map[string]string{"pool": "a", "result": "conflict"}, 1, true},
		{"gauge", "free", map[string]string{"pool": "b"}, 7, true},
		{"no such series", "free", map[string]string{"pool": "a"}, 0, false},
		{"no such metric", "reads_total", nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Value(t, reg, tt.metric, tt.labels)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Value(%s, %v) = %v, %v; want %v, %v", tt.metric, tt.labels, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
