package eipbinding

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

func TestUnhonouredEvents(t *testing.T) {
	pod := &holder{Pod: types.NamespacedName{Namespace: "ns", Name: "web-0"}, UID: "u1", Node: "n1"}
	got := eip.Address{ID: "eip-1", PublicIP: "203.0.113.1"}
	a := netip.MustParseAddr("10.0.0.10")
	for _, tt := range []struct {
		name       string
		s          step
		unhonoured []string
		values     map[string]string
		wantOn     []string // "pool", "pod"
		wantIn     []string
	}{
		{name: "every attribute honoured: no event", s: step{addr: a, st: ipState{Holder: pod}}},
		{name: "the shared bandwidth package on Alibaba, named with its annotations",
			s: step{addr: a, st: ipState{Holder: pod}}, unhonoured: []string{eip.AttrBandwidthPackage}, values: map[string]string{eip.AttrBandwidthPackage: "cbwp-1"},
			wantOn: []string{"pool", "pod"},
			wantIn: []string{`bandwidthPackage "cbwp-1"`, "spec.orbweaver.eip.bandwidthPackage", "orbweaver.io/eip-bandwidth-package", "k8s.aliyun.com/eip-common-bandwidth-package-id", "provider alibaba"}},
		{name: "several, on the pool only while no pod is known",
			s: step{addr: a}, unhonoured: []string{eip.AttrBandwidth, eip.AttrISP}, values: map[string]string{eip.AttrBandwidth: "5", eip.AttrISP: "BGP"},
			wantOn: []string{"pool"},
			wantIn: []string{`bandwidth "5"`, `isp "BGP"`, "k8s.aliyun.com/eip-bandwidth", "network.alibabacloud.com/eip-bandwidth", "k8s.aliyun.com/eip-isp"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			evs := unhonouredEvents("alibaba", got, &tt.s, tt.unhonoured, tt.values)
			var on []string
			for _, e := range evs {
				if !e.warn || e.reason != ReasonAttributeUnhonoured {
					t.Errorf("event %+v, want a Warning %s", e, ReasonAttributeUnhonoured)
				}
				where := "pool"
				if e.pod != nil {
					where = "pod"
				}
				on = append(on, where)
				for _, w := range tt.wantIn {
					if !strings.Contains(e.msg, w) {
						t.Errorf("event %q does not name %q", e.msg, w)
					}
				}
			}
			if !slices.Equal(on, tt.wantOn) {
				t.Errorf("events on %v, want %v", on, tt.wantOn)
			}
		})
	}
}
