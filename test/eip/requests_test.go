package eip_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/internal/testmetrics"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/eipbinding"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// podRequestsAuthorized: who may ask for an EIP by pod annotation, as a matrix. Rows:
// a namespace nothing allows, a namespace labelled orbweaver.io/eip-requests=allowed,
// and a namespace a pool with allowPodRequests admits (namespaceName). Columns:
// with-eip, eip-id of an EIP of a Static pool the namespace may use, of a pool it may
// not use, of another cluster's tag, of an EIP associated elsewhere, ACK's annotation
// (vendor annotations on, then off). Where refused, the pod gets a Warning event naming
// the rule and the fix, its readiness gate False with reason EIPRequestRefused, no
// binding, a count in orbweaver_eip_requests_refused_total, and the cloud sees not one
// Allocate or Associate; where allowed, the EIP is allocated or bound. Labelling the
// refused namespace then honours its pods' requests.
func podRequestsAuthorized(t *testing.T, cc cloudCase) {
	h := newHarness(t, cc)
	h.stop()
	h.start(startOpts{quiet: true})
	ctx := context.Background()
	node := h.node()
	denied := h.namespace(nil)
	allowed := h.namespace(map[string]string{v2beta1.LabelEIPRequests: v2beta1.EIPRequestsAllowed})
	granted := h.namespace(nil)

	mk := func(tok string, tags map[string]string) string {
		a, err := h.provider.Allocate(ctx, eip.AllocateRequest{ClientToken: tok + "-" + h.ns, Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		return a.ID
	}
	// One EIP of the shared Static pool per row (each row binds its own), one of a pool
	// no test namespace may use, one another cluster tagged, one bound elsewhere (tagged
	// for every row's namespace otherwise, so only its association refuses it).
	ownD, ownA, ownG := mk("own-d", nil), mk("own-a", nil), mk("own-g", nil)
	h.pool(v2beta1.EIPSpec{Mode: v2beta1.EIPStatic, Static: []string{ownD, ownA, ownG}})
	theirs := mk("theirs", nil)
	h.poolWith(&v2beta1.EIPSpec{Provider: cc.name, Mode: v2beta1.EIPStatic, Static: []string{theirs}},
		func(sp *v2beta1.SpiderIPPool) { sp.Spec.NamespaceName = []string{"someone-else"} })
	foreign := mk("foreign", map[string]string{eipbinding.TagCluster: "another-cluster", eipbinding.TagNamespace: allowed})
	elsewhere := mk("elsewhere", map[string]string{eipbinding.TagCluster: h.cluster, eipbinding.TagNamespace: allowed})
	h.cloud.Place("eni-elsewhere", "10.9.9.7")
	if err := h.provider.Associate(ctx, elsewhere, "eni-elsewhere", "10.9.9.7"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the other EIP in use elsewhere", func() (bool, error) {
		return h.cloudEIP(elsewhere).State == eip.InUse, nil
	})

	plainD, plainA := h.poolOf(nil), h.poolOf(nil)
	grant := h.poolWith(&v2beta1.EIPSpec{Provider: cc.name, Mode: v2beta1.EIPAuto, AllowPodRequests: true},
		func(sp *v2beta1.SpiderIPPool) { sp.Spec.NamespaceName = []string{granted} })

	withEIP := map[string]string{v2beta1.AnnoWithEIP: "true", v2beta1.AnnoEIPReleaseStrategy: "Never"}
	byID := func(id string) map[string]string { return map[string]string{v2beta1.AnnoEIPID: id} }
	ack := map[string]string{"k8s.aliyun.com/pod-with-eip": "true", v2beta1.AnnoEIPProvider: cc.name}

	type cell struct {
		name, ns, pool string
		anno           map[string]string
		refused        string // the reason; "" allowed
	}
	refusedCells := []cell{
		{"d-with", denied, plainD, withEIP, eipbinding.RefusedNamespaceNotAllowed},
		{"d-id-own", denied, plainD, byID(ownD), eipbinding.RefusedNamespaceNotAllowed},
		{"d-id-theirs", denied, plainD, byID(theirs), eipbinding.RefusedNamespaceNotAllowed},
		{"d-id-foreign", denied, plainD, byID(foreign), eipbinding.RefusedNamespaceNotAllowed},
		{"d-id-elsewhere", denied, plainD, byID(elsewhere), eipbinding.RefusedNamespaceNotAllowed},
		{"d-ack", denied, plainD, ack, eipbinding.RefusedNamespaceNotAllowed},
		{"a-id-theirs", allowed, plainA, byID(theirs), eipbinding.RefusedEIPOfAnotherPool},
		{"a-id-foreign", allowed, plainA, byID(foreign), eipbinding.RefusedEIPOfAnotherCluster},
		{"a-id-elsewhere", allowed, plainA, byID(elsewhere), eipbinding.RefusedEIPAssociatedElsewhere},
		{"g-id-theirs", granted, grant, byID(theirs), eipbinding.RefusedEIPOfAnotherPool},
		{"g-id-foreign", granted, grant, byID(foreign), eipbinding.RefusedEIPOfAnotherCluster},
		{"g-id-elsewhere", granted, grant, byID(elsewhere), eipbinding.RefusedEIPAssociatedElsewhere},
		// The pool's grant is for its own IPs: the namespace's pod in another pool asks
		// in vain.
		{"g-with-elsewhere", granted, plainA, withEIP, eipbinding.RefusedNamespaceNotAllowed},
	}
	allocs, assocs := h.cloud.CallCount("Allocate"), h.cloud.CallCount("Associate")
	ips := map[string]netip.Addr{}
	for _, c := range refusedCells {
		_, ips[c.name] = h.run(c.name, node, c.pool, netip.Addr{}, podOpts{gate: true, annotations: c.anno, namespace: c.ns})
	}
	for _, c := range refusedCells {
		waitRefused(t, h, c.ns, c.name, c.refused)
	}
	time.Sleep(time.Second) // several reconciles more: still nothing in the cloud
	if got := h.cloud.CallCount("Allocate") - allocs; got != 0 {
		t.Errorf("%d Allocate calls for refused requests, want 0", got)
	}
	if got := h.cloud.CallCount("Associate") - assocs; got != 0 {
		t.Errorf("%d Associate calls for refused requests, want 0", got)
	}
	t.Logf("%s: refused requests: Allocate %d, Associate %d calls", cc.label,
		h.cloud.CallCount("Allocate")-allocs, h.cloud.CallCount("Associate")-assocs)
	for _, c := range refusedCells {
		if b, ok := h.binding(c.pool, ips[c.name]); ok {
			t.Errorf("refused pod %s/%s: binding %+v", c.ns, c.name, b)
		}
	}
	for reason, atLeast := range map[string]int{eipbinding.RefusedNamespaceNotAllowed: 7, eipbinding.RefusedEIPOfAnotherPool: 2,
		eipbinding.RefusedEIPOfAnotherCluster: 2, eipbinding.RefusedEIPAssociatedElsewhere: 2} {
		if got := refusedCount(t, h, reason); got < atLeast {
			t.Errorf("orbweaver_eip_requests_refused_total{reason=%q} = %d, want at least %d", reason, got, atLeast)
		}
	}
	if c := h.cloudEIP(elsewhere); c.State != eip.InUse || c.PrivateIP != "10.9.9.7" {
		t.Errorf("the EIP bound elsewhere was moved: %+v", c)
	}

	// Allowed: by the namespace's label, and by the pool.
	var ended []func() // the pods that asked by ACK's annotation, ended before it is off
	for _, c := range []struct {
		cell
		id string // the EIP it must get; "" a new one
	}{
		{cell{name: "a-with", ns: allowed, pool: plainA, anno: withEIP}, ""},
		{cell{name: "a-id-own", ns: allowed, pool: plainA, anno: byID(ownA)}, ownA},
		{cell{name: "a-ack", ns: allowed, pool: plainA, anno: ack}, ""},
		{cell{name: "g-with", ns: granted, pool: grant, anno: withEIP}, ""},
		{cell{name: "g-id-own", ns: granted, pool: grant, anno: byID(ownG)}, ownG},
		{cell{name: "g-ack", ns: granted, pool: grant, anno: ack}, ""},
	} {
		pod, a := h.run(c.name, node, c.pool, netip.Addr{}, podOpts{gate: true, annotations: c.anno, namespace: c.ns})
		b := h.waitBound(c.pool, pod, a)
		if c.anno[v2beta1.AnnoWithEIP] == "" && c.anno[v2beta1.AnnoEIPID] == "" {
			ended = append(ended, func() { h.end(pod, c.pool) })
		}
		switch {
		case !b.Requested:
			t.Errorf("%s/%s: binding %+v, want one the pod requested", c.ns, c.name, b)
		case c.id != "" && (b.AllocationID != c.id || !b.Static):
			t.Errorf("%s/%s: binding %+v, want the named %s", c.ns, c.name, b, c.id)
		case c.id == "" && h.cloudEIP(b.AllocationID).Tags[eipbinding.TagNamespace] != c.ns:
			t.Errorf("%s/%s: EIP tags %v, want %s=%s", c.ns, c.name, h.cloudEIP(b.AllocationID).Tags, eipbinding.TagNamespace, c.ns)
		}
		if c.anno[v2beta1.AnnoEIPReleaseStrategy] == "Never" && (b.ReleaseStrategy == nil || *b.ReleaseStrategy != v2beta1.ReclaimNever) {
			t.Errorf("%s/%s: binding %+v, want the pod's Never", c.ns, c.name, b)
		}
	}

	// Vendor annotations off: ACK's annotation asks nothing, and nothing is refused.
	// (The pods that asked by it are gone first: in the pool with EIPs, one would get
	// the pool's own EIP, allocated, once its request is no longer read.)
	for _, end := range ended {
		end()
	}
	h.stop()
	h.start(startOpts{quiet: true, vendorOff: true})
	allocs = h.cloud.CallCount("Allocate")
	offA, ipA := h.run("a-ack-off", node, plainA, netip.Addr{}, podOpts{annotations: map[string]string{"k8s.aliyun.com/pod-with-eip": "true"}, namespace: allowed})
	offD, ipD := h.run("d-ack-off", node, plainD, netip.Addr{}, podOpts{annotations: map[string]string{"k8s.aliyun.com/pod-with-eip": "true"}, namespace: denied})
	time.Sleep(time.Second)
	for _, p := range []struct {
		pod  *corev1.Pod
		pool string
		a    netip.Addr
	}{{offA, plainA, ipA}, {offD, plainD, ipD}} {
		if b, ok := h.binding(p.pool, p.a); ok {
			t.Errorf("vendor annotations off: pod %s got binding %+v", p.pod.Name, b)
		}
		if e := h.events(p.pod.Name, eipbinding.ReasonRequestRefused); len(e) > 0 {
			t.Errorf("vendor annotations off: pod %s refused: %s", p.pod.Name, e[0].Message)
		}
	}
	if got := h.cloud.CallCount("Allocate") - allocs; got != 0 {
		t.Errorf("vendor annotations off: %d Allocate calls, want 0", got)
	}

	// An administrator allows the refused namespace: its pods' requests are honoured.
	h.allowRequests(denied)
	for _, c := range []struct{ name, id string }{{"d-with", ""}, {"d-id-own", ownD}} {
		pod := &corev1.Pod{}
		if err := h.e.Client.Get(h.ctx, client.ObjectKey{Namespace: denied, Name: c.name}, pod); err != nil {
			t.Fatal(err)
		}
		if b := h.waitBound(plainD, pod, ips[c.name]); c.id != "" && b.AllocationID != c.id {
			t.Errorf("%s, once allowed: bound %s, want %s", c.name, b.AllocationID, c.id)
		}
	}
}

// waitRefused waits for a refused pod's Warning event and readiness gate, both naming
// the reason, the event also what to change.
func waitRefused(t *testing.T, h *harness, ns, name, reason string) {
	t.Helper()
	testenv.WaitFor(t, fmt.Sprintf("pod %s/%s refused (%s)", ns, name, reason), func() (bool, error) {
		var warned bool
		for _, e := range h.events(name, eipbinding.ReasonRequestRefused) {
			if e.InvolvedObject.Namespace == ns && e.Type == corev1.EventTypeWarning && strings.HasPrefix(e.Message, reason+": ") {
				warned = true
				if reason == eipbinding.RefusedNamespaceNotAllowed && !strings.Contains(e.Message, v2beta1.LabelEIPRequests+"="+v2beta1.EIPRequestsAllowed) {
					return false, fmt.Errorf("event %q does not say what to change", e.Message)
				}
			}
		}
		if !warned {
			return false, fmt.Errorf("no Warning %s event with reason %s", eipbinding.ReasonRequestRefused, reason)
		}
		pod := &corev1.Pod{}
		if err := h.e.Client.Get(h.ctx, client.ObjectKey{Namespace: ns, Name: name}, pod); err != nil {
			return false, err
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == v2beta1.PodEIPConditionType {
				ok := c.Status == corev1.ConditionFalse && c.Reason == eipbinding.ReasonRequestRefused && strings.HasPrefix(c.Message, reason)
				return ok, fmt.Errorf("gate %+v", c)
			}
		}
		return false, fmt.Errorf("no %s condition", v2beta1.PodEIPConditionType)
	})
}

// refusedCount reads orbweaver_eip_requests_refused_total{reason}.
func refusedCount(t *testing.T, h *harness, reason string) int {
	t.Helper()
	v, _ := testmetrics.Value(t, h.reg, "orbweaver_eip_requests_refused_total", map[string]string{"reason": reason})
	return int(v)
}
