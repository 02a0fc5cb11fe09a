// Package grants tests node grants end to end (docs/design/node-grants.md): real agents
// (agent.Run, each with its own node, socket and API client) and the real grant
// controller against one API server, driven through the agents' sockets with the client
// the CNI plugin uses.
package grants

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/client/operations"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/grants"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(testenv.Main(m, &env))
}

// node is one simulated node with its agent, which can be stopped and started again.
type node struct {
	name, socket string
	api          operations.ClientService
	stop         context.CancelFunc
	done         chan error
	// tune changes the agent's configuration before it starts (nil: as is).
	tune func(*agent.Config)
}

func (n *node) start(t *testing.T, e *testenv.Env) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	n.done = make(chan error, 1)
	cfg := agent.Config{NodeName: n.name, RESTConfig: e.Config, SocketPath: n.socket, Log: logr.Discard(),
		Ready: func() { close(ready) }, GrantWait: 20 * time.Second, StatefulSetFixedIPs: true}
	if n.tune != nil {
		n.tune(&cfg)
	}
	go func() { n.done <- agent.Run(ctx, cfg) }()
	n.stop = cancel
	select {
	case <-ready:
	case err := <-n.done:
		t.Fatalf("agent %s: %v", n.name, err)
	case <-time.After(60 * time.Second):
		t.Fatalf("agent %s not ready after 60s", n.name)
	}
}

func (n *node) halt(t *testing.T) {
	t.Helper()
	n.stop()
	if err := <-n.done; err != nil {
		t.Errorf("agent %s: %v", n.name, err)
	}
}

func (n *node) add(ctx context.Context, pod *corev1.Pod) (netip.Addr, error) {
	ok, err := n.api.AddContext(ctx, operations.NewAddParams().WithArgs(&models.AddArgs{Attachment: attachment(pod)}))
	if err != nil {
		var bad *operations.AddDefault
		if errors.As(err, &bad) && bad.Payload != nil && bad.Payload.Message != nil {
			return netip.Addr{}, fmt.Errorf("ADD %s/%s on %s: %s", pod.Namespace, pod.Name, n.name, *bad.Payload.Message)
		}
		return netip.Addr{}, fmt.Errorf("ADD %s/%s on %s: %w", pod.Namespace, pod.Name, n.name, err)
	}
	p, err := netip.ParsePrefix(*ok.Payload.Ips[0].Address)
	if err != nil {
		return netip.Addr{}, err
	}
	return p.Addr(), nil
}

func (n *node) del(ctx context.Context, pod *corev1.Pod) error {
	_, err := n.api.DelContext(ctx, operations.NewDelParams().WithArgs(attachment(pod)))
	return err
}

func attachment(pod *corev1.Pod) *models.Attachment {
	return &models.Attachment{ContainerID: ptr.To("ctr-" + string(pod.UID)), IfName: ptr.To("eth0"),
		PodNamespace: ptr.To(pod.Namespace), PodName: ptr.To(pod.Name), PodUID: string(pod.UID), NetNamespace: "/var/run/netns/test"}
}

// startController runs the grant controller until the test ends.
func startController(t *testing.T, e *testenv.Env) {
	t.Helper()
	e.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		return grants.SetupWithManager(ctx, mgr, grants.Params{})
	})
}

