package eipbinding

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

func TestMayRequest(t *testing.T) {
	allowed := map[string]string{v2beta1.LabelEIPRequests: v2beta1.EIPRequestsAllowed}
	auto := &v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPAuto}
	granting := &v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPAuto, AllowPodRequests: true}
	for _, tt := range []struct {
		name string
		in   requestAccess
		want string // the refusal's reason; "" honoured
	}{
		{"restricted, nothing allows: refused", requestAccess{namespace: "t", pool: "p"}, RefusedNamespaceNotAllowed},
		{"restricted, a pool with EIPs that does not allow: refused", requestAccess{namespace: "t", pool: "p", spec: auto}, RefusedNamespaceNotAllowed},
		{"another label value: refused", requestAccess{namespace: "t", pool: "p", namespaceLabels: map[string]string{v2beta1.LabelEIPRequests: "yes"}}, RefusedNamespaceNotAllowed},
		{"the namespace label", requestAccess{namespace: "t", pool: "p", namespaceLabels: allowed}, ""},
		{"the pool's allowPodRequests", requestAccess{namespace: "t", pool: "p", spec: granting}, ""},
		{"open", requestAccess{open: true, namespace: "t", pool: "p"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := mayRequest(tt.in)
			switch {
			case tt.want == "" && got != nil:
				t.Fatalf("refused: %+v", got)
			case tt.want != "" && (got == nil || got.reason != tt.want):
				t.Fatalf("got %+v, want reason %s", got, tt.want)
			case got != nil:
				// The event names the rule and every way to allow it.
				for _, s := range []string{"namespace t", "SpiderIPPool p", "orbweaver.io/eip-requests=allowed", "allowPodRequests", "--eip-pod-requests=open", "eip.podRequests"} {
					if !strings.Contains(got.msg, s) {
						t.Errorf("message %q does not name %q", got.msg, s)
					}
				}
			}
		})
	}
}

func TestMayBind(t *testing.T) {
	ours := map[string]string{TagCluster: "c1", TagNamespace: "t"}
	free := func(tags map[string]string) eip.Address {
		return eip.Address{ID: "eip-1", PublicIP: "203.0.113.1", State: eip.Available, Tags: tags}
	}
	base := func(mod func(*idFacts)) idFacts {
		f := idFacts{id: "eip-1", cluster: "c1", namespace: "t", ip: "10.0.0.10", found: true, addr: free(nil)}
		mod(&f)
		return f
	}
	for _, tt := range []struct {
		name string
		in   idFacts
		want string
	}{
		{"listed by a Static pool the namespace may use", base(func(f *idFacts) { f.listedBy = []listing{{pool: "s", admits: true}} }), ""},
		{"tagged by this cluster for the namespace", base(func(f *idFacts) { f.addr = free(ours) }), ""},
		{"already bound to the pod's IP", base(func(f *idFacts) {
			f.addr = free(ours)
			f.addr.State, f.addr.PrivateIP = eip.InUse, "10.0.0.10"
		}), ""},
		{"not in the cloud", base(func(f *idFacts) { f.found = false; f.listedBy = []listing{{pool: "s", admits: true}} }), RefusedEIPNotFound},
		{"another cluster's, even listed", base(func(f *idFacts) {
			f.addr = free(map[string]string{TagCluster: "c2", TagNamespace: "t"})
			f.listedBy = []listing{{pool: "s", admits: true}}
		}), RefusedEIPOfAnotherCluster},
		{"associated elsewhere, even tagged for the namespace", base(func(f *idFacts) {
			f.addr = free(ours)
			f.addr.State, f.addr.NetworkInterface, f.addr.PrivateIP = eip.InUse, "eni-x", "10.9.9.9"
		}), RefusedEIPAssociatedElsewhere},
		{"associating elsewhere", base(func(f *idFacts) {
			f.addr = free(ours)
			f.addr.State, f.addr.PrivateIP = eip.Associating, "10.9.9.9"
		}), RefusedEIPAssociatedElsewhere},
		{"held by another pool IP's binding", base(func(f *idFacts) {
			f.addr = free(ours)
			f.trackedBy = []string{"other/10.1.0.10"}
		}), RefusedEIPOfAnotherPool},
		{"listed by a pool the namespace may not use", base(func(f *idFacts) { f.listedBy = []listing{{pool: "theirs", admits: false}} }), RefusedEIPOfAnotherPool},
		{"listed by a pool the namespace may not use, though tagged for it", base(func(f *idFacts) {
			f.addr = free(ours)
			f.listedBy = []listing{{pool: "theirs", admits: false}}
		}), RefusedEIPOfAnotherPool},
		{"an untagged EIP of the account", base(func(*idFacts) {}), RefusedEIPNotGranted},
		{"tagged for another namespace", base(func(f *idFacts) { f.addr = free(map[string]string{TagCluster: "c1", TagNamespace: "other"}) }), RefusedEIPNotGranted},
		{"tagged for the namespace but no cluster", base(func(f *idFacts) { f.addr = free(map[string]string{TagNamespace: "t"}) }), RefusedEIPNotGranted},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := mayBind(tt.in)
			switch {
			case tt.want == "" && got != nil:
				t.Fatalf("refused: %+v", got)
			case tt.want != "" && (got == nil || got.reason != tt.want):
				t.Fatalf("got %+v, want reason %s", got, tt.want)
			case got != nil && (!strings.Contains(got.msg, "eip-1") || !strings.Contains(got.msg, "orbweaver.io/namespace=t")):
				t.Errorf("message %q names neither the EIP nor the fix", got.msg)
			}
		})
	}
}

func TestAdmitsNamespace(t *testing.T) {
	pool := func(names []string, sel *metav1.LabelSelector) *v2beta1.SpiderIPPool {
		return &v2beta1.SpiderIPPool{Spec: v2beta1.IPPoolSpec{NamespaceName: names, NamespaceAffinity: sel}}
	}
	team := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
	for _, tt := range []struct {
		name   string
		pool   *v2beta1.SpiderIPPool
		ns     string
		labels map[string]string
		want   bool
	}{
		{"no restriction", pool(nil, nil), "t", nil, true},
		{"namespaceName has it", pool([]string{"t"}, nil), "t", nil, true},
		{"namespaceName lacks it", pool([]string{"u"}, nil), "t", nil, false},
		{"namespaceName wins over namespaceAffinity", pool([]string{"u"}, team), "t", map[string]string{"team": "a"}, false},
		{"namespaceAffinity matches", pool(nil, team), "t", map[string]string{"team": "a"}, true},
		{"namespaceAffinity does not match", pool(nil, team), "t", map[string]string{"team": "b"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := admitsNamespace(tt.pool, tt.ns, tt.labels); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}
