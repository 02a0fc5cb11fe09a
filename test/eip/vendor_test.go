package eip_test

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/eipbinding"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// ACK's readiness gate and the annotation its controller sets (seeds 000 and 001).
const (
	ackGate      corev1.PodConditionType = "k8s.aliyun.com/eip"
	ackAllocated                         = "k8s.aliyun.com/allocated-eipAddress"
	// ackPackage is seed 001's example shared bandwidth package.
	ackPackage = "cbwp-2zeXXXXXX"
)

// ackInitWait is seed 001's init container's test, `grep -E
// '^k8s.aliyun.com\/allocated-eipAddress=\S?[0-9]+\S?' /etc/podinfo/annotations`, over
// the line the downward API writes for the annotation.
var ackInitWait = regexp.MustCompile(`^k8s.aliyun.com\/allocated-eipAddress=\S?[0-9]+\S?`)

// ackManifests: the pods of seeds 000 and 001, with their own ACK annotations and
// readiness gate, through Alibaba's SDK and emulator with --eip-vendor-annotations:
//   - seed 000's final manifest (a pre-bought EIP by k8s.aliyun.com/pod-eip-instanceid,
//     the readiness gate k8s.aliyun.com/eip): the EIP is bound, the pod's ACK condition
//     turns True (no orbweaver.io/eip condition: it does not declare that gate), and
//     k8s.aliyun.com/allocated-eipAddress is its public IP;
//   - seed 000's auto-allocation annotations plus seed 001's shared bandwidth package, on
//     seed 001's init-container pod: the init container's grep finds the address, the
//     EIP is in the package (AddCommonBandwidthPackageIp) with no warning, and when the
//     pod goes it leaves the package (RemoveCommonBandwidthPackageIp) and is released;
//   - seed 001's instance charge type PrePaid: refused with a Warning saying to use
//     PostPaid or bind a bought EIP by ID;
//   - seed 001's compatible aliases (eci-with-eip, eip-charge-type): bound, gate True;
//   - with vendor annotations off, ACK's gate and annotation are left alone.
func ackManifests(t *testing.T, cc cloudCase) {
	if cc.name != "alibaba" {
		t.Skip("ACK's manifests ask for Alibaba Cloud EIPs")
	}
	h := newHarness(t, cc)
	h.stop()
	h.start(startOpts{quiet: true})
	h.allowRequests(h.ns) // who may ask is podRequestsAuthorized's subject
	ctx := context.Background()
	pool := h.poolOf(nil)
	node := h.node()
	h.cloud.AddBandwidthPackage(ackPackage)

	// Seed 000, 3.2: the EIP bought first, reserved for the namespace's pods.
	bought, err := h.provider.Allocate(ctx, eip.AllocateRequest{ClientToken: "bought-" + h.ns,
		Tags: map[string]string{eipbinding.TagCluster: h.cluster, eipbinding.TagNamespace: h.ns}})
	if err != nil {
		t.Fatal(err)
	}
	app, a := h.run("app-79dcf755fb-ks2ld", node, pool, netip.Addr{}, podOpts{gates: []corev1.PodConditionType{ackGate},
		annotations: map[string]string{"k8s.aliyun.com/pod-eip-instanceid": bought.ID}})
	b := h.waitBound(pool, app, a)
	if b.AllocationID != bought.ID || !b.Static {
		t.Fatalf("binding %+v, want the bought %s", b, bought.ID)
	}
	waitACK(t, h, app, b.PublicIP)
	if got := h.getPod(app); gate(got) != "" {
		t.Errorf("pod %s: an %s condition, but it declares only ACK's gate", app.Name, v2beta1.PodEIPConditionType)
	}

	// Seed 000's auto-allocation annotations and seed 001's shared bandwidth package, on
	// seed 001's init-container pod.
	auto := map[string]string{
		"k8s.aliyun.com/pod-with-eip":                    "true",
		"k8s.aliyun.com/eip-bandwidth":                   "200",
		"k8s.aliyun.com/eip-internet-charge-type":        "PayByTraffic",
		"k8s.aliyun.com/eip-instance-charge-type":        "PostPaid",
		"k8s.aliyun.com/eip-name":                        "app-eip",
		"k8s.aliyun.com/eip-description":                 "app-eip",
		"k8s.aliyun.com/eip-common-bandwidth-package-id": ackPackage,
	}
	example, a2 := h.run("example", node, pool, netip.Addr{}, podOpts{annotations: auto})
	b2 := h.waitBound(pool, example, a2)
	if b2.Static || !b2.Requested {
		t.Fatalf("binding %+v, want one allocated for the pod's request", b2)
	}
	testenv.WaitFor(t, "seed 001's init container to find the EIP", func() (bool, error) {
		got := h.getPod(example)
		line := fmt.Sprintf("%s=%q", ackAllocated, got.Annotations[ackAllocated]) // as the downward API writes it
		return ackInitWait.MatchString(line) && got.Annotations[ackAllocated] == b2.PublicIP, fmt.Errorf("line %s", line)
	})
	if got := h.cloudEIP(b2.AllocationID); got.BandwidthPackage != ackPackage {
		t.Fatalf("EIP %s is in bandwidth package %q, want seed 001's %s", b2.AllocationID, got.BandwidthPackage, ackPackage)
	}
	// Every attribute of the request is honoured, the package included: no warning.
	if e := h.events(example.Name, eipbinding.ReasonAttributeUnhonoured); len(e) > 0 {
		t.Errorf("pod %s: %s", example.Name, e[0].Message)
	}
	// The pod goes: its EIP leaves the package and is released.
	h.end(example, pool)
	testenv.WaitFor(t, "the EIP out of its package and released", func() (bool, error) {
		got := h.cloudEIP(b2.AllocationID)
		return got.ID == "", fmt.Errorf("EIP %+v", got)
	})
	// A subscription EIP is refused, with what to ask for instead.
	prepaid := map[string]string{"k8s.aliyun.com/pod-with-eip": "true", "k8s.aliyun.com/eip-instance-charge-type": "PrePaid"}
	allocations := h.cloud.CallCount("Allocate")
	sub, _ := h.run("prepaid", node, pool, netip.Addr{}, podOpts{annotations: prepaid})
	testenv.WaitFor(t, "a Warning refusing PrePaid", func() (bool, error) {
		for _, e := range h.events(sub.Name, eipbinding.ReasonFailed) {
			if e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "PrePaid") && strings.Contains(e.Message, "use PostPaid") {
				return true, nil
			}
		}
		return false, fmt.Errorf("no Warning %s naming PrePaid on pod %s", eipbinding.ReasonFailed, sub.Name)
	})
	if n := h.cloud.CallCount("Allocate"); n != allocations {
		t.Errorf("the PrePaid request reached the cloud: %d Allocate calls, want %d", n, allocations)
	}
	if e := h.events(app.Name, eipbinding.ReasonAttributeUnhonoured); len(e) > 0 {
		t.Errorf("pod %s, bound to a bought EIP: %s", app.Name, e[0].Message)
	}

	// Seed 001's compatible aliases.
	eci, a3 := h.run("eci", node, pool, netip.Addr{}, podOpts{gates: []corev1.PodConditionType{ackGate},
		annotations: map[string]string{"k8s.aliyun.com/eci-with-eip": "true", "k8s.aliyun.com/eip-charge-type": "PayByBandwidth"}})
	b3 := h.waitBound(pool, eci, a3)
	if !b3.Requested || b3.Static {
		t.Fatalf("binding %+v, want one allocated for the pod's request", b3)
	}
	waitACK(t, h, eci, b3.PublicIP)

	// Vendor annotations off: ACK's gate and annotation are not orbweaver's business.
	h.stop()
	h.start(startOpts{quiet: true, vendorOff: true})
	off, a4 := h.run("off", node, pool, netip.Addr{}, podOpts{gate: true, gates: []corev1.PodConditionType{ackGate},
		annotations: map[string]string{v2beta1.AnnoWithEIP: "true", v2beta1.AnnoEIPProvider: cc.name}})
	h.waitBound(pool, off, a4)
	got := h.getPod(off)
	if c := condition(got, ackGate); c != "" {
		t.Errorf("vendor annotations off: pod %s has an %s condition %s", off.Name, ackGate, c)
	}
	if v, ok := got.Annotations[ackAllocated]; ok {
		t.Errorf("vendor annotations off: pod %s annotated %s=%q", off.Name, ackAllocated, v)
	}
}

