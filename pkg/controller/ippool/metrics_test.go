package ippool

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// TestObserveEIPs: a pool's EIP readiness and its bindings by phase, every phase at 0
// when none is in it, and nothing left of the pool once it is forgotten.
func TestObserveEIPs(t *testing.T) {
	eipSpec := &v2beta1.IPPoolOrbweaverSpec{EIP: &v2beta1.EIPSpec{Mode: v2beta1.EIPAuto}}
	cond := func(s metav1.ConditionStatus) []metav1.Condition {
		return []metav1.Condition{{Type: v2beta1.IPPoolEIPReadyCondition, Status: s, Reason: "x"}}
	}
	tests := []struct {
		name     string
		spec     *v2beta1.IPPoolOrbweaverSpec
		status   *v2beta1.IPPoolOrbweaverStatus
		notReady float64
		phases   map[v2beta1.EIPPhase]float64
	}{
		{name: "no EIPs", notReady: 0},
		{name: "EIP pool, all bound", spec: eipSpec, notReady: 0,
			status: &v2beta1.IPPoolOrbweaverStatus{Conditions: cond(metav1.ConditionTrue), EIPs: []v2beta1.EIPBinding{
				{IP: "10.0.0.1", Phase: v2beta1.EIPBound}, {IP: "10.0.0.2", Phase: v2beta1.EIPBound}}},
			phases: map[v2beta1.EIPPhase]float64{v2beta1.EIPBound: 2}},
		{name: "EIP pool, one associating", spec: eipSpec, notReady: 1,
			status: &v2beta1.IPPoolOrbweaverStatus{Conditions: cond(metav1.ConditionFalse), EIPs: []v2beta1.EIPBinding{
				{IP: "10.0.0.1", Phase: v2beta1.EIPBound}, {IP: "10.0.0.2", Phase: v2beta1.EIPAssociating}}},
			phases: map[v2beta1.EIPPhase]float64{v2beta1.EIPBound: 1, v2beta1.EIPAssociating: 1}},
		{name: "EIP attribute removed, condition left", notReady: 0,
			status: &v2beta1.IPPoolOrbweaverStatus{Conditions: cond(metav1.ConditionFalse)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := newMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
			sp.Spec.Orbweaver = tt.spec
			sp.Status.Orbweaver = tt.status
			m.observeEIPs(sp)
			got := gauges(t, reg)
			if got["orbweaver_ippool_eip_not_ready"] != tt.notReady {
				t.Errorf("eip_not_ready %v; want %v", got["orbweaver_ippool_eip_not_ready"], tt.notReady)
			}
			for _, phase := range eipPhases {
				key := "orbweaver_ippool_eip_bindings/" + string(phase)
				if v, ok := got[key]; !ok || v != tt.phases[phase] {
					t.Errorf("eip_bindings{phase=%q} %v (present: %v); want %v", phase, v, ok, tt.phases[phase])
				}
			}
			m.forget("p")
			for k := range gauges(t, reg) {
				if strings.HasPrefix(k, "orbweaver_ippool_eip_") {
					t.Errorf("%s left after forget", k)
				}
			}
		})
	}
}

// gauges gathers reg: name, or name/phase for the phase-labelled one, to value.
func gauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				if l.GetName() == "phase" {
					key += "/" + l.GetValue()
				}
			}
			if g := m.GetGauge(); g != nil {
				out[key] = g.GetValue()
			}
		}
	}
	return out
}
