package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// newOwnedPod creates a pod bound to node whose controller is owner (no controller
// runs: the test plays the StatefulSet or ReplicaSet controller).
func newOwnedPod(t *testing.T, e *testenv.Env, ns, name, node string, owner metav1.OwnerReference, labels, annotations map[string]string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: annotations, OwnerReferences: []metav1.OwnerReference{owner}},
		Spec: corev1.PodSpec{
			NodeName:                     node,
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}},
		},
	}
	if err := e.Client.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

// forceDelete deletes a pod at once, as `kubectl delete --force --grace-period=0`, and
// waits until it is gone.
func forceDelete(t *testing.T, e *testenv.Env, pod *corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	if err := e.Client.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "pod "+pod.Name+" gone", func() (bool, error) {
		err := e.Client.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
		return apierrors.IsNotFound(err), nil
	})
}

// holderOf returns who the pool records as the holder of addr.
func holderOf(ctx context.Context, t *testing.T, e *testenv.Env, pool, addr string) (records.Owner, bool) {
	t.Helper()
	sp := &v2beta1.SpiderIPPool{}
	if err := e.Client.Get(ctx, types.NamespacedName{Name: pool}, sp); err != nil {
		t.Fatal(err)
	}
	p, err := ipam.NewPool(sp, ip.Set{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Holder(netip.MustParseAddr(addr))
}

// TestAgentStatefulSetFixedIP: a StatefulSet's pod keeps its exact address when it is
// deleted and re-created (20 times), when its sandbox is torn down (CNI DEL keeps it),
// when it comes back on another node, and loses it only when its pool annotation names
// another pool.
func TestAgentStatefulSetFixedIP(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	on := func(c *Config) { c.StatefulSetFixedIPs = true }
	a1, a2 := startAgent(t, e, on), startAgent(t, e, on)
	ns := newNamespace(t, e, nil)
	newPool(t, e, "sts-a", "10.71.0.0/24", nil, "10.71.0.10-10.71.0.40")
	newPool(t, e, "sts-b", "10.72.0.0/24", nil, "10.72.0.10-10.72.0.40")
	waitForPools(t, a1)
	waitForPools(t, a2)

	sts := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "sts-uid-1", Controller: ptr.To(true)}
	onPoolA := map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["sts-a"]}`, ipam.AnnoReclaimPolicy: "10m"}
	// Other pods take addresses in between, so a freed address would not come back by
	// chance as the lowest free one.
	var fillers int
	filler := func(agent *testAgent) {
		fillers++
		p := newPod(t, e, ns, fmt.Sprintf("filler-%d", fillers), agent.node, map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["sts-a"]}`})
		if _, err := agent.add(ctx, attachment{pod: p, containerID: fmt.Sprintf("fill-%d", fillers), ifName: "eth0"}); err != nil {
			t.Fatal(err)
		}
	}

	pod := newOwnedPod(t, e, ns, "db-0", a1.node, sts, nil, onPoolA)
	res, err := a1.add(ctx, attachment{pod: pod, containerID: "ctr-0", ifName: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	want := *res.Ips[0].Address
	se, err := getEndpoint(ctx, e, pod)
	if err != nil {
		t.Fatal(err)
	}
	if len(se.OwnerReferences) != 0 || se.Status.OwnerControllerType != "StatefulSet" || se.Annotations[ipam.AnnoReclaimPolicy] != "10m" {
		t.Fatalf("StatefulSet endpoint: ownerRefs %v, owner type %q, annotations %v; want no ownerRef, StatefulSet, the reclaim policy", se.OwnerReferences, se.Status.OwnerControllerType, se.Annotations)
	}

	const rounds = 20
	agent, ctr := a1, "ctr-0"
	for i := 1; i <= rounds; i++ {
		// The runtime tears the sandbox down; the addresses stay with the pod.
		if err := agent.del(ctx, attachment{pod: pod, containerID: ctr, ifName: "eth0"}); err != nil {
			t.Fatal(err)
		}
		if _, held := holderOf(ctx, t, e, "sts-a", want[:len(want)-3]); !held {
			t.Fatalf("round %d: CNI DEL of a StatefulSet pod released %s", i, want)
		}
		forceDelete(t, e, pod)
		filler(agent)
		if i == rounds/2 {
			agent = a2 // rescheduled on another node
		}
		pod = newOwnedPod(t, e, ns, "db-0", agent.node, sts, nil, onPoolA)
		ctr = fmt.Sprintf("ctr-%d", i)
		res, err := agent.add(ctx, attachment{pod: pod, containerID: ctr, ifName: "eth0"})
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if got := *res.Ips[0].Address; got != want {
			t.Fatalf("round %d (node %s): the re-created pod got %s, want its address %s", i, agent.node, got, want)
		}
		owner, held := holderOf(ctx, t, e, "sts-a", want[:len(want)-3])
		if !held || owner != records.OwnerOf(string(pod.UID), ctr, "eth0") {
			t.Fatalf("round %d: the pool records %v (held %v) for %s, want the new pod's owner", i, owner, held, want)
		}
	}
	if se, err = getEndpoint(ctx, e, pod); err != nil || se.Status.Current.UID != string(pod.UID) || se.Status.Current.Node != agent.node {
		t.Fatalf("endpoint after the moves: %+v, %v; want the last pod's UID on %s", se.Status.Current, err, agent.node)
	}

	// The pool annotation changes: the pod moves to the new pool, the old address goes.
	forceDelete(t, e, pod)
	pod = newOwnedPod(t, e, ns, "db-0", agent.node, sts, nil, map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["sts-b"]}`})
	res, err = agent.add(ctx, attachment{pod: pod, containerID: "ctr-b", ifName: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	if got := *res.Ips[0].Address; got == want || *res.Ips[0].Pool != "sts-b" {
		t.Fatalf("after the pool annotation changed the pod got %s from %s, want an address of sts-b", got, *res.Ips[0].Pool)
	}
	if owner, held := holderOf(ctx, t, e, "sts-a", want[:len(want)-3]); held {
		t.Fatalf("the old address %s is still held (by %v) after the pod moved to another pool", want, owner)
	}
}

// TestAgentStatefulSetKeptIPNotServed: a StatefulSet pod whose kept address is of a pool
// that serves only its first node is re-created on a node the pool does not serve,
// where another pool its annotation names would serve it: the ADD is refused with
// KeptIPNotServed and a Warning naming the pool and what to do, rather than giving it
// another address, and the address stays with the pod; back on a node the pool serves,
// it gets its address.
func TestAgentStatefulSetKeptIPNotServed(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	on := func(c *Config) { c.StatefulSetFixedIPs = true }
	a1, a2 := startAgent(t, e, on), startAgent(t, e, on)
	ns := newNamespace(t, e, nil)
	newPool(t, e, "sts-n1", "10.74.0.0/24", func(sp *v2beta1.SpiderIPPool) { sp.Spec.NodeName = []string{a1.node} }, "10.74.0.10-10.74.0.20")
	newPool(t, e, "sts-n2", "10.75.0.0/24", func(sp *v2beta1.SpiderIPPool) { sp.Spec.NodeName = []string{a2.node} }, "10.75.0.10-10.75.0.20")
	waitForPools(t, a1)
	waitForPools(t, a2)
	sts := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "sts-uid-3", Controller: ptr.To(true)}
	onPool := map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["sts-n1","sts-n2"]}`}

	pod := newOwnedPod(t, e, ns, "db-0", a1.node, sts, nil, onPool)
	res, err := a1.add(ctx, attachment{pod: pod, containerID: "c0", ifName: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	want := *res.Ips[0].Address
	addr := want[:len(want)-3]
	if err := a1.del(ctx, attachment{pod: pod, containerID: "c0", ifName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	forceDelete(t, e, pod)

	pod = newOwnedPod(t, e, ns, "db-0", a2.node, sts, nil, onPool)
	_, err = a2.add(ctx, attachment{pod: pod, containerID: "c1", ifName: "eth0"})
	var ae *agentError
	if !errors.As(err, &ae) || ae.model.Reason != ReasonKeptIPNotServed || !strings.Contains(err.Error(), addr) ||
		!strings.Contains(err.Error(), "sts-n1") || !strings.Contains(err.Error(), "delete SpiderEndpoint") {
		t.Fatalf("ADD on a node the kept pool does not serve: %v, want %s naming %s, the pool and what to do", err, ReasonKeptIPNotServed, addr)
	}
	if owner, held := holderOf(ctx, t, e, "sts-n1", addr); !held || owner.Pod != records.PodKey(string(pod.UID)) {
		t.Fatalf("%s: held %t by %v after the refused ADD; want it kept for the pod", addr, held, owner)
	}
	if se, err := getEndpoint(ctx, e, pod); err != nil || len(se.Status.Current.IPs) != 1 ||
		ptr.Deref(se.Status.Current.IPs[0].IPv4, "") != want || ptr.Deref(se.Status.Current.IPs[0].IPv4Pool, "") != "sts-n1" {
		t.Fatalf("endpoint after the refused ADD: %+v, %v; want only %s of sts-n1", se.Status.Current.IPs, err, want)
	}
	testenv.WaitFor(t, "a Warning on the pod", func() (bool, error) {
		ws, err := podWarnings(ctx, e, pod)
		return slices.ContainsFunc(ws, func(w string) bool {
			return strings.Contains(w, ReasonKeptIPNotServed+": ") && strings.Contains(w, "sts-n1")
		}), err
	})

	// Back on a node the pool serves: the pod gets its address.
	forceDelete(t, e, pod)
	pod = newOwnedPod(t, e, ns, "db-0", a1.node, sts, nil, onPool)
	res, err = a1.add(ctx, attachment{pod: pod, containerID: "c2", ifName: "eth0"})
	if err != nil || *res.Ips[0].Address != want {
		t.Fatalf("back on %s: %v, %v; want %s", a1.node, res, err, want)
	}
}

// TestAgentStatefulSetFixedIPOptIn: with --statefulset-fixed-ip-opt-in, a StatefulSet
// pod with Kingsoft KCE's k8s.ksyun.com/pod-ip-fixed "true" (seed 002's manifest) keeps
// its address across re-creation, one without it is like any pod (its endpoint is the
// pod's, DEL releases), and a value other than true/false is refused as BadAnnotation.
// Without the opt-in, orbweaver.io/fixed-ip "false" opts a StatefulSet out.
func TestAgentStatefulSetFixedIPOptIn(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	optIn := startAgent(t, e, func(c *Config) { c.StatefulSetFixedIPs, c.StatefulSetFixedIPOptIn, c.ReserveSize = true, true, -1 })
	byDefault := startAgent(t, e, func(c *Config) { c.StatefulSetFixedIPs, c.ReserveSize = true, -1 })
	ns := newNamespace(t, e, nil)
	newPool(t, e, "sts-opt", "10.76.0.0/24", nil, "10.76.0.10-10.76.0.40")
	waitForPools(t, optIn)
	waitForPools(t, byDefault)
	sts := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "sts-uid-4", Controller: ptr.To(true)}
	annotated := func(extra map[string]string) map[string]string {
		m := map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["sts-opt"]}`}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	// run ADDs and DELs the pod and reports its address, whether its endpoint is the
	// pod's and whether DEL kept the address.
	run := func(a *testAgent, name string, ann map[string]string) (addr string, ownedByPod, kept bool) {
		t.Helper()
		pod := newOwnedPod(t, e, ns, name, a.node, sts, nil, ann)
		att := attachment{pod: pod, containerID: "c-" + name, ifName: "eth0"}
		res, err := a.add(ctx, att)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		addr = *res.Ips[0].Address
		se, err := getEndpoint(ctx, e, pod)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.del(ctx, att); err != nil {
			t.Fatal(err)
		}
		_, kept = holderOf(ctx, t, e, "sts-opt", addr[:len(addr)-3])
		return addr, len(se.OwnerReferences) == 1, kept
	}
	for _, tc := range []struct {
		name       string
		agent      *testAgent
		ann        map[string]string
		wantKept   bool
		wantOwnPod bool
	}{
		{"kce-0", optIn, annotated(map[string]string{ipam.AnnoKCEPodIPFixed: "true"}), true, false},
		{"plain-0", optIn, annotated(nil), false, true},
		{"ours-0", optIn, annotated(map[string]string{ipam.AnnoFixedIP: "true"}), true, false},
		{"default-0", byDefault, annotated(nil), true, false},
		{"optout-0", byDefault, annotated(map[string]string{ipam.AnnoFixedIP: "false"}), false, true},
	} {
		_, ownedByPod, kept := run(tc.agent, tc.name, tc.ann)
		if kept != tc.wantKept || ownedByPod != tc.wantOwnPod {
			t.Errorf("%s: DEL kept the address %t, endpoint owned by the pod %t; want %t, %t", tc.name, kept, ownedByPod, tc.wantKept, tc.wantOwnPod)
		}
	}

	bad := newOwnedPod(t, e, ns, "bad-0", optIn.node, sts, nil, annotated(map[string]string{ipam.AnnoKCEPodIPFixed: "yes"}))
	_, err := optIn.add(ctx, attachment{pod: bad, containerID: "c-bad", ifName: "eth0"})
	var ae *agentError
	if !errors.As(err, &ae) || ae.model.Reason != ReasonBadAnnotation || !strings.Contains(err.Error(), ipam.AnnoKCEPodIPFixed) {
		t.Fatalf("ADD with %s: yes: %v, want BadAnnotation naming the key", ipam.AnnoKCEPodIPFixed, err)
	}
	// A pod of no StatefulSet: the annotation means nothing there and is not read.
	plain := newPod(t, e, ns, "not-a-set", optIn.node, annotated(map[string]string{ipam.AnnoKCEPodIPFixed: "yes"}))
	if _, err := optIn.add(ctx, attachment{pod: plain, containerID: "c-plain", ifName: "eth0"}); err != nil {
		t.Fatalf("ADD of a pod of no StatefulSet with %s: yes: %v", ipam.AnnoKCEPodIPFixed, err)
	}
}

// TestAgentAddedStatefulKind: with OpenKruise's Advanced StatefulSet added
// (--stateful-workload-kinds), its pod keeps its address as a StatefulSet's does: the
// endpoint is kept (no owner, the kind's group recorded), DEL keeps the address, and the
// pod re-created gets it again. Without the flag the same pod is like any other. An
// apps StatefulSet of the same name is another controller: its new pod does not take
// the kept endpoint's address as its predecessor's.
func TestAgentAddedStatefulKind(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	kinds, err := ipam.ParseStatefulKinds([]string{"apps.kruise.io/v1beta1/StatefulSet"})
	if err != nil {
		t.Fatal(err)
	}
	added := startAgent(t, e, func(c *Config) { c.StatefulSetFixedIPs, c.StatefulKinds, c.ReserveSize = true, kinds, -1 })
	plain := startAgent(t, e, func(c *Config) { c.StatefulSetFixedIPs, c.ReserveSize = true, -1 })
	ns := newNamespace(t, e, nil)
	newPool(t, e, "kruise", "10.77.0.0/24", nil, "10.77.0.10-10.77.0.40")
	waitForPools(t, added)
	waitForPools(t, plain)
	ann := map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["kruise"]}`}
	kruise := metav1.OwnerReference{APIVersion: "apps.kruise.io/v1beta1", Kind: "StatefulSet", Name: "kdb", UID: "asts-uid-1", Controller: ptr.To(true)}

	pod := newOwnedPod(t, e, ns, "kdb-0", added.node, kruise, nil, ann)
	att := attachment{pod: pod, containerID: "c1", ifName: "eth0"}
	res, err := added.add(ctx, att)
	if err != nil {
		t.Fatal(err)
	}
	addr := *res.Ips[0].Address
	se, err := getEndpoint(ctx, e, pod)
	if err != nil {
		t.Fatal(err)
	}
	if len(se.OwnerReferences) != 0 || se.Annotations[ipam.AnnoOwnerAPIVersion] != "apps.kruise.io/v1beta1" || se.Status.OwnerControllerName != "kdb" {
		t.Fatalf("endpoint of an Advanced StatefulSet's pod: owners %v, annotations %v, controller %s/%s; want kept, %s recorded",
			se.OwnerReferences, se.Annotations, se.Status.OwnerControllerType, se.Status.OwnerControllerName, ipam.AnnoOwnerAPIVersion)
	}
	if err := added.del(ctx, att); err != nil {
		t.Fatal(err)
	}
	if _, held := holderOf(ctx, t, e, "kruise", addr[:len(addr)-3]); !held {
		t.Fatalf("DEL released %s of an added stateful kind's pod", addr)
	}
	forceDelete(t, e, pod)
	again := newOwnedPod(t, e, ns, "kdb-0", added.node, kruise, nil, ann)
	res, err = added.add(ctx, attachment{pod: again, containerID: "c2", ifName: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	if got := *res.Ips[0].Address; got != addr {
		t.Fatalf("re-created kdb-0 got %s, want its kept %s", got, addr)
	}

	// Another controller of the same name and kind, apps': not the kept endpoint's.
	forceDelete(t, e, again)
	apps := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "kdb", UID: "sts-uid-9", Controller: ptr.To(true)}
	other := newOwnedPod(t, e, ns, "kdb-0", added.node, apps, nil, ann)
	res, err = added.add(ctx, attachment{pod: other, containerID: "c3", ifName: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	// The kept endpoint was not this pod's predecessor's: it was released (the address
	// may well come back, as the lowest free one), and the pod's endpoint is its own.
	if se, err := getEndpoint(ctx, e, other); err != nil || se.Annotations[ipam.AnnoOwnerAPIVersion] != "apps/v1" || se.Status.Current.UID != string(other.UID) {
		t.Fatalf("apps' kdb-0 endpoint %+v, %v: want a new one naming apps/v1", se, err)
	}
	if owner, held := holderOf(ctx, t, e, "kruise", strings.TrimSuffix(*res.Ips[0].Address, "/24")); !held || owner != records.OwnerOf(string(other.UID), "c3", "eth0") {
		t.Fatalf("apps' kdb-0 address held by %v (%t), want the pod", owner, held)
	}

	// Without the flag: like any pod.
	lone := newOwnedPod(t, e, ns, "kweb-0", plain.node, metav1.OwnerReference{APIVersion: "apps.kruise.io/v1beta1", Kind: "StatefulSet", Name: "kweb", UID: "asts-uid-2", Controller: ptr.To(true)}, nil, ann)
	if _, err := plain.add(ctx, attachment{pod: lone, containerID: "c4", ifName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	if se, err := getEndpoint(ctx, e, lone); err != nil || len(se.OwnerReferences) != 1 {
		t.Fatalf("endpoint %v, %v: without the flag, want one owned by the pod", se, err)
	}
}

// TestAgentIPByOrdinalRefusals: a pod that takes the address of its ordinal on a pool
// of the records protocol is refused with OrdinalAddressUnavailable, saying node grants
// are needed, and gets no address; a bad annotation value is a BadAnnotation naming
// the key. (TestNodeGrantsIPByOrdinal, in test/grants, covers the pools that serve it.)
func TestAgentIPByOrdinalRefusals(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	a := startAgent(t, e, func(c *Config) { c.StatefulSetFixedIPs, c.ReserveSize = true, -1 })
	ns := newNamespace(t, e, nil)
	newPool(t, e, "ordinal-records", "10.78.0.0/24", nil, "10.78.0.10-10.78.0.20")
	waitForPools(t, a)
	sts := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "sts-uid-ord", Controller: ptr.To(true)}
	ann := func(v string) map[string]string {
		return map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["ordinal-records"]}`, ipam.AnnoIPByOrdinal: v}
	}
	for _, tc := range []struct {
		pod, value, reason, says string
	}{
		{"db-0", "true", ReasonOrdinalAddress, "not served by node grants"},
		{"db-1", "yes", ReasonBadAnnotation, ipam.AnnoIPByOrdinal},
	} {
		pod := newOwnedPod(t, e, ns, tc.pod, a.node, sts, nil, ann(tc.value))
		_, err := a.add(ctx, attachment{pod: pod, containerID: "c-" + tc.pod, ifName: "eth0"})
		var ae *agentError
		if !errors.As(err, &ae) || ae.model.Reason != tc.reason || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s with %s %q: %v; want %s saying %q", tc.pod, ipam.AnnoIPByOrdinal, tc.value, err, tc.reason, tc.says)
		}
		if _, err := getEndpoint(ctx, e, pod); !apierrors.IsNotFound(err) {
			t.Errorf("%s: an endpoint was written (%v)", tc.pod, err)
		}
	}
}

// TestAgentStatefulSetFixedIPOff: with the setting off, a StatefulSet pod is like any
// other: its endpoint is the pod's, and DEL releases.
func TestAgentStatefulSetFixedIPOff(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	a := startAgent(t, e, func(c *Config) { c.ReserveSize = -1 })
	ns := newNamespace(t, e, nil)
	newPool(t, e, "sts-off", "10.73.0.0/24", nil, "10.73.0.10-10.73.0.20")
	waitForPools(t, a)
	sts := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "sts-uid-2", Controller: ptr.To(true)}
	pod := newOwnedPod(t, e, ns, "db-0", a.node, sts, nil, map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["sts-off"]}`})
	res, err := a.add(ctx, attachment{pod: pod, containerID: "c0", ifName: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	se, err := getEndpoint(ctx, e, pod)
	if err != nil || len(se.OwnerReferences) != 1 {
		t.Fatalf("endpoint %v, %v: want one owned by the pod", se, err)
	}
	if err := a.del(ctx, attachment{pod: pod, containerID: "c0", ifName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	addr := *res.Ips[0].Address
	if _, held := holderOf(ctx, t, e, "sts-off", addr[:len(addr)-3]); held {
		t.Fatalf("DEL kept %s with StatefulSet fixed IPs off", addr)
	}
}

// TestAgentAutoPoolWait: an ADD for a pod whose application's auto pool does not exist
// yet waits for it on the pool watch and succeeds once it appears; without it, the ADD
// fails after the bound with AutoPoolNotReady and an event on the pod. A full auto pool
// that grows serves a waiting ADD too.
func TestAgentAutoPoolWait(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	a := startAgent(t, e, func(c *Config) { c.ReserveSize = -1; c.AutoPoolWait = 20 * time.Second })
	ns := newNamespace(t, e, nil)
	newPool(t, e, "auto-wait-other", "10.74.9.0/24", nil, "10.74.9.10")
	waitForPools(t, a)

	rs := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f8", UID: "rs-uid", Controller: ptr.To(true)}
	labels := map[string]string{"app": "web", "pod-template-hash": "7d9f8"}
	anno := map[string]string{ipam.AnnoPodSubnet: `{"ipv4":["subnet-74"]}`}
	app := ipam.Application{APIVersion: "apps/v1", Kind: "Deployment", Namespace: ns, Name: "web", UID: "dep-uid-12345"}
	poolName := ipam.AutoPoolName(4, app, "eth0")

	// The pool appears while the first ADD waits.
	p1 := newOwnedPod(t, e, ns, "web-7d9f8-aaaaa", a.node, rs, labels, anno)
	created := make(chan error, 1)
	go func() {
		time.Sleep(500 * time.Millisecond)
		sp := testPool(poolName, "10.74.0.0/24", "10.74.0.10")
		sp.Labels = ipam.AutoPoolLabels(app, "subnet-74", "eth0", 4, true)
		sp.Spec.PodAffinity = ipam.AutoPoolAffinity(app)
		created <- e.Client.Create(ctx, sp)
	}()
	start := time.Now()
	res, err := a.add(ctx, attachment{pod: p1, containerID: "c1", ifName: "eth0"})
	if err != nil {
		t.Fatalf("ADD while the auto pool was being created: %v", err)
	}
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	if *res.Ips[0].Pool != poolName || *res.Ips[0].Address != "10.74.0.10/24" {
		t.Fatalf("got %s from %s, want 10.74.0.10/24 from %s", *res.Ips[0].Address, *res.Ips[0].Pool, poolName)
	}
	t.Logf("the waiting ADD answered %v after it was sent", time.Since(start).Round(time.Millisecond))

	// The pool is full: a second pod waits until the controller grows it.
	p2 := newOwnedPod(t, e, ns, "web-7d9f8-bbbbb", a.node, rs, labels, anno)
	go func() {
		time.Sleep(500 * time.Millisecond)
		sp := &v2beta1.SpiderIPPool{}
		err := e.Client.Get(ctx, types.NamespacedName{Name: poolName}, sp)
		if err == nil {
			sp.Spec.IPs = []v2beta1.IPOrRange{"10.74.0.10-10.74.0.11"}
			err = e.Client.Update(ctx, sp)
		}
		created <- err
	}()
	res, err = a.add(ctx, attachment{pod: p2, containerID: "c2", ifName: "eth0"})
	if err != nil {
		t.Fatalf("ADD while the full auto pool grew: %v", err)
	}
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	if *res.Ips[0].Address != "10.74.0.11/24" {
		t.Fatalf("got %s, want 10.74.0.11/24 from the grown pool", *res.Ips[0].Address)
	}

	// Another application's pool never comes: the ADD fails after the bound, clearly.
	b := startAgent(t, e, func(c *Config) { c.ReserveSize = -1; c.AutoPoolWait = time.Second })
	waitForPools(t, b)
	rs2 := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "api-5c6b7", UID: "rs-uid-2", Controller: ptr.To(true)}
	p3 := newOwnedPod(t, e, ns, "api-5c6b7-ccccc", b.node, rs2, map[string]string{"pod-template-hash": "5c6b7"}, anno)
	_, err = b.add(ctx, attachment{pod: p3, containerID: "c3", ifName: "eth0"})
	var ae *agentError
	if !errors.As(err, &ae) || ae.model.Reason != ReasonAutoPoolNotReady || ptr.Deref(ae.model.Code, 0) != codeTryAgainLater {
		t.Fatalf("ADD without an auto pool: %v; want reason %s, code %d", err, ReasonAutoPoolNotReady, codeTryAgainLater)
	}
	if msg := ptr.Deref(ae.model.Message, ""); !containsAll(msg, "Deployment "+ns+"/api", "subnet-74", "does not exist yet") {
		t.Errorf("message %q does not say which pool is missing", msg)
	}
	testenv.WaitFor(t, "the pod's AutoPoolNotReady event", func() (bool, error) {
		ev, err := podWarnings(ctx, e, p3)
		for _, m := range ev {
			if containsAll(m, ReasonAutoPoolNotReady) {
				return true, nil
			}
		}
		return false, err
	})
}
