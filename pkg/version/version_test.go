package version

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestStamped: what make build stamps is what --version says and what the metric
// carries; an unstamped build says dev.
func TestStamped(t *testing.T) {
	if got := String("orbweaver-agent"); !strings.HasPrefix(got, "orbweaver-agent dev (commit ") || !strings.HasSuffix(got, runtime.Version()+")") {
		t.Errorf("unstamped: %q", got)
	}
	version, commit = "v1.2.3", "abc1234"
	t.Cleanup(func() { version, commit = "dev", "" })
	if got, want := String("orbweaver-controller"), "orbweaver-controller v1.2.3 (commit abc1234, "+runtime.Version()+")"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector())
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "orbweaver_build_info" || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gathered %v, %v", mfs, err)
	}
	m := mfs[0].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if m.GetGauge().GetValue() != 1 || labels["version"] != "v1.2.3" || labels["commit"] != "abc1234" || labels["goversion"] != runtime.Version() {
		t.Errorf("orbweaver_build_info %v = %v", labels, m.GetGauge().GetValue())
	}
}
