package inspect

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// whyPool is an IPv4 pool of 10.20.0.0/24, changed by the options.
func whyPool(name string, change ...func(*v2beta1.SpiderIPPool)) *v2beta1.SpiderIPPool {
	sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: "10.20.0.0/24", IPs: []v2beta1.IPOrRange{"10.20.0.10-10.20.0.20"}}}
	for _, c := range change {
		c(sp)
	}
	return sp
}

func ready(status metav1.ConditionStatus, reason, msg string) func(*v2beta1.SpiderIPPool) {
	return func(sp *v2beta1.SpiderIPPool) {
		sp.Status.Conditions = append(sp.Status.Conditions, metav1.Condition{Type: v2beta1.IPPoolReadyCondition, Status: status, Reason: reason, Message: msg})
	}
}

func freeCount(n int64) func(*v2beta1.SpiderIPPool) {
	return func(sp *v2beta1.SpiderIPPool) {
		if sp.Status.Orbweaver == nil {
			sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{}
		}
		sp.Status.Orbweaver.FreeIPCount = ptr.To(n)
	}
}

func ipv6(sp *v2beta1.SpiderIPPool) {
	sp.Spec.IPVersion, sp.Spec.Subnet, sp.Spec.IPs = ptr.To(v2beta1.IPv6), "fd00:20::/64", []v2beta1.IPOrRange{"fd00:20::10-fd00:20::20"}
}

func terminating(sp *v2beta1.SpiderIPPool) {
	sp.DeletionTimestamp = ptr.To(metav1.Now())
	sp.Finalizers = []string{"orbweaver.io/pool"}
}

