package agent

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// TestMetricsShowFromTheStart: every operation and result of the requests counter and
// every operation of the latency histogram show at 0 before any request, and a pool's
// three write results with its first write, so that alerts on failures and conflicts
// have a series to evaluate on a healthy node.
func TestMetricsShowFromTheStart(t *testing.T) {
	m := NewMetrics()
	reg := prometheus.NewRegistry()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	series := func() map[string]map[string]float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]map[string]float64{}
		for _, mf := range mfs {
			out[mf.GetName()] = map[string]float64{}
			for _, s := range mf.GetMetric() {
				key := ""
				for _, l := range s.GetLabel() {
					key += l.GetName() + "=" + l.GetValue() + ","
				}
				out[mf.GetName()][key] = s.GetCounter().GetValue() + float64(s.GetHistogram().GetSampleCount())
			}
		}
		return out
	}
	got := series()
	for _, tt := range []struct{ op, result string }{{"add", "ok"}, {"add", ReasonPoolExhausted}, {"add", ReasonNoPool},
		{"add", ReasonConflict}, {"del", ReasonInternal}, {"check", ReasonCheckFailed}, {"gc", "ok"}} {
		key := "op=" + tt.op + ",result=" + tt.result + ","
		if v, ok := got["orbweaver_agent_requests_total"][key]; !ok || v != 0 {
			t.Errorf("requests_total{%s}: %v (present: %v); want 0", key, v, ok)
		}
	}
	if n := len(got["orbweaver_agent_requests_total"]); n != len(requestOps)*len(requestResults) {
		t.Errorf("%d requests_total series; want %d", n, len(requestOps)*len(requestResults))
	}
	if n := len(got["orbweaver_agent_request_duration_seconds"]); n != len(requestOps) {
		t.Errorf("%d request_duration_seconds series; want %d", n, len(requestOps))
	}
	if _, ok := got["orbweaver_agent_pool_writes_total"]; ok {
		t.Error("pool_writes_total has series before any write")
	}

	m.onWrite("p", 3, fmt.Errorf("write pool p: %w", ipam.ErrConflict))
	got = series()
	for result, want := range map[string]float64{"ok": 0, "conflict": 1, "error": 0} {
		if v, ok := got["orbweaver_agent_pool_writes_total"]["pool=p,result="+result+","]; !ok || v != want {
			t.Errorf("pool_writes_total{pool=p,result=%s}: %v (present: %v); want %v", result, v, ok, want)
		}
	}
}