// waitACK waits for ACK's view of a bound EIP on the pod: its k8s.aliyun.com/eip
// condition True and k8s.aliyun.com/allocated-eipAddress the public IP.
func waitACK(t *testing.T, h *harness, pod *corev1.Pod, public string) {
	t.Helper()
	testenv.WaitFor(t, fmt.Sprintf("ACK's gate and annotation on pod %s", pod.Name), func() (bool, error) {
		got := h.getPod(pod)
		if c := condition(got, ackGate); c != corev1.ConditionTrue {
			return false, fmt.Errorf("%s condition %q", ackGate, c)
		}
		if v := got.Annotations[ackAllocated]; v != public {
			return false, fmt.Errorf("%s=%q, want %q", ackAllocated, v, public)
		}
		return true, nil
	})
}

// getPod reads a pod.
func (h *harness) getPod(pod *corev1.Pod) *corev1.Pod {
	h.t.Helper()
	got := &corev1.Pod{}
	if err := h.e.Client.Get(h.ctx, client.ObjectKeyFromObject(pod), got); err != nil {
		h.t.Fatal(err)
	}
	return got
}

// eipIDListByOrdinal is seed 003's EIP ID list given to StatefulSet replicas by
// ordinal, with orbweaver's annotation (any cloud) and with TKE's (Tencent, vendor
// annotations on): db-0, db-1 and db-2 get the listed EIPs, in order; db-1 re-created
// keeps its EIP; db-3, past the list, gets no EIP, its readiness gate False and a
// Warning naming the list; once the list grows, db-3 gets the new entry.
func eipIDListByOrdinal(t *testing.T, cc cloudCase) {
	h := newHarness(t, cc)
	h.allowRequests(h.ns)
	ctx := context.Background()
	pool := h.poolOf(nil)
	node := h.node()
	var ids []string
	for i := range 4 {
		b, err := h.provider.Allocate(ctx, eip.AllocateRequest{ClientToken: fmt.Sprintf("list-%s-%d", h.ns, i),
			Tags: map[string]string{eipbinding.TagCluster: h.cluster, eipbinding.TagNamespace: h.ns}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, b.ID)
	}
	listOf := func(n int) map[string]string {
		list := strings.Join(ids[:n], ",")
		if cc.name == "tencent" {
			return map[string]string{"tke.cloud.tencent.com/eip-id-list": list} // seed 003's own
		}
		return map[string]string{v2beta1.AnnoEIPIDList: list, v2beta1.AnnoEIPProvider: cc.name}
	}
	pods := make([]*corev1.Pod, 4)
	addrs := make([]netip.Addr, 4)
	for i := range 4 {
		pods[i], addrs[i] = h.run(fmt.Sprintf("db-%d", i), node, pool, netip.Addr{}, podOpts{gate: true, annotations: listOf(3), statefulSet: "db"})
	}
	for i := range 3 {
		if b := h.waitBound(pool, pods[i], addrs[i]); b.AllocationID != ids[i] {
			t.Fatalf("db-%d got EIP %s, want the list's entry %d, %s", i, b.AllocationID, i, ids[i])
		}
	}
	testenv.WaitFor(t, "db-3 told the list is too short", func() (bool, error) {
		for _, e := range h.events("db-3", eipbinding.ReasonRequestRefused) {
			if strings.Contains(e.Message, eipbinding.RefusedEIPListTooShort) && strings.Contains(e.Message, "ordinal 3") {
				return true, nil
			}
		}
		return false, fmt.Errorf("no Warning %s on db-3", eipbinding.ReasonRequestRefused)
	})
	if g := gate(h.getPod(pods[3])); g != corev1.ConditionFalse {
		t.Fatalf("db-3's readiness gate is %q, want False while it waits", g)
	}
	if _, ok := h.binding(pool, addrs[3]); ok {
		t.Fatalf("db-3, past the list, has a binding")
	}

	// db-1 re-created keeps its EIP.
	h.deletePod(pods[1])
	pods[1] = h.rerun(pods[1], node, pool, addrs[1], podOpts{gate: true, annotations: listOf(3), statefulSet: "db"})
	if b := h.waitBound(pool, pods[1], addrs[1]); b.AllocationID != ids[1] {
		t.Fatalf("db-1 re-created got EIP %s, want %s", b.AllocationID, ids[1])
	}

	// The list grows: db-3 gets the new entry.
	got := h.getPod(pods[3])
	for k, v := range listOf(4) {
		got.Annotations[k] = v
	}
	if err := h.e.Client.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	if b := h.waitBound(pool, pods[3], addrs[3]); b.AllocationID != ids[3] {
		t.Fatalf("db-3 got EIP %s once the list grew, want %s", b.AllocationID, ids[3])
	}
}