// TestWhy is `pool why` through a fake client: the pod, its namespace, node and pools
// are read, the agent's selection decides, and each pool gets its verdict.
func TestWhy(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{"team": "a"}}}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"zone": "east"}}}
	podWith := func(annotations map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web", UID: "u-web", Annotations: annotations,
			Labels: map[string]string{"app": "web"}}, Spec: corev1.PodSpec{NodeName: "n1"}}
	}
	ippool := func(pools ...string) map[string]string {
		return map[string]string{ipam.AnnoPodIPPool: fmt.Sprintf(`{"ipv4":["%s"]}`, strings.Join(pools, `","`))}
	}
	opts := WhyOptions{Namespace: "team-a", Pod: "web", EnableIPv4: true, EnableIPv6: true}

	type want struct{ pool, verdict, reason string }
	for _, tc := range []struct {
		name  string
		pod   *corev1.Pod
		pools []*v2beta1.SpiderIPPool
		opts  func(*WhyOptions)
		rule  string // substring of eth0's rule
		want  []want // eth0's pools in order; reason is a substring
		err   string // substring of eth0's error
		taken bool
		notes []string // substrings of eth0's notes or the assumptions
	}{
		{
			name: "taken, the next one a fallback", pod: podWith(ippool("a", "b")),
			pools: []*v2beta1.SpiderIPPool{whyPool("a", ready(metav1.ConditionTrue, "Serving", "")), whyPool("b")},
			rule:  "pod annotation ipam.spidernet.io/ippool", taken: true,
			want: []want{{"a", VerdictTaken, "the first candidate: the agent allocates from it"}, {"b", VerdictFallback, "before it are full"}},
		},
		{
			name: "refused by node affinity", pod: podWith(ippool("west", "any")),
			pools: []*v2beta1.SpiderIPPool{
				whyPool("west", func(sp *v2beta1.SpiderIPPool) {
					sp.Spec.NodeAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"zone": "west"}}
				}),
				whyPool("any")},
			taken: true,
			want:  []want{{"any", VerdictTaken, ""}, {"west", VerdictRefused, `spec.nodeAffinity "zone=west" does not match the labels of node "n1"`}},
		},
		{
			name: "refused by nodeName", pod: podWith(ippool("pinned")),
			pools: []*v2beta1.SpiderIPPool{whyPool("pinned", func(sp *v2beta1.SpiderIPPool) { sp.Spec.NodeName = []string{"n2"} })},
			want:  []want{{"pinned", VerdictRefused, `spec.nodeName [n2] does not include the pod's node "n1"`}},
			err:   "every IPv4 pool named by pod annotation ipam.spidernet.io/ippool refuses",
		},
		{
			name: "refused by namespace affinity", pod: podWith(ippool("team-b")),
			pools: []*v2beta1.SpiderIPPool{whyPool("team-b", func(sp *v2beta1.SpiderIPPool) {
				sp.Spec.NamespaceAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "b"}}
			})},
			want: []want{{"team-b", VerdictRefused, `spec.namespaceAffinity "team=b" does not match the labels of namespace "team-a"`}},
			err:  "refuses",
		},
		{
			name: "refused by ipVersion", pod: podWith(ippool("v6", "v4")),
			pools: []*v2beta1.SpiderIPPool{whyPool("v6", ipv6), whyPool("v4")},
			taken: true,
			want:  []want{{"v4", VerdictTaken, ""}, {"v6", VerdictRefused, "is an IPv6 pool, not IPv4"}},
		},
		{
			name: "full pool passed over", pod: podWith(ippool("full", "roomy")),
			pools: []*v2beta1.SpiderIPPool{whyPool("full", freeCount(0)), whyPool("roomy", freeCount(5))},
			taken: true,
			want: []want{{"full", VerdictFull, "freeIPCount is 0: the agent passes over it"},
				{"roomy", VerdictTaken, "5 addresses free"}},
		},
		{
			name: "every candidate full", pod: podWith(ippool("full")),
			pools: []*v2beta1.SpiderIPPool{whyPool("full", func(sp *v2beta1.SpiderIPPool) {
				sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Conditions: []metav1.Condition{
					{Type: v2beta1.IPPoolExhaustedCondition, Status: metav1.ConditionTrue, Reason: "NoFreeAddress", Message: "11 of 11 held"}}}
			})},
			want: []want{{"full", VerdictFull, "Exhausted (11 of 11 held)"}},
		},
		{
			name: "not Ready", pod: podWith(ippool("corrupt", "ok")),
			pools: []*v2beta1.SpiderIPPool{whyPool("corrupt", ready(metav1.ConditionFalse, "RecordsCorrupt", "records do not decode")), whyPool("ok")},
			want: []want{{"corrupt", VerdictNotReady, "RecordsCorrupt: records do not decode"},
				{"ok", VerdictFallback, ""}},
		},
		{
			name: "terminating", pod: podWith(ippool("going", "staying")),
			pools: []*v2beta1.SpiderIPPool{whyPool("going", terminating, ready(metav1.ConditionFalse, "Deleting", "")), whyPool("staying")},
			taken: true,
			want:  []want{{"staying", VerdictTaken, ""}, {"going", VerdictRefused, "terminating"}},
		},
		{
			name: "disabled", pod: podWith(ippool("off")),
			pools: []*v2beta1.SpiderIPPool{whyPool("off", func(sp *v2beta1.SpiderIPPool) { sp.Spec.Disable = ptr.To(true) })},
			want:  []want{{"off", VerdictRefused, "disabled"}},
			err:   "refuses",
		},
		{
			name: "unknown pool", pod: podWith(ippool("nope")),
			err: `pool "nope" does not exist`,
		},
		{
			name: "namespace default pools", pod: podWith(nil),
			pools: []*v2beta1.SpiderIPPool{whyPool("ns-default"), whyPool("cluster-default", func(sp *v2beta1.SpiderIPPool) { sp.Spec.Default = ptr.To(true) })},
			opts: func(o *WhyOptions) {
				o.Namespace = "team-n"
			},
			rule: "namespace team-n annotation ipam.spidernet.io/default-ipv4-ippool", taken: true,
			want: []want{{"ns-default", VerdictTaken, ""}},
		},
		{
			name: "CNI config defaults given", pod: podWith(nil),
			pools: []*v2beta1.SpiderIPPool{whyPool("cni-a"), whyPool("cni-b6", ipv6)},
			opts: func(o *WhyOptions) {
				o.CNIDefaultIPv4, o.CNIDefaultIPv6, o.CNIDefaultsGiven = []string{"cni-a"}, []string{"cni-b6"}, true
			},
			rule: "CNI config", taken: true,
			want:  []want{{"cni-a", VerdictTaken, ""}, {"cni-b6", VerdictTaken, ""}},
			notes: []string{"as given by --default-ipv4-ippool"},
		},
		{
			name: "CNI config defaults unknown: cluster defaults", pod: podWith(nil),
			pools: []*v2beta1.SpiderIPPool{whyPool("cluster-default", func(sp *v2beta1.SpiderIPPool) { sp.Spec.Default = ptr.To(true) })},
			rule:  "spec.default: true", taken: true,
			want:  []want{{"cluster-default", VerdictTaken, ""}},
			notes: []string{"default_ipv4_ippool/default_ipv6_ippool are unknown"},
		},
		{
			name:  "IPv6 not served",
			pod:   podWith(map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["a"],"ipv6":["b6"]}`}),
			pools: []*v2beta1.SpiderIPPool{whyPool("a"), whyPool("b6", ipv6)},
			opts:  func(o *WhyOptions) { o.EnableIPv6 = false },
			taken: true,
			want:  []want{{"a", VerdictTaken, ""}},
			notes: []string{"the agents do not serve IPv6"},
		},
		{
			name: "multus network", pod: podWith(ippool("macvlan-only", "any")),
			pools: []*v2beta1.SpiderIPPool{whyPool("macvlan-only", func(sp *v2beta1.SpiderIPPool) { sp.Spec.MultusName = []string{"kube-system/macvlan"} }), whyPool("any")},
			opts:  func(o *WhyOptions) { o.MultusClusterNetwork = "kube-system/calico" },
			taken: true,
			want: []want{{"any", VerdictTaken, ""},
				{"macvlan-only", VerdictRefused, `does not include "kube-system/calico", the Multus network of interface eth0`}},
			notes: []string{`Multus's cluster network is "kube-system/calico"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts
			if tc.opts != nil {
				tc.opts(&o)
			}
			pod := tc.pod.DeepCopy()
			pod.Namespace = o.Namespace
			objs := []client.Object{pod, ns.DeepCopy(), node.DeepCopy(),
				&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-n", Annotations: map[string]string{ipam.AnnoNamespaceDefaultIPv4Pool: `["ns-default"]`}}}}
			for _, sp := range tc.pools {
				objs = append(objs, sp.DeepCopy())
			}
			c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).Build()
			got, err := Why(context.Background(), c, o)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Interfaces) != 1 || got.Interfaces[0].Interface != "eth0" {
				t.Fatalf("interfaces %+v, want eth0 alone", got.Interfaces)
			}
			w := got.Interfaces[0]
			if !strings.Contains(w.Rule, tc.rule) {
				t.Errorf("rule %q, want it to contain %q", w.Rule, tc.rule)
			}
			if tc.err == "" && w.Error != "" || !strings.Contains(w.Error, tc.err) {
				t.Errorf("error %q, want %q", w.Error, tc.err)
			}
			if w.Taken() != tc.taken {
				t.Errorf("taken %t, want %t", w.Taken(), tc.taken)
			}
			var pools []string
			for _, p := range w.Pools {
				pools = append(pools, p.Pool)
			}
			if len(w.Pools) != len(tc.want) {
				t.Fatalf("pools %v, want %d: %+v", pools, len(tc.want), w.Pools)
			}
			for i, wp := range tc.want {
				p := w.Pools[i]
				if p.Pool != wp.pool || p.Verdict != wp.verdict || !strings.Contains(p.Reason, wp.reason) {
					t.Errorf("pool %d: %s %s %q, want %s %s %q", i, p.Pool, p.Verdict, p.Reason, wp.pool, wp.verdict, wp.reason)
				}
			}
			all := append(slices.Clone(got.Assumptions), w.Notes...)
			for _, n := range tc.notes {
				if !slices.ContainsFunc(all, func(s string) bool { return strings.Contains(s, n) }) {
					t.Errorf("notes %q lack %q", all, n)
				}
			}
		})
	}
}

