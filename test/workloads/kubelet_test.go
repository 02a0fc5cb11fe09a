package workloads

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/orbweaver-ipam/orbweaver/internal/testagent"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/client/operations"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
)

// node is a simulated node: a Node object and a real agent serving its socket.
type node struct {
	name string
	api  operations.ClientService
}

// startNode creates a Node and runs a real agent for it (testagent.Start) until the test
// ends.
func startNode(t *testing.T, name string) *node {
	t.Helper()
	ctx := context.Background()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
	if err := env.Client.Create(ctx, n); err != nil {
		t.Fatalf("create Node %s: %v", name, err)
	}
	// A Ready node, as a kubelet would report it, so GC treats it as alive.
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if err := env.Client.Status().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	socket := testagent.Start(t, agent.Config{
		NodeName: name, RESTConfig: env.Config,
		StatefulSetFixedIPs: true, AutoPoolWait: 5 * time.Second,
	})
	return &node{name: name, api: api.NewUnixClient(socket)}
}

// fakeKubelet stands in for the scheduler and the kubelets of some nodes, for the pods
// of one namespace: it binds each new pod to a node (round robin; a DaemonSet's pod to
// the node it names), calls the node agent's ADD for it as the CNI plugin would (one
// sandbox per pod instance, interface eth0), and reports the pod Running and Ready with
// its IPs. A pod being deleted, or finished, gets its DEL; a deleted one is then removed
// (grace 0, UID precondition), as the kubelet confirms a deletion.
type fakeKubelet struct {
	t         *testing.T
	namespace string
	nodes     []*node

	mu       sync.Mutex
	next     int
	failures map[types.UID]string // the last ADD error of each pod instance
	retryAt  map[types.UID]time.Time
	deleted  map[types.UID]bool // DEL done (finished pods)
	adds     int
}

func startKubelet(t *testing.T, namespace string, nodes ...*node) *fakeKubelet {
	k := &fakeKubelet{t: t, namespace: namespace, nodes: nodes,
		failures: map[types.UID]string{}, retryAt: map[types.UID]time.Time{}, deleted: map[types.UID]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			k.sync(ctx)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return k
}

func sandboxOf(pod *corev1.Pod) string { return "sandbox-" + string(pod.UID) }

func (k *fakeKubelet) attachment(pod *corev1.Pod) *models.Attachment {
	return &models.Attachment{
		ContainerID: ptr.To(sandboxOf(pod)), IfName: ptr.To("eth0"),
		PodNamespace: ptr.To(pod.Namespace), PodName: ptr.To(pod.Name), PodUID: string(pod.UID),
		NetNamespace: "/var/run/netns/" + string(pod.UID),
	}
}

func (k *fakeKubelet) nodeNamed(name string) *node {
	for _, n := range k.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// sync makes one pass over the namespace's pods.
func (k *fakeKubelet) sync(ctx context.Context) {
	var pods corev1.PodList
	if err := env.Client.List(ctx, &pods, client.InNamespace(k.namespace)); err != nil {
		return
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		switch {
		case pod.DeletionTimestamp != nil:
			k.remove(ctx, pod)
		case pod.Spec.NodeName == "":
			k.bind(ctx, pod)
		case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
			k.finish(ctx, pod)
		case pod.Status.Phase == "" || pod.Status.Phase == corev1.PodPending:
			k.run(ctx, pod)
		}
	}
}

func (k *fakeKubelet) bind(ctx context.Context, pod *corev1.Pod) {
	target := daemonSetNode(pod)
	if target == "" {
		k.mu.Lock()
		target = k.nodes[k.next%len(k.nodes)].name
		k.next++
		k.mu.Unlock()
	}
	if k.nodeNamed(target) == nil {
		return // another test's node
	}
	b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target: corev1.ObjectReference{Kind: "Node", Name: target}}
	_ = env.Client.SubResource("binding").Create(ctx, pod, b)
}

// daemonSetNode is the node a DaemonSet's pod is for (its required node affinity on
// metadata.name), "" for other pods.
func daemonSetNode(pod *corev1.Pod) string {
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, f := range term.MatchFields {
			if f.Key == "metadata.name" && len(f.Values) == 1 {
				return f.Values[0]
			}
		}
	}
	return ""
}

