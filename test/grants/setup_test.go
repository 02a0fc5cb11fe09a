package grants

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api"
)

// grantsPool creates an IPv4 pool of ips already in Grants mode (the switch itself is
// TestGrantsSwitchesPools'), deleted when the test ends so that no later test's pods
// find it. status, when set, edits the status written.
func grantsPool(ctx context.Context, t *testing.T, e *testenv.Env, name, subnet, ips string, def bool, status func(*v2beta1.IPPoolStatus)) *v2beta1.SpiderIPPool {
	t.Helper()
	sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: v2beta1.CIDR(subnet), IPs: []v2beta1.IPOrRange{v2beta1.IPOrRange(ips)}, Default: ptr.To(def)}}
	if err := e.Client.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Client.Delete(context.Background(), sp) })
	sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Allocation: v2beta1.AllocationGrants}
	if status != nil {
		status(&sp.Status)
	}
	if err := e.Client.Status().Update(ctx, sp); err != nil {
		t.Fatal(err)
	}
	return sp
}

// podNamespace creates a namespace with its default ServiceAccount.
func podNamespace(ctx context.Context, t *testing.T, e *testenv.Env, name string) *corev1.Namespace {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := e.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "default"}}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// startNodes creates the Nodes prefix-0 ... prefix-(n-1) and starts their agents,
// stopped when the test ends.
func startNodes(ctx context.Context, t *testing.T, e *testenv.Env, prefix string, n int) []*node {
	t.Helper()
	nodes := make([]*node, n)
	for i := range nodes {
		dir, err := os.MkdirTemp("", "grants")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		nd := &node{name: fmt.Sprintf("%s-%d", prefix, i), socket: filepath.Join(dir, "a.sock")}
		nd.api = api.NewUnixClient(nd.socket)
		if err := e.Client.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nd.name}}); err != nil {
			t.Fatal(err)
		}
		nd.start(t, e)
		t.Cleanup(func() { nd.halt(t) })
		nodes[i] = nd
	}
	return nodes
}

// boundPod creates a pod bound to node, with annotations and owner when given.
func boundPod(ctx context.Context, t *testing.T, e *testenv.Env, ns, name, node string, annotations map[string]string, owner *metav1.OwnerReference) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Spec: corev1.PodSpec{NodeName: node, AutomountServiceAccountToken: ptr.To(false), Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}}}}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	if err := e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// forceDeletePod deletes a pod at once, as `kubectl delete --force --grace-period=0`,
// and waits until the API server no longer has it.
func forceDeletePod(ctx context.Context, t *testing.T, e *testenv.Env, p *corev1.Pod) {
	t.Helper()
	if err := e.Client.Delete(ctx, p, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "pod "+p.Name+" gone", func() (bool, error) {
		err := e.Client.Get(ctx, client.ObjectKeyFromObject(p), &corev1.Pod{})
		return client.IgnoreNotFound(err) == nil && err != nil, nil
	})
}
