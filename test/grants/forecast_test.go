package grants

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/client/operations"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestNodeGrantsColdNodeForecast: a node that has never allocated asks for addresses
// for the pods bound to it before their first ADD, so that the ADD finds its grant
// there. Both agents hand out only what is already granted (a grant wait of 1 ms: an
// ADD that has to wait for a round fails).
//   - Node "conf" has a CNI config folder whose config names the pool as its default:
//     its three unannotated pods are forecast, granted, and their ADDs succeed.
//   - Node "bare" has no config folder: its annotated pod (ipam.spidernet.io/ippool)
//     is forecast and succeeds; its unannotated pod cannot be placed before its ADD,
//     whose wait of 1 ms fails. That is also what node "conf" would do without the
//     forecast, so the test fails when the forecast does not work.
func TestNodeGrantsColdNodeForecast(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const pool = "grants-forecast"
	grantsPool(ctx, t, e, pool, "10.86.0.0/24", "10.86.0.10-10.86.0.49", false, nil)
	ns := podNamespace(ctx, t, e, "grants-forecast")
	confDir := t.TempDir()
	conf := `{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"bridge","ipam":{"type":"orbweaver","default_ipv4_ippool":["` + pool + `"]}}]}`
	if err := os.WriteFile(filepath.Join(confDir, "10-net.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	startController(t, e)
	conf1 := startTunedNode(ctx, t, e, "grants-forecast-conf", func(c *agent.Config) { c.CNIConfDir, c.GrantWait = confDir, time.Millisecond })
	bare := startTunedNode(ctx, t, e, "grants-forecast-bare", func(c *agent.Config) { c.GrantWait = time.Millisecond })

	var confPods []*corev1.Pod
	for i := range 3 {
		confPods = append(confPods, boundPod(ctx, t, e, ns.Name, fmt.Sprintf("conf-%d", i), conf1.name, nil, nil))
	}
	named := boundPod(ctx, t, e, ns.Name, "bare-named", bare.name, map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["` + pool + `"]}`}, nil)
	unnamed := boundPod(ctx, t, e, ns.Name, "bare-unnamed", bare.name, nil, nil)

	// The grants come before any ADD.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, b := 0, 0
		for _, n := range grantedTo(t, e, pool, "10.86.0.0/24") {
			switch n {
			case conf1.name:
				c++
			case bare.name:
				b++
			}
		}
		if c >= 3 && b >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("before any ADD, %d addresses are granted to %s (3 pods forecast) and %d to %s (1 pod forecast); want at least 3 and 1", c, conf1.name, b, bare.name)
		}
		time.Sleep(100 * time.Millisecond)
	}
	seen := map[netip.Addr]string{}
	for _, p := range confPods {
		a, err := addWithDefaults(ctx, conf1, p, pool)
		if err != nil {
			t.Fatalf("a forecast pod's ADD: %v", err)
		}
		if other, dup := seen[a]; dup {
			t.Fatalf("%s went to %s and %s", a, other, p.Name)
		}
		seen[a] = p.Name
	}
	if _, err := bare.add(ctx, named); err != nil {
		t.Fatalf("an annotated pod's ADD on a node with no CNI config folder: %v", err)
	}
	_, err := addWithDefaults(ctx, bare, unnamed, pool)
	if err == nil || !strings.Contains(err.Error(), "pool exhausted") {
		t.Fatalf("an unannotated pod on a node whose default pool is unknown before its ADD: got %v, want a failed wait (pool exhausted) after 1 ms", err)
	}
}

// startTunedNode creates a Node and starts its agent with tune applied to its config.
func startTunedNode(ctx context.Context, t *testing.T, e *testenv.Env, name string, tune func(*agent.Config)) *node {
	t.Helper()
	dir, err := os.MkdirTemp("", "grants")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	nd := &node{name: name, socket: filepath.Join(dir, "a.sock"), tune: tune}
	nd.api = api.NewUnixClient(nd.socket)
	if err := e.Client.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nd.name}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.Client.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nd.name}})
	})
	nd.start(t, e)
	t.Cleanup(func() { nd.halt(t) })
	return nd
}

// addWithDefaults is an ADD whose CNI config names pool as the default, as the
// runtime passes it.
func addWithDefaults(ctx context.Context, n *node, pod *corev1.Pod, pool string) (netip.Addr, error) {
	ok, err := n.api.AddContext(ctx, operations.NewAddParams().WithArgs(&models.AddArgs{Attachment: attachment(pod), DefaultIPv4IPPool: []string{pool}}))
	if err != nil {
		var bad *operations.AddDefault
		if errors.As(err, &bad) && bad.Payload != nil && bad.Payload.Message != nil {
			return netip.Addr{}, fmt.Errorf("ADD %s/%s on %s: %s", pod.Namespace, pod.Name, n.name, *bad.Payload.Message)
		}
		return netip.Addr{}, err
	}
	p, err := netip.ParsePrefix(*ok.Payload.Ips[0].Address)
	return p.Addr(), err
}