func (k *fakeKubelet) run(ctx context.Context, pod *corev1.Pod) {
	n := k.nodeNamed(pod.Spec.NodeName)
	if n == nil {
		return
	}
	k.mu.Lock()
	if time.Now().Before(k.retryAt[pod.UID]) {
		k.mu.Unlock()
		return
	}
	k.mu.Unlock()
	callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ok, err := n.api.AddContext(callCtx, operations.NewAddParams().WithArgs(&models.AddArgs{Attachment: k.attachment(pod)}))
	k.mu.Lock()
	k.adds++
	if err != nil {
		var d *operations.AddDefault
		msg := err.Error()
		if errors.As(err, &d) && d.Payload != nil {
			msg = d.Payload.Reason + ": " + ptr.Deref(d.Payload.Message, "")
		}
		k.failures[pod.UID] = msg
		k.retryAt[pod.UID] = time.Now().Add(300 * time.Millisecond)
		k.mu.Unlock()
		return
	}
	delete(k.failures, pod.UID)
	k.mu.Unlock()
	var ips []corev1.PodIP
	for _, c := range ok.Payload.Ips {
		if p, err := netip.ParsePrefix(ptr.Deref(c.Address, "")); err == nil {
			ips = append(ips, corev1.PodIP{IP: p.Addr().String()})
		}
	}
	now := metav1.Now()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.HostIP = "127.0.0.1"
	pod.Status.StartTime = &now
	pod.Status.PodIPs = ips
	if len(ips) > 0 {
		pod.Status.PodIP = ips[0].IP
	}
	pod.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	_ = env.Client.Status().Update(ctx, pod) // a conflict: the next pass sees it Running or retries
}

// finish tears down a finished pod's sandbox once.
func (k *fakeKubelet) finish(ctx context.Context, pod *corev1.Pod) {
	k.mu.Lock()
	done := k.deleted[pod.UID]
	k.mu.Unlock()
	if done || k.del(ctx, pod) != nil {
		return
	}
	k.mu.Lock()
	k.deleted[pod.UID] = true
	k.mu.Unlock()
}

func (k *fakeKubelet) del(ctx context.Context, pod *corev1.Pod) error {
	n := k.nodeNamed(pod.Spec.NodeName)
	if n == nil {
		return nil
	}
	callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := n.api.DelContext(callCtx, operations.NewDelParams().WithArgs(k.attachment(pod)))
	return err
}

// remove is the kubelet's part of a pod deletion: DEL, then the final delete.
func (k *fakeKubelet) remove(ctx context.Context, pod *corev1.Pod) {
	if pod.Spec.NodeName != "" && k.nodeNamed(pod.Spec.NodeName) == nil {
		return
	}
	if err := k.del(ctx, pod); err != nil {
		return
	}
	err := env.Client.Delete(ctx, pod, client.GracePeriodSeconds(0), client.Preconditions{UID: &pod.UID})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		k.t.Logf("fake kubelet: delete pod %s: %v", pod.Name, err)
	}
}

// failure returns the last ADD error of a pod instance, "" when none.
func (k *fakeKubelet) failure(uid types.UID) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.failures[uid]
}

// runningPods returns the namespace's Running pods whose name starts with prefix, with
// their IPs, by name.
func runningPods(ctx context.Context, t *testing.T, namespace string, match func(*corev1.Pod) bool) []corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := env.Client.List(ctx, &pods, client.InNamespace(namespace)); err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && p.Status.PodIP != "" && match(&p) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	// kube-controller-manager's serviceaccount controller creates "default", which pods
	// need; wait for it.
	testenv.WaitFor(t, "ServiceAccount default in "+name, func() (bool, error) {
		err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: name, Name: "default"}, &corev1.ServiceAccount{})
		return err == nil, client.IgnoreNotFound(err)
	})
	return name
}
