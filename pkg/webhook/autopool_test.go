package webhook

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// webApp is the workload of the auto pools of these tests.
var webApp = ipam.Application{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "default", Name: "web", UID: "0f6a1c52-9a2b-4c1d-8e3f-52c0d1e2f3a4"}

// auto makes a pool the auto pool of webApp, cut from SpiderSubnet "s", as the
// auto-pool controller dresses it.
func auto() opt {
	return func(p *poolT) {
		for k, v := range ipam.AutoPoolLabels(webApp, "s", "eth0", 4, true) {
			label(k, v)(p)
		}
		p.Spec.PodAffinity = ipam.AutoPoolAffinity(webApp)
	}
}

func TestValidateAutoPoolEdit(t *testing.T) {
	base := pool("auto4-web-eth0-52c0d", "10.0.0.0/24", version(4), ips("10.0.0.10-10.0.0.14"), auto())
	manual := pool("p", "10.0.0.0/24", version(4), ips("10.0.0.10-10.0.0.14"), podAffinity(&metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}))
	otherApp := ipam.AutoPoolAffinity(ipam.Application{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "default", Name: "db"})
	tests := []struct {
		name     string
		old, new *poolT
		want     []want
	}{
		{
			name: "resizing by hand names the annotation that sizes the pool",
			old:  base,
			new:  with(base, ips("10.0.0.10-10.0.0.20")),
			want: []want{forbidden("spec.ips", `sizes this auto pool of Deployment default/web from SpiderSubnet "s"; to change its size, edit the ipam.spidernet.io/ippool-ip-number annotation of the workload's pod template instead`)},
		},
		{
			name: "swapping an address by hand, same size",
			old:  base,
			new:  with(base, ips("10.0.0.10-10.0.0.13", "10.0.0.99")),
			want: []want{forbidden("spec.ips", "ippool-ip-number")},
		},
		{
			name: "the same addresses written differently are no change (Default merges ranges)",
			old:  with(base, ips("10.0.0.14", "10.0.0.10-10.0.0.13")),
			new:  base,
		},
		{
			name: "pointing podAffinity at another workload",
			old:  base,
			new:  with(base, podAffinity(otherApp)),
			want: []want{forbidden("spec.podAffinity", `is set by orbweaver's auto-pool controller to the pods of Deployment default/web, whose auto pool this is; to give other pods addresses of SpiderSubnet "s", annotate their workload's pod template with ipam.spidernet.io/subnet`)},
		},
		{
			name: "dropping podAffinity",
			old:  base,
			new:  with(base, podAffinity(nil)),
			want: []want{forbidden("spec.podAffinity", "auto-pool controller")},
		},
		{
			name: "both at once, and dropping the auto-pool labels does not make it a manual pool",
			old:  base,
			new: with(base, ips("10.0.0.10-10.0.0.11"), podAffinity(&metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}),
				func(p *poolT) { delete(p.Labels, ipam.LabelOwnerAppUID) }),
			want: []want{forbidden("spec.ips", "ippool-ip-number"), forbidden("spec.podAffinity", "auto-pool controller")},
		},
		{
			name: "excluding an address stays allowed: the controller adds another",
			old:  base,
			new:  with(base, exclude("10.0.0.12")),
		},
		{
			name: "other fields stay editable",
			old:  base,
			new:  with(base, gateway("10.0.0.1"), label("team", "net"), nodeAffinity(&metav1.LabelSelector{MatchLabels: map[string]string{"rack": "r1"}})),
		},
		{
			name: "a manual pool is the user's",
			old:  manual,
			new:  with(manual, ips("10.0.0.10-10.0.0.50"), podAffinity(nil)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectErrors(t, ValidateAutoPoolEdit(tt.old, tt.new), tt.want...)
		})
	}
}
