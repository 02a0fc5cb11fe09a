package ipam

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

type poolOpt func(*v2beta1.SpiderIPPool)

func mkPool(name, subnet string, opts ...poolOpt) v2beta1.SpiderIPPool {
	p := v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v2beta1.IPPoolSpec{Subnet: v2beta1.CIDR(subnet)}}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func ptrTo[T any](v T) *T { return &v }

func asDefault() poolOpt        { return func(p *v2beta1.SpiderIPPool) { p.Spec.Default = ptrTo(true) } }
func disabled() poolOpt         { return func(p *v2beta1.SpiderIPPool) { p.Spec.Disable = ptrTo(true) } }
func ipVersion(v int64) poolOpt { return func(p *v2beta1.SpiderIPPool) { p.Spec.IPVersion = ptrTo(v) } }
func terminating() poolOpt {
	return func(p *v2beta1.SpiderIPPool) { p.DeletionTimestamp = &metav1.Time{} }
}
func nodeName(n ...string) poolOpt { return func(p *v2beta1.SpiderIPPool) { p.Spec.NodeName = n } }
func namespaceName(n ...string) poolOpt {
	return func(p *v2beta1.SpiderIPPool) { p.Spec.NamespaceName = n }
}
func multusName(n ...string) poolOpt { return func(p *v2beta1.SpiderIPPool) { p.Spec.MultusName = n } }
func nodeAffinity(kv ...string) poolOpt {
	return func(p *v2beta1.SpiderIPPool) { p.Spec.NodeAffinity = selector(kv...) }
}
func namespaceAffinity(kv ...string) poolOpt {
	return func(p *v2beta1.SpiderIPPool) { p.Spec.NamespaceAffinity = selector(kv...) }
}
func podAffinity(kv ...string) poolOpt {
	return func(p *v2beta1.SpiderIPPool) { p.Spec.PodAffinity = selector(kv...) }
}

func selector(kv ...string) *metav1.LabelSelector {
	s := &metav1.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

// basePools is the cluster of most cases: three IPv4 and two IPv6 pools, plus two IPv4
// and one IPv6 default pools.
func basePools() []v2beta1.SpiderIPPool {
	return []v2beta1.SpiderIPPool{
		mkPool("v4-a", "10.0.0.0/24", ipVersion(4)),
		mkPool("v4-b", "10.0.1.0/24", ipVersion(4)),
		mkPool("v4-c", "10.0.2.0/24"), // family from the subnet
		mkPool("v6-a", "fd00:a::/64", ipVersion(6)),
		mkPool("v6-b", "fd00:b::/64"),
		mkPool("def-v4-z", "10.9.0.0/24", asDefault()),
		mkPool("def-v4-y", "10.8.0.0/24", asDefault()),
		mkPool("def-v6", "fd00:d::/64", asDefault()),
	}
}

// baseInput is a dual-stack cluster, pod team-a/web-0 on node-1, interface eth0.
func baseInput() SelectionInput {
	return SelectionInput{
		Pod: &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web-0", Labels: map[string]string{"app": "web"}, Annotations: map[string]string{}},
			Spec:       corev1.PodSpec{NodeName: "node-1"},
		},
		Namespace:  &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{"env": "prod"}, Annotations: map[string]string{}}},
		Node:       &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{"zone": "z1"}}},
		IfName:     "eth0",
		Pools:      basePools(),
		EnableIPv4: true, EnableIPv6: true,
	}
}