// TestWhyReadsWhatTheAgentReads: the pod's other interfaces, its endpoint's addresses,
// a CronJob's auto pool through the Job, the Ready column, and a pod that does not
// exist.
func TestWhyReadsWhatTheAgentReads(t *testing.T) {
	ctx := context.Background()
	opts := WhyOptions{Namespace: "team-a", EnableIPv4: true, EnableIPv6: true}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}

	t.Run("interfaces and holds", func(t *testing.T) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "two", Annotations: map[string]string{
			ipam.AnnoPodIPPools:     `[{"interface":"eth0","ipv4":["a"]},{"interface":"net1","ipv4":["b"]}]`,
			ipam.AnnoMultusNetworks: "kube-system/macvlan@net1, kube-system/sriov",
		}}}
		se := &v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "two"}}
		se.Status.Current.IPs = []v2beta1.IPAllocationDetail{{NIC: "net1", IPv4: ptr.To("10.20.0.11/24"), IPv4Pool: ptr.To("b")}}
		c := fake.NewClientBuilder().WithScheme(testScheme(t)).
			WithObjects(pod, ns, se, whyPool("a", ready(metav1.ConditionTrue, "Serving", "")), whyPool("b")).Build()
		o := opts
		o.Pod = "two"
		got, err := Why(ctx, c, o)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, w := range got.Interfaces {
			names = append(names, w.Interface)
		}
		if !slices.Equal(names, []string{"eth0", "net1", "net2"}) {
			t.Fatalf("interfaces %v, want eth0 net1 net2", names)
		}
		eth0, net1, net2 := got.Interfaces[0], got.Interfaces[1], got.Interfaces[2]
		if eth0.Pools[0].Pool != "a" || eth0.Pools[0].Ready != "True" || net1.Pools[0].Pool != "b" || net1.MultusNetwork != "kube-system/macvlan" {
			t.Errorf("eth0 %+v, net1 %+v", eth0, net1)
		}
		if !slices.Equal(net1.Holds, []string{"10.20.0.11/24 from pool b"}) || len(eth0.Holds) != 0 {
			t.Errorf("holds: eth0 %v, net1 %v", eth0.Holds, net1.Holds)
		}
		// ippools names no item for net2: the agent fails its ADD.
		if !strings.Contains(net2.Error, "add an item for interface net2") || net2.Taken() {
			t.Errorf("net2: %+v", net2)
		}
	})

	t.Run("a CronJob's auto pool", func(t *testing.T) {
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "nightly-123", UID: "u-job",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: "nightly", UID: "u-cj", Controller: ptr.To(true)}}}}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "nightly-123-x",
			Annotations:     map[string]string{ipam.AnnoPodSubnet: `{"ipv4":["sub"]}`},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "nightly-123", UID: "u-job", Controller: ptr.To(true)}}}}
		app := ipam.TopController{APIVersion: "batch/v1", Kind: "CronJob", Namespace: "team-a", Name: "nightly"}
		auto := whyPool("auto-nightly", func(sp *v2beta1.SpiderIPPool) {
			sp.Spec.PodAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{
				ipam.LabelAppAPIGroup: "batch", ipam.LabelAppAPIVersion: "v1", ipam.LabelAppKind: app.Kind,
				ipam.LabelAppNamespace: app.Namespace, ipam.LabelAppName: app.Name}}
		})
		auto.Labels = ipam.AutoPoolLabels(ipam.Application{APIVersion: app.APIVersion, Kind: app.Kind, Namespace: app.Namespace, Name: app.Name, UID: "u-cj"},
			"sub", "eth0", v2beta1.IPv4, true)
		c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(pod, ns, job, auto).Build()
		o := opts
		o.Pod = pod.Name
		got, err := Why(ctx, c, o)
		if err != nil {
			t.Fatal(err)
		}
		w := got.Interfaces[0]
		if got.TopController != "CronJob team-a/nightly" || !w.Taken() || w.Pools[0].Pool != "auto-nightly" {
			t.Errorf("top %q, eth0 %+v", got.TopController, w)
		}
	})

	t.Run("no such pod", func(t *testing.T) {
		c := fake.NewClientBuilder().WithScheme(testScheme(t)).Build()
		o := opts
		o.Pod = "ghost"
		if _, err := Why(ctx, c, o); !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), "team-a/ghost") {
			t.Errorf("error %v, want NotFound naming the pod", err)
		}
	})
}
