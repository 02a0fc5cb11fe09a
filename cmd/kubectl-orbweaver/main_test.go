package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	corev1 "k8s.io/api/core/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/inspect"
	"github.com/orbweaver-ipam/orbweaver/pkg/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(testenv.Main(m, &env))
}

// TestCommands runs the plugin's commands against a real API server through a
// kubeconfig, as kubectl runs a plugin: `ipam show --ip` names a pod's holder (table and
// JSON) and fails for an address of no pool; `spiderpool export` prints, and writes
// nothing without --write; an unknown command fails.
func TestCommands(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "cli"},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: "10.61.0.0/24", IPs: []v2beta1.IPOrRange{"10.61.0.1-10.61.0.9"}}}
	if err := e.Client.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cli"}}); err != nil {
		t.Fatal(err)
	}
	se := &v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "cli", Name: "web-0"}}
	se.Status.Current = v2beta1.PodIPAllocation{UID: "u-web-0", Node: "node-a",
		IPs:       []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv4: ptr.To("10.61.0.4/24"), IPv4Pool: ptr.To("cli")}},
		Orbweaver: &v2beta1.PodAllocationOrbweaver{ContainerID: "0123456789abcdef0123"}}
	se.Status.OwnerControllerType, se.Status.OwnerControllerName = "Pod", "web-0"
	if err := e.Client.Create(ctx, se); err != nil {
		t.Fatal(err)
	}
	kc := "--kubeconfig=" + e.Kubeconfig

	var out strings.Builder
	if err := run(ctx, []string{"ipam", "show", "--ip", "10.61.0.4", kc}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"POOL", "cli", "Held", "cli/web-0", "node-a", "eth0", "0123456789ab"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("ipam show lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(ctx, []string{"ipam", "show", "--ip", "10.61.0.5", "-o", "json", kc}, &out); err != nil {
		t.Fatal(err)
	}
	var hs []inspect.Holding
	if err := json.Unmarshal([]byte(out.String()), &hs); err != nil || len(hs) != 1 || hs[0].State != inspect.StateFree {
		t.Errorf("ipam show -o json of a free address: %v, %s", err, out.String())
	}
	if err := run(ctx, []string{"ipam", "show", "--ip", "192.0.2.1", kc}, &out); err == nil || !strings.Contains(err.Error(), "no pool") {
		t.Errorf("an address of no pool: %v", err)
	}
	if err := run(ctx, []string{"ipam", "show", "--ip", "not-an-ip", kc}, &out); err == nil {
		t.Error("--ip not-an-ip accepted")
	}

	out.Reset()
	if err := run(ctx, []string{"spiderpool", "export", "--pool", "cli", kc}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Nothing written") || !strings.Contains(out.String(), "cli ") {
		t.Errorf("export without --write:\n%s", out.String())
	}
	got := &v2beta1.SpiderIPPool{}
	if err := e.Client.Get(ctx, client.ObjectKey{Name: "cli"}, got); err != nil || got.Status.AllocatedIPs != nil {
		t.Errorf("export without --write wrote status.allocatedIPs: %v %v", err, got.Status.AllocatedIPs)
	}
	if err := run(ctx, []string{"nope"}, &out); err == nil {
		t.Error("an unknown command succeeded")
	}
}