func podAnno(kv ...string) func(*SelectionInput) {
	return func(in *SelectionInput) {
		for i := 0; i+1 < len(kv); i += 2 {
			in.Pod.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func nsAnno(kv ...string) func(*SelectionInput) {
	return func(in *SelectionInput) {
		for i := 0; i+1 < len(kv); i += 2 {
			in.Namespace.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func cniDefaults(v4, v6 []string) func(*SelectionInput) {
	return func(in *SelectionInput) { in.CNIDefaultIPv4, in.CNIDefaultIPv6 = v4, v6 }
}

func addPools(ps ...v2beta1.SpiderIPPool) func(*SelectionInput) {
	return func(in *SelectionInput) { in.Pools = append(in.Pools, ps...) }
}

func all(fs ...func(*SelectionInput)) func(*SelectionInput) {
	return func(in *SelectionInput) {
		for _, f := range fs {
			f(in)
		}
	}
}

func TestSelectPools(t *testing.T) {
	const (
		srcIPPool  = "pod annotation " + AnnoPodIPPool
		srcIPPools = "pod annotation " + AnnoPodIPPools
	)
	tests := []struct {
		name    string
		setup   func(*SelectionInput)
		want    Selection
		wantErr []error  // every sentinel the error must wrap; nil for success
		msg     []string // fragments of the error message
	}{
		// Rule priority: each rule beats the next.
		{name: "subnets beats ippools", setup: podAnno(AnnoPodSubnets, `[{"interface":"eth0","ipv4":["s1"]}]`, AnnoPodIPPools, `[{"interface":"eth0","ipv4":["v4-a"]}]`),
			wantErr: []error{ErrNoPool}, msg: []string{AnnoPodSubnets, "has no controller", "name a pool with " + AnnoPodIPPool}},
		{name: "subnet beats ippool", setup: podAnno(AnnoPodSubnet, `{"ipv4":["s1"]}`, AnnoPodIPPool, `{"ipv4":["v4-a"]}`),
			wantErr: []error{ErrNoPool}, msg: []string{AnnoPodSubnet, "bare pod"}},
		{name: "subnet of another interface falls through", setup: podAnno(AnnoPodSubnet, `{"interface":"net1","ipv4":["s1"]}`, AnnoPodIPPool, `{"ipv4":["v4-a"]}`),
			want: Selection{IPv4: []string{"v4-a"}, Source: srcIPPool}},
		{name: "malformed subnets is a bad annotation", setup: podAnno(AnnoPodSubnets, `[{"ipv4":["s1"]},{"interface":"net1","ipv4":["s2"]}]`),
			wantErr: []error{ErrBadAnnotation}, msg: []string{AnnoPodSubnets, "team-a/web-0"}},
		{name: "ippools beats ippool", setup: podAnno(AnnoPodIPPools, `[{"interface":"eth0","ipv4":["v4-b"]}]`, AnnoPodIPPool, `{"ipv4":["v4-a"]}`),
			want: Selection{IPv4: []string{"v4-b"}, Source: srcIPPools}},
		{name: "ippool beats namespace defaults", setup: all(podAnno(AnnoPodIPPool, `{"ipv4":["v4-a"]}`), nsAnno(AnnoNamespaceDefaultIPv4Pool, `["v4-b"]`)),
			want: Selection{IPv4: []string{"v4-a"}, Source: srcIPPool}},
		{name: "namespace defaults beat CNI defaults", setup: all(nsAnno(AnnoNamespaceDefaultIPv4Pool, `["v4-b"]`, AnnoNamespaceDefaultIPv6Pool, `["v6-b"]`), cniDefaults([]string{"v4-a"}, []string{"v6-a"})),
			want: Selection{IPv4: []string{"v4-b"}, IPv6: []string{"v6-b"}, Source: "namespace team-a annotation " + AnnoNamespaceDefaultIPv4Pool + " and " + AnnoNamespaceDefaultIPv6Pool}},
		{name: "CNI defaults beat default pools", setup: cniDefaults([]string{"v4-c"}, nil),
			want: Selection{IPv4: []string{"v4-c"}, Source: "CNI config default_ipv4_ippool/default_ipv6_ippool"}},
		{name: "default pools by name", setup: func(*SelectionInput) {},
			want: Selection{IPv4: []string{"def-v4-y", "def-v4-z"}, IPv6: []string{"def-v6"}, Source: "pools with spec.default: true"}},
		{name: "no rule names a pool", setup: func(in *SelectionInput) { in.Pools = in.Pools[:5] },
			wantErr: []error{ErrNoPool}, msg: []string{AnnoPodIPPool, AnnoPodIPPools, AnnoNamespaceDefaultIPv4Pool, "default_ipv4_ippool", "spec.default: true", "interface eth0"}},
		{name: "levels do not merge: namespace IPv6 only", setup: all(nsAnno(AnnoNamespaceDefaultIPv6Pool, `["v6-a"]`), cniDefaults([]string{"v4-a"}, nil)),
			want: Selection{IPv6: []string{"v6-a"}, Source: "namespace team-a annotation " + AnnoNamespaceDefaultIPv6Pool}},
		{name: "empty namespace list falls through", setup: all(nsAnno(AnnoNamespaceDefaultIPv4Pool, `[]`), cniDefaults([]string{"v4-a"}, nil)),
			want: Selection{IPv4: []string{"v4-a"}, Source: "CNI config default_ipv4_ippool/default_ipv6_ippool"}},
		{name: "ippool for another interface falls through", setup: all(podAnno(AnnoPodIPPool, `{"interface":"net1","ipv4":["v4-a"]}`), cniDefaults([]string{"v4-b"}, nil)),
			want: Selection{IPv4: []string{"v4-b"}, Source: "CNI config default_ipv4_ippool/default_ipv6_ippool"}},
		{name: "ippool applies to every interface", setup: all(podAnno(AnnoPodIPPool, `{"ipv4":["v4-a"],"cleangateway":true}`), func(in *SelectionInput) { in.IfName = "net3" }),
			want: Selection{IPv4: []string{"v4-a"}, CleanGateway: true, Source: srcIPPool}},
		{name: "nil namespace skips its rule", setup: all(func(in *SelectionInput) { in.Namespace = nil }, cniDefaults(nil, []string{"v6-b"})),
			want: Selection{IPv6: []string{"v6-b"}, Source: "CNI config default_ipv4_ippool/default_ipv6_ippool"}},

		// Order, wildcards, unknown pools.
		{name: "fallback order kept", setup: podAnno(AnnoPodIPPool, `{"ipv4":["v4-c","v4-a","v4-b"],"ipv6":["v6-b","v6-a"]}`),
			want: Selection{IPv4: []string{"v4-c", "v4-a", "v4-b"}, IPv6: []string{"v6-b", "v6-a"}, Source: srcIPPool}},
		{name: "wildcard expanded in place, repeats dropped", setup: podAnno(AnnoPodIPPool, `{"ipv4":["v4-c","v4-*","def-v4-z"]}`),
			want: Selection{IPv4: []string{"v4-c", "v4-a", "v4-b", "def-v4-z"}, Source: srcIPPool}},
		{name: "wildcard matches its family only", setup: podAnno(AnnoPodIPPool, `{"ipv4":["*-a"],"ipv6":["v6-?"]}`),
			want: Selection{IPv4: []string{"v4-a"}, IPv6: []string{"v6-a", "v6-b"}, Source: srcIPPool}},
		{name: "bracket wildcard", setup: cniDefaults([]string{"def-v4-[yz]", "v4-[^a]"}, nil),
			want: Selection{IPv4: []string{"def-v4-y", "def-v4-z", "v4-b", "v4-c"}, Source: "CNI config default_ipv4_ippool/default_ipv6_ippool"}},
		{name: "wildcard matching nothing", setup: podAnno(AnnoPodIPPool, `{"ipv4":["nope-*"]}`),
			wantErr: []error{ErrUnknownPool}, msg: []string{`"nope-*"`, "matches no pool", "IPv4 list of " + srcIPPool}},
		{name: "wildcard matching nothing next to a pool", setup: podAnno(AnnoPodIPPool, `{"ipv4":["nope-*","v4-b"]}`),
			want: Selection{IPv4: []string{"v4-b"}, Source: srcIPPool}},
		{name: "unknown pool", setup: podAnno(AnnoPodIPPool, `{"ipv4":["v4-a","gone"]}`),
			wantErr: []error{ErrUnknownPool}, msg: []string{`pool "gone" does not exist`, "IPv4 list of " + srcIPPool, "team-a/web-0", "create the pool"}},
		{name: "unknown pools from the namespace", setup: nsAnno(AnnoNamespaceDefaultIPv6Pool, `["x","y"]`),
			wantErr: []error{ErrUnknownPool}, msg: []string{`pools "x", "y" do not exist`, "namespace team-a annotation " + AnnoNamespaceDefaultIPv6Pool}},

		// Families.
		{name: "dual stack", setup: podAnno(AnnoPodIPPool, `{"ipv4":["v4-a"],"ipv6":["v6-a"]}`),
			want: Selection{IPv4: []string{"v4-a"}, IPv6: []string{"v6-a"}, Source: srcIPPool}},
		{name: "disabled family dropped", setup: all(podAnno(AnnoPodIPPool, `{"ipv4":["v4-a"],"ipv6":["v6-a"]}`), func(in *SelectionInput) { in.EnableIPv6 = false }),
			want: Selection{IPv4: []string{"v4-a"}, Source: srcIPPool}},
		{name: "only a disabled family named", setup: all(podAnno(AnnoPodIPPool, `{"ipv6":["v6-a"]}`), func(in *SelectionInput) { in.EnableIPv6 = false }),
			wantErr: []error{ErrNoPool}, msg: []string{"only IPv6 pools", "serves only IPv4"}},
		{name: "default pools of a disabled family dropped", setup: func(in *SelectionInput) { in.EnableIPv4 = false },
			want: Selection{IPv6: []string{"def-v6"}, Source: "pools with spec.default: true"}},
		{name: "both families fail", setup: podAnno(AnnoPodIPPool, `{"ipv4":["gone"],"ipv6":["v6-a-*"]}`),
			wantErr: []error{ErrUnknownPool}, msg: []string{`"gone"`, `"v6-a-*"`}},

		// Multi-NIC.
		{name: "ippools named, second interface", setup: all(podAnno(AnnoPodIPPools, `[{"interface":"eth0","ipv4":["v4-a"]},{"interface":"net1","ipv4":["v4-b"],"ipv6":["v6-b"],"cleangateway":true}]`), func(in *SelectionInput) { in.IfName = "net1" }),
			want: Selection{IPv4: []string{"v4-b"}, IPv6: []string{"v6-b"}, CleanGateway: true, Source: srcIPPools}},
		{name: "ippools unnamed, Multus naming", setup: all(podAnno(AnnoPodIPPools, `[{"ipv4":["v4-a"]},{"ipv4":["v4-b"]},{"ipv4":["v4-c"]}]`), func(in *SelectionInput) { in.IfName = "net2" }),
			want: Selection{IPv4: []string{"v4-c"}, Source: srcIPPools}},
		{name: "ippools without this interface", setup: all(podAnno(AnnoPodIPPools, `[{"interface":"eth0","ipv4":["v4-a"]},{"interface":"net1","ipv4":["v4-b"]}]`), func(in *SelectionInput) { in.IfName = "net2" }),
			wantErr: []error{ErrBadAnnotation}, msg: []string{AnnoPodIPPools, "eth0, net1", "not net2", "add an item for interface net2"}},

		// Routes, malformed input.
		{name: "routes returned whole", setup: podAnno(AnnoPodIPPool, `{"ipv4":["v4-a"]}`, AnnoPodRoutes, `[{"dst":"10.10.0.0/16","gw":"10.0.0.1"},{"dst":"fd10::/64","gw":"fd00:b::1"}]`),
			want: Selection{IPv4: []string{"v4-a"}, Source: srcIPPool, Routes: []v2beta1.Route{{Dst: "10.10.0.0/16", Gw: "10.0.0.1"}, {Dst: "fd10::/64", Gw: "fd00:b::1"}}}},
		{name: "bad routes", setup: podAnno(AnnoPodIPPool, `{"ipv4":["v4-a"]}`, AnnoPodRoutes, `[{"dst":"0.0.0.0/0","gw":"10.0.0.1"}]`),
			wantErr: []error{ErrBadAnnotation}, msg: []string{AnnoPodRoutes, "default route"}},
		{name: "bad ippool", setup: podAnno(AnnoPodIPPool, `{"ipv4":"v4-a"}`),
			wantErr: []error{ErrBadAnnotation}, msg: []string{AnnoPodIPPool, `field "ipv4"`}},
		{name: "bad namespace annotation", setup: nsAnno(AnnoNamespaceDefaultIPv4Pool, `v4-a`),
			wantErr: []error{ErrBadAnnotation}, msg: []string{"namespace team-a", AnnoNamespaceDefaultIPv4Pool}},
		{name: "bad CNI defaults", setup: cniDefaults([]string{"v4-a", "v4-a"}, nil),
			wantErr: []error{ErrBadCNIConfig}, msg: []string{"default_ipv4_ippool", `"v4-a" is named twice`}},
		{name: "no interface name", setup: func(in *SelectionInput) { in.IfName = "" }, wantErr: []error{}, msg: []string{"no interface name"}},

		// Filters in a list: refused pools are dropped, the rest keeps its order.
		{name: "refused pools dropped", setup: all(addPools(mkPool("off", "10.1.0.0/24", disabled()), mkPool("going", "10.2.0.0/24", terminating())),
			podAnno(AnnoPodIPPool, `{"ipv4":["off","v4-b","going","v4-a"]}`)),
			want: Selection{IPv4: []string{"v4-b", "v4-a"}, Source: srcIPPool}},
		{name: "all refused lists each pool", setup: all(addPools(mkPool("off", "10.1.0.0/24", disabled()), mkPool("going", "10.2.0.0/24", terminating())),
			podAnno(AnnoPodIPPool, `{"ipv4":["off","going","v6-a"]}`)),
			wantErr: []error{ErrPoolRefused}, msg: []string{`pool "off": disabled`, `pool "going": terminating`, `pool "v6-a": is an IPv6 pool, not IPv4`, "every IPv4 pool named by " + srcIPPool, "interface eth0 of pod team-a/web-0"}},
		{name: "full pools are not filtered", setup: func(in *SelectionInput) {
			full := mkPool("full", "10.3.0.0/30", ipVersion(4))
			full.Status.AllocatedIPCount, full.Status.TotalIPCount = ptrTo(int64(2)), ptrTo(int64(2))
			in.Pools = append(in.Pools, full)
			in.Pod.Annotations[AnnoPodIPPool] = `{"ipv4":["full","v4-a"]}`
		}, want: Selection{IPv4: []string{"full", "v4-a"}, Source: srcIPPool}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := baseInput()
			tt.setup(&in)
			got, err := SelectPools(in)
			explainAgrees(t, in, got, err)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("got %+v, want an error", got)
				}
				for _, want := range tt.wantErr {
					if !errors.Is(err, want) {
						t.Errorf("error %q does not wrap %q", err, want)
					}
				}
				for _, m := range tt.msg {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("error %q does not mention %q", err, m)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestSelectPoolsFilters puts one pool in front of the pod and checks whether it is
// admitted, or refused with the expected reason.
func TestSelectPoolsFilters(t *testing.T) {
	deployment := TopController{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "team-a", Name: "web"}
	autoPool := podAffinity(LabelAppAPIGroup, "apps", LabelAppAPIVersion, "v1", LabelAppKind, "Deployment", LabelAppNamespace, "team-a", LabelAppName, "web")
	tests := []struct {
		name   string
		pool   v2beta1.SpiderIPPool
		setup  func(*SelectionInput)
		reason string // "" when the pool is admitted
	}{
		{name: "plain pool", pool: mkPool("p", "10.5.0.0/24")},
		{name: "terminating", pool: mkPool("p", "10.5.0.0/24", terminating()), reason: "terminating"},
		{name: "disabled", pool: mkPool("p", "10.5.0.0/24", disabled()), reason: "disabled (spec.disable is true)"},
		{name: "disable false", pool: mkPool("p", "10.5.0.0/24", func(p *v2beta1.SpiderIPPool) { p.Spec.Disable = ptrTo(false) })},
		{name: "wrong ipVersion", pool: mkPool("p", "10.5.0.0/24", ipVersion(6)), reason: "is an IPv6 pool, not IPv4"},
		{name: "family derived from subnet", pool: mkPool("p", "fd00:5::/64"), reason: "is an IPv6 pool, not IPv4"},
		{name: "family unknown", pool: mkPool("p", "bogus"), reason: "IP family unknown"},
		{name: "nodeName matches", pool: mkPool("p", "10.5.0.0/24", nodeName("node-0", "node-1"))},
		{name: "nodeName mismatch", pool: mkPool("p", "10.5.0.0/24", nodeName("node-2")), reason: `spec.nodeName [node-2] does not include the pod's node "node-1"`},
		{name: "nodeName wins over nodeAffinity", pool: mkPool("p", "10.5.0.0/24", nodeName("node-1"), nodeAffinity("zone", "z9"))},
		{name: "nodeAffinity matches", pool: mkPool("p", "10.5.0.0/24", nodeAffinity("zone", "z1"))},
		{name: "nodeAffinity mismatch", pool: mkPool("p", "10.5.0.0/24", nodeAffinity("zone", "z2")), reason: `spec.nodeAffinity "zone=z2" does not match the labels of node "node-1"`},
		{name: "nodeAffinity with unknown node", pool: mkPool("p", "10.5.0.0/24", nodeAffinity("zone", "z1")),
			setup: func(in *SelectionInput) { in.Node = nil }, reason: "the pod's node is unknown"},
		{name: "nodeName with unknown node uses the pod's", pool: mkPool("p", "10.5.0.0/24", nodeName("node-1")),
			setup: func(in *SelectionInput) { in.Node = nil }},
		{name: "namespaceName matches", pool: mkPool("p", "10.5.0.0/24", namespaceName("team-a"))},
		{name: "namespaceName mismatch", pool: mkPool("p", "10.5.0.0/24", namespaceName("team-b")), reason: `spec.namespaceName [team-b] does not include the pod's namespace "team-a"`},
		{name: "namespaceName wins over namespaceAffinity", pool: mkPool("p", "10.5.0.0/24", namespaceName("team-a"), namespaceAffinity("env", "dev"))},
		{name: "namespaceAffinity matches", pool: mkPool("p", "10.5.0.0/24", namespaceAffinity("env", "prod"))},
		{name: "namespaceAffinity mismatch", pool: mkPool("p", "10.5.0.0/24", namespaceAffinity("env", "dev")), reason: `spec.namespaceAffinity "env=dev" does not match the labels of namespace "team-a"`},
		{name: "podAffinity matches pod labels", pool: mkPool("p", "10.5.0.0/24", podAffinity("app", "web"))},
		{name: "podAffinity mismatch", pool: mkPool("p", "10.5.0.0/24", podAffinity("app", "db")), reason: `spec.podAffinity "app=db" does not match the labels of the pod (top controller: none)`},
		{name: "invalid podAffinity", pool: mkPool("p", "10.5.0.0/24", func(p *v2beta1.SpiderIPPool) {
			p.Spec.PodAffinity = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}}
		}), reason: "spec.podAffinity is invalid"},
		{name: "auto pool matches its top controller", pool: mkPool("p", "10.5.0.0/24", autoPool),
			setup: func(in *SelectionInput) { in.TopController = deployment }},
		{name: "auto pool refuses another controller", pool: mkPool("p", "10.5.0.0/24", autoPool),
			setup: func(in *SelectionInput) {
				in.TopController = TopController{APIVersion: "apps/v1", Kind: "StatefulSet", Namespace: "team-a", Name: "web"}
			},
			reason: "(top controller: StatefulSet team-a/web)"},
		{name: "pod labels cannot claim an auto pool", pool: mkPool("p", "10.5.0.0/24", autoPool),
			setup: func(in *SelectionInput) {
				for k, v := range affinityLabels(nil, deployment) {
					in.Pod.Labels[k] = v
				}
			}, reason: "does not match the labels of the pod"},
		{name: "core group controller", pool: mkPool("p", "10.5.0.0/24", podAffinity(LabelAppAPIGroup, "", LabelAppAPIVersion, "v1", LabelAppKind, "ReplicationController")),
			setup: func(in *SelectionInput) {
				in.TopController = TopController{APIVersion: "v1", Kind: "ReplicationController", Namespace: "team-a", Name: "rc"}
			}},
		{name: "multusName matches", pool: mkPool("p", "10.5.0.0/24", multusName("kube-system/macvlan", "kube-system/ipvlan")),
			setup: func(in *SelectionInput) { in.MultusNetwork = "kube-system/ipvlan" }},
		{name: "multusName without namespace is the pod's", pool: mkPool("p", "10.5.0.0/24", multusName("macvlan")),
			setup: func(in *SelectionInput) { in.MultusNetwork = "team-a/macvlan" }},
		{name: "multusName mismatch", pool: mkPool("p", "10.5.0.0/24", multusName("macvlan")),
			setup:  func(in *SelectionInput) { in.MultusNetwork = "kube-system/macvlan" },
			reason: `spec.multusName [macvlan] does not include "kube-system/macvlan", the Multus network of interface eth0`},
		{name: "multusName with unknown network", pool: mkPool("p", "10.5.0.0/24", multusName("kube-system/macvlan")),
			reason: "the Multus network of interface eth0 is unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := baseInput()
			in.Pools = append(in.Pools, tt.pool)
			in.Pod.Annotations[AnnoPodIPPool] = `{"ipv4":["p"]}`
			if tt.setup != nil {
				tt.setup(&in)
			}
			got, err := SelectPools(in)
			explainAgrees(t, in, got, err)
			if ex := ExplainSelection(in); len(ex.Families) != 1 || len(ex.Families[0].Decisions) != 1 ||
				ex.Families[0].Decisions[0].Pool != "p" || !strings.Contains(ex.Families[0].Decisions[0].Refusal, tt.reason) ||
				(tt.reason == "") != ex.Families[0].Decisions[0].Admitted() {
				t.Errorf("ExplainSelection decides %+v, want pool p refused for %q", ex.Families, tt.reason)
			}
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("pool refused: %v", err)
				}
				if !reflect.DeepEqual(got.IPv4, []string{"p"}) {
					t.Errorf("IPv4 = %v, want [p]", got.IPv4)
				}
				return
			}
			if !errors.Is(err, ErrPoolRefused) {
				t.Fatalf("error = %v, want ErrPoolRefused", err)
			}
			if want := `pool "p": `; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not give the reason %q", err, tt.reason)
			}
		})
	}
}

func TestSortByPriority(t *testing.T) {
	tests := []struct {
		name  string
		pools []v2beta1.SpiderIPPool // in the user's order
		want  []string
	}{
		{name: "each affinity in priority order", pools: []v2beta1.SpiderIPPool{
			mkPool("plain", "10.0.0.0/24"),
			mkPool("multus", "10.0.0.0/24", multusName("m")),
			mkPool("ns-aff", "10.0.0.0/24", namespaceAffinity("a", "b")),
			mkPool("ns-name", "10.0.0.0/24", namespaceName("team-a")),
			mkPool("node-aff", "10.0.0.0/24", nodeAffinity("a", "b")),
			mkPool("node-name", "10.0.0.0/24", nodeName("node-1")),
			mkPool("pod-aff", "10.0.0.0/24", podAffinity("a", "b")),
		}, want: []string{"pod-aff", "node-name", "node-aff", "ns-name", "ns-aff", "multus", "plain"}},
		{name: "ties keep the user's order", pools: []v2beta1.SpiderIPPool{
			mkPool("p3", "10.0.0.0/24"),
			mkPool("n2", "10.0.0.0/24", nodeName("x")),
			mkPool("p1", "10.0.0.0/24"),
			mkPool("n9", "10.0.0.0/24", nodeName("y")),
			mkPool("p2", "10.0.0.0/24"),
			mkPool("n1", "10.0.0.0/24", nodeName("z")),
		}, want: []string{"n2", "n9", "n1", "p3", "p1", "p2"}},
		{name: "combined affinities rank lexicographically", pools: []v2beta1.SpiderIPPool{
			mkPool("node+multus", "10.0.0.0/24", nodeName("x"), multusName("m")),
			mkPool("node+ns", "10.0.0.0/24", nodeName("x"), namespaceName("n")),
			mkPool("pod", "10.0.0.0/24", podAffinity("a", "b")),
			mkPool("node", "10.0.0.0/24", nodeName("x")),
		}, want: []string{"pod", "node+ns", "node+multus", "node"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := make([]*v2beta1.SpiderIPPool, len(tt.pools))
			for i := range tt.pools {
				ps[i] = &tt.pools[i]
			}
			sortByPriority(ps)
			var got []string
			for _, p := range ps {
				got = append(got, p.Name)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSelectPoolsSortsAdmitted checks that SelectPools sorts by priority after filtering.
func TestSelectPoolsSortsAdmitted(t *testing.T) {
	in := baseInput()
	in.Pools = append(in.Pools,
		mkPool("x-plain", "10.6.0.0/24"),
		mkPool("x-node", "10.6.1.0/24", nodeName("node-1")),
		mkPool("x-pod", "10.6.2.0/24", podAffinity("app", "web")),
		mkPool("x-other-node", "10.6.3.0/24", nodeName("node-2")),
	)
	in.Pod.Annotations[AnnoPodIPPool] = `{"ipv4":["x-*","v4-a"]}`
	got, err := SelectPools(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"x-pod", "x-node", "x-plain", "v4-a"}; !reflect.DeepEqual(got.IPv4, want) {
		t.Errorf("IPv4 = %v, want %v", got.IPv4, want)
	}
}

func TestMultusNetworkOf(t *testing.T) {
	tests := []struct {
		name           string
		annotations    map[string]string
		ifName         string
		clusterDefault string
		want           string
	}{
		{name: "eth0 from the cluster default", ifName: "eth0", clusterDefault: "kube-system/calico", want: "kube-system/calico"},
		{name: "eth0 cluster default without namespace", ifName: "eth0", clusterDefault: "calico", want: "kube-system/calico"},
		{name: "eth0 from the pod annotation", ifName: "eth0", clusterDefault: "kube-system/calico",
			annotations: map[string]string{AnnoMultusDefaultNetwork: "net-ns/macvlan"}, want: "net-ns/macvlan"},
		{name: "eth0 annotation without namespace uses the cluster default's", ifName: "eth0", clusterDefault: "multus-system/calico",
			annotations: map[string]string{AnnoMultusDefaultNetwork: "macvlan"}, want: "multus-system/macvlan"},
		{name: "eth0 unknown", ifName: "eth0", want: ""},
		{name: "eth0 cluster default is a file", ifName: "eth0", clusterDefault: "/etc/cni/net.d/10-calico.conflist", want: ""},
		{name: "net1 text form by position", ifName: "net1",
			annotations: map[string]string{AnnoMultusNetworks: "kube-system/macvlan, ipvlan"}, want: "kube-system/macvlan"},
		{name: "net2 text form, namespace from the pod", ifName: "net2",
			annotations: map[string]string{AnnoMultusNetworks: "kube-system/macvlan,ipvlan"}, want: "team-a/ipvlan"},
		{name: "text form with interface", ifName: "data0",
			annotations: map[string]string{AnnoMultusNetworks: "kube-system/macvlan@data0,ipvlan@data1"}, want: "kube-system/macvlan"},
		{name: "JSON form with interface", ifName: "data1",
			annotations: map[string]string{AnnoMultusNetworks: `[{"name":"macvlan","namespace":"kube-system","interface":"data0"},{"name":"sriov","interface":"data1"}]`}, want: "team-a/sriov"},
		{name: "JSON form by position", ifName: "net2",
			annotations: map[string]string{AnnoMultusNetworks: `[{"name":"a"},{"name":"b","namespace":"x"}]`}, want: "x/b"},
		{name: "no entry for the interface", ifName: "net3",
			annotations: map[string]string{AnnoMultusNetworks: "a,b"}, want: ""},
		{name: "malformed text", ifName: "net1",
			annotations: map[string]string{AnnoMultusNetworks: "a/b/c"}, want: ""},
		{name: "malformed JSON", ifName: "net1",
			annotations: map[string]string{AnnoMultusNetworks: `[{"name":`}, want: ""},
		{name: "no annotation", ifName: "net1", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web-0", Annotations: tt.annotations}}
			if got := MultusNetworkOf(pod, tt.ifName, tt.clusterDefault); got != tt.want {
				t.Errorf("MultusNetworkOf(%q) = %q, want %q", tt.ifName, got, tt.want)
			}
		})
	}
}

func TestAffinityLabels(t *testing.T) {
	tests := []struct {
		name string
		pod  map[string]string
		top  TopController
		want map[string]string
	}{
		{name: "bare pod keeps its labels, drops claimed ones", pod: map[string]string{"app": "web", LabelAppName: "other"},
			want: map[string]string{"app": "web"}},
		{name: "deployment", pod: map[string]string{"app": "web"},
			top:  TopController{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "ns", Name: "web"},
			want: map[string]string{"app": "web", LabelAppAPIGroup: "apps", LabelAppAPIVersion: "v1", LabelAppKind: "Deployment", LabelAppNamespace: "ns", LabelAppName: "web"}},
		{name: "core group", top: TopController{APIVersion: "v1", Kind: "ReplicationController", Namespace: "ns", Name: "rc"},
			want: map[string]string{LabelAppAPIGroup: "", LabelAppAPIVersion: "v1", LabelAppKind: "ReplicationController", LabelAppNamespace: "ns", LabelAppName: "rc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]string(affinityLabels(tt.pod, tt.top))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// explainAgrees checks that ExplainSelection tells what SelectPools did: the same
// selection or error, and as candidates of each family the pools selected.
func explainAgrees(t *testing.T, in SelectionInput, sel Selection, err error) {
	t.Helper()
	ex := ExplainSelection(in)
	if (err == nil) != (ex.Err == nil) || err != nil && err.Error() != ex.Err.Error() {
		t.Errorf("ExplainSelection error %v, SelectPools error %v", ex.Err, err)
	}
	if !reflect.DeepEqual(ex.Selection, sel) {
		t.Errorf("ExplainSelection selects %+v, SelectPools %+v", ex.Selection, sel)
	}
	if err != nil {
		return
	}
	if ex.Source != sel.Source || ex.Auto != sel.Auto {
		t.Errorf("ExplainSelection source %q auto %t, SelectPools %q %t", ex.Source, ex.Auto, sel.Source, sel.Auto)
	}
	for _, f := range ex.Families {
		want := sel.IPv4
		if f.Family == v2beta1.IPv6 {
			want = sel.IPv6
		}
		if got := f.Candidates(); !f.NotServed && !reflect.DeepEqual(got, want) {
			t.Errorf("ExplainSelection IPv%d candidates %v, SelectPools %v", f.Family, got, want)
		}
	}
}

// TestPodInterfaces lists the interfaces a pod's annotations name.
func TestPodInterfaces(t *testing.T) {
	for _, tt := range []struct {
		name        string
		annotations map[string]string
		want        []string
	}{
		{name: "none", want: []string{"eth0"}},
		{name: "ippools", annotations: map[string]string{AnnoPodIPPools: `[{"interface":"eth0","ipv4":["a"]},{"interface":"net2","ipv4":["b"]}]`},
			want: []string{"eth0", "net2"}},
		{name: "ippool for another interface", annotations: map[string]string{AnnoPodIPPool: `{"interface":"net1","ipv4":["a"]}`},
			want: []string{"eth0", "net1"}},
		{name: "subnets", annotations: map[string]string{AnnoPodSubnets: `[{"interface":"eth0","ipv4":["s"]},{"interface":"net1","ipv4":["t"]}]`},
			want: []string{"eth0", "net1"}},
		{name: "multus networks", annotations: map[string]string{AnnoMultusNetworks: "macvlan, kube-system/ipvlan@data0"},
			want: []string{"eth0", "net1", "data0"}},
		{name: "malformed adds nothing", annotations: map[string]string{AnnoPodIPPools: `{`, AnnoMultusNetworks: "a@"},
			want: []string{"eth0"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", Annotations: tt.annotations}}
			if got := PodInterfaces(pod); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTopControllerOf names the controller auto pools match, a CronJob's through its Job.
func TestTopControllerOf(t *testing.T) {
	ctrl := func(apiVersion, kind, name string) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, Controller: ptrTo(true)}}
	}
	pod := func(owners []metav1.OwnerReference, labels, annotations map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", OwnerReferences: owners, Labels: labels, Annotations: annotations}}
	}
	subnet := map[string]string{AnnoPodSubnet: `{"ipv4":["s"]}`}
	cronJob := &metav1.OwnerReference{APIVersion: "batch/v1", Kind: "CronJob", Name: "nightly"}
	for _, tt := range []struct {
		name     string
		pod      *corev1.Pod
		jobOwner *metav1.OwnerReference
		needsJob bool
		want     string
	}{
		{name: "bare pod", pod: pod(nil, nil, nil), want: "none"},
		{name: "Deployment's ReplicaSet", pod: pod(ctrl("apps/v1", "ReplicaSet", "web-5d4f8"), map[string]string{"pod-template-hash": "5d4f8"}, nil),
			want: "Deployment ns/web"},
		{name: "ReplicaSet of its own", pod: pod(ctrl("apps/v1", "ReplicaSet", "web-5d4f8"), nil, nil), want: "ReplicaSet ns/web-5d4f8"},
		{name: "StatefulSet", pod: pod(ctrl("apps/v1", "StatefulSet", "db"), nil, nil), want: "StatefulSet ns/db"},
		{name: "Job without auto pool", pod: pod(ctrl("batch/v1", "Job", "j"), nil, nil), jobOwner: cronJob, want: "Job ns/j"},
		{name: "CronJob's Job with auto pool", pod: pod(ctrl("batch/v1", "Job", "nightly-1"), nil, subnet), jobOwner: cronJob, needsJob: true,
			want: "CronJob ns/nightly"},
		{name: "Job of its own with auto pool", pod: pod(ctrl("batch/v1", "Job", "j"), nil, subnet), needsJob: true, want: "Job ns/j"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			top := TopControllerOf(tt.pod)
			if got := NeedsJobController(tt.pod, top); got != tt.needsJob {
				t.Errorf("NeedsJobController %t, want %t", got, tt.needsJob)
			}
			if NeedsJobController(tt.pod, top) {
				top = AutoPoolTopController(top, tt.jobOwner)
			}
			if top.String() != tt.want {
				t.Errorf("top controller %s, want %s", top, tt.want)
			}
		})
	}
}