// TestNodeGrantsExactFit: four agents and the grant controller share a pool of exactly
// 40 addresses. 40 pods (10 per node) get 40 distinct addresses, every ADD first time.
// Then node 0 deletes 5 of its pods and node 1 gets 5 new ones: node 1 has nothing
// left, so the controller asks node 0 for its unused addresses, node 0 gives them
// back, and node 1's ADDs succeed. Node 2's agent is stopped and started again and
// goes on serving. At the end every endpoint's address is distinct and granted to the
// endpoint's node.
func TestNodeGrantsExactFit(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const pool, subnet = "grants-exact", "10.80.0.0/24"
	sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: pool},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: subnet, IPs: []v2beta1.IPOrRange{"10.80.0.10-10.80.0.49"}, Default: ptr.To(true)}}
	if err := e.Client.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	// A default pool: later tests' pods must not find it.
	t.Cleanup(func() { _ = e.Client.Delete(context.Background(), sp) })
	// The switch itself is the controller's (TestGrantsSwitchesPools); here the pool
	// starts in Grants mode.
	sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Allocation: v2beta1.AllocationGrants}
	if err := e.Client.Status().Update(ctx, sp); err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "grants-exact"}}
	if err := e.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "default"}}); err != nil {
		t.Fatal(err)
	}
	startController(t, e)
	nodes := make([]*node, 4)
	for i := range nodes {
		dir, err := os.MkdirTemp("", "grants")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		n := &node{name: fmt.Sprintf("grants-node-%d", i), socket: filepath.Join(dir, "a.sock")}
		n.api = api.NewUnixClient(n.socket)
		if err := e.Client.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name}}); err != nil {
			t.Fatal(err)
		}
		n.start(t, e)
		t.Cleanup(func() { n.halt(t) })
		nodes[i] = n
	}
	newPod := func(name, nodeName string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name},
			Spec: corev1.PodSpec{NodeName: nodeName, AutomountServiceAccountToken: ptr.To(false), Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}}}}
		if err := e.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	type held struct {
		pod  *corev1.Pod
		node *node
	}
	var mu sync.Mutex
	holders := map[netip.Addr]held{}
	addAll := func(pods []*corev1.Pod, on []*node) {
		var wg sync.WaitGroup
		errs := make([]error, len(pods))
		for i, p := range pods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, err := on[i].add(ctx, p)
				if err != nil {
					errs[i] = err
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if h, dup := holders[a]; dup {
					errs[i] = fmt.Errorf("%s given to %s/%s on %s while %s holds it", a, p.Namespace, p.Name, on[i].name, h.pod.Name)
					return
				}
				holders[a] = held{p, on[i]}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	}

	var pods []*corev1.Pod
	var on []*node
	for i := range 40 {
		n := nodes[i%4]
		pods = append(pods, newPod(fmt.Sprintf("p%d", i), n.name))
		on = append(on, n)
	}
	addAll(pods, on)

	// Node 0 lets 5 pods go; node 1 needs 5 more.
	var freed int
	for i, p := range pods {
		if on[i] != nodes[0] || freed == 5 {
			continue
		}
		if err := on[i].del(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := e.Client.Delete(ctx, p); err != nil {
			t.Fatal(err)
		}
		for a, h := range holders {
			if h.pod == p {
				delete(holders, a)
			}
		}
		freed++
	}
	var more []*corev1.Pod
	var moreOn []*node
	for i := range 5 {
		more = append(more, newPod(fmt.Sprintf("q%d", i), nodes[1].name))
		moreOn = append(moreOn, nodes[1])
	}
	addAll(more, moreOn)

	// Node 2's agent restarts and goes on serving its pods: a repeated ADD gets the
	// same address.
	nodes[2].halt(t)
	nodes[2].start(t, e)
	for a, h := range holders {
		if h.node != nodes[2] {
			continue
		}
		got, err := nodes[2].add(ctx, h.pod)
		if err != nil || got != a {
			t.Fatalf("repeated ADD of %s after the restart: %s, %v; want %s", h.pod.Name, got, err, a)
		}
	}

	// Every endpoint's address is distinct and granted to the endpoint's node.
	var eps v2beta1.SpiderEndpointList
	if err := e.Client.List(ctx, &eps, client.InNamespace(ns.Name)); err != nil {
		t.Fatal(err)
	}
	var blocks ipamv1.IPBlockList
	if err := e.Client.List(ctx, &blocks, client.MatchingLabels{ipam.BlockPoolLabel: pool}); err != nil {
		t.Fatal(err)
	}
	grantedTo := map[netip.Addr]string{}
	for i := range blocks.Items {
		g, err := ipam.GrantBlockOf(netip.MustParsePrefix(subnet), &blocks.Items[i])
		if err != nil {
			t.Fatal(err)
		}
		for a, n := range g.Owners {
			grantedTo[a] = n
		}
	}
	seen := map[netip.Addr]string{}
	for _, se := range eps.Items {
		p, err := netip.ParsePrefix(*se.Status.Current.IPs[0].IPv4)
		if err != nil {
			t.Fatal(err)
		}
		a := p.Addr()
		if other, dup := seen[a]; dup {
			t.Errorf("%s is in the endpoints of %s and %s", a, other, se.Name)
		}
		seen[a] = se.Name
		if grantedTo[a] != se.Status.Current.Node {
			t.Errorf("%s of %s (node %s) is granted to %q", a, se.Name, se.Status.Current.Node, grantedTo[a])
		}
	}
	if len(seen) != 40 {
		t.Errorf("%d endpoints hold addresses, want 40", len(seen))
	}
}
