package eip_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

// benchPods is how many pods each iteration binds.
const benchPods = 50

// BenchmarkBindPods measures the EIP controller binding a burst: benchPods pods of one
// Auto pool are running (records and endpoints written) before the controller starts;
// the time is from its start (its caches' sync included) to every binding Bound,
// through each cloud as TestEIP
// reaches it (the in-memory cloud answers at once; the SDK cases add their wire
// protocol, signing and parsing, on loopback). It reports pods bound per second and
// cloud calls per pod. No peer is measured: no other EIP controller runs here.
func BenchmarkBindPods(b *testing.B) {
	for _, cc := range clouds {
		b.Run(cc.label, func(b *testing.B) {
			h := newHarness(b, cc)
			h.cloud.AsyncDelay = 0
			node := h.node()
			var bound time.Duration
			calls := 0
			for i := range b.N {
				b.StopTimer()
				h.stop()
				spec := v2beta1.EIPSpec{Provider: cc.name, Mode: v2beta1.EIPAuto}
				pool := h.poolOf(&spec)
				sp := h.getPool(pool)
				sp.Spec.IPs = []v2beta1.IPOrRange{v2beta1.IPOrRange(fmt.Sprintf("%s.10-%s.250", prefix3(sp), prefix3(sp)))}
				if err := h.e.Client.Update(h.ctx, sp); err != nil {
					b.Fatal(err)
				}
				for j := range benchPods {
					h.run(fmt.Sprintf("bench-%d-%d", i, j), node, pool, netip.Addr{}, podOpts{})
				}
				before := h.cloud.CallCount("")
				b.StartTimer()
				start := time.Now()
				h.start(startOpts{quiet: true})
				testenv.WaitFor(b, fmt.Sprintf("%d EIPs bound", benchPods), func() (bool, error) {
					n := 0
					for _, e := range bindingsOfPool(h.getPool(pool)) {
						if e.Phase == v2beta1.EIPBound {
							n++
						}
					}
					return n == benchPods, fmt.Errorf("%d of %d bound", n, benchPods)
				})
				bound += time.Since(start)
				b.StopTimer()
				calls += h.cloud.CallCount("") - before
			}
			b.ReportMetric(float64(benchPods*b.N)/bound.Seconds(), "pods/s")
			b.ReportMetric(float64(calls)/float64(benchPods*b.N), "calls/pod")
		})
	}
}

// prefix3 is the first three octets of a test pool's /24.
func prefix3(sp *v2beta1.SpiderIPPool) string {
	a := netip.MustParsePrefix(string(sp.Spec.Subnet)).Addr().As4()
	return fmt.Sprintf("%d.%d.%d", a[0], a[1], a[2])
}

func bindingsOfPool(sp *v2beta1.SpiderIPPool) []v2beta1.EIPBinding {
	if sp.Status.Orbweaver == nil {
		return nil
	}
	return sp.Status.Orbweaver.EIPs
}
