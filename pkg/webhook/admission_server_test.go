package webhook_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/internal/webhooktest"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// TestAutoPoolHandEditsAgainstTheAPIServer: through a real API server, an auto pool's
// spec.ips and spec.podAffinity edited by another user than the one the webhooks run as
// are refused, the ips refusal naming the annotation that sizes the pool, and nothing is
// stored; the same edits made as the webhooks' own user, which is the auto-pool
// controller's (one process, one ServiceAccount), are admitted; other edits of the
// auto pool by the other user are admitted too. The other user is a cluster admin
// (system:masters), so the refusals come from the rule, not from RBAC.
func TestAutoPoolHandEditsAgainstTheAPIServer(t *testing.T) {
	e := testenv.Require(t, env)
	webhooktest.Serve(t, e, nil) // as e.Config's user, as the test's controller edits below
	ctx := context.Background()
	handCfg := rest.CopyConfig(e.Config)
	handCfg.Impersonate = rest.ImpersonationConfig{UserName: "alice", Groups: []string{"system:masters", "system:authenticated"}}
	hand, err := client.New(handCfg, client.Options{Scheme: e.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	controller := e.Client

	app := ipam.Application{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "default", Name: "web", UID: "0f6a1c52-9a2b-4c1d-8e3f-52c0d1e2f3a4"}
	p := pool(ipam.AutoPoolName(4, app, "eth0"), "10.95.1.0/24", ips("10.95.1.10-10.95.1.14"), func(p *v2beta1.SpiderIPPool) {
		p.Labels = ipam.AutoPoolLabels(app, "wh-auto", "eth0", 4, true)
		p.Spec.PodAffinity = ipam.AutoPoolAffinity(app)
	})
	if err := controller.Create(ctx, p); err != nil {
		t.Fatalf("the auto pool as the controller makes it was refused: %v", err)
	}
	t.Cleanup(func() {
		_ = e.Client.Patch(context.Background(), p, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
		_ = e.Client.Delete(context.Background(), p)
	})
	other := ipam.AutoPoolAffinity(ipam.Application{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "default", Name: "db"})

	for _, tt := range []struct {
		name   string
		by     client.Client
		change func(*v2beta1.SpiderIPPool)
		refuse []string // causes; none: admitted
		msg    string   // in the refusal
	}{
		{"a hand resize", hand, func(p *v2beta1.SpiderIPPool) { p.Spec.IPs = []v2beta1.IPOrRange{"10.95.1.10-10.95.1.20"} },
			[]string{"spec.ips: FieldValueForbidden"}, "edit the ipam.spidernet.io/ippool-ip-number annotation of the workload's pod template instead"},
		{"a hand podAffinity", hand, func(p *v2beta1.SpiderIPPool) { p.Spec.PodAffinity = other },
			[]string{"spec.podAffinity: FieldValueForbidden"}, "to the pods of Deployment default/web"},
		{"hand edits of other fields", hand, func(p *v2beta1.SpiderIPPool) {
			p.Labels["team"] = "net"
			p.Spec.ExcludeIPs = []v2beta1.IPOrRange{"10.95.1.12"}
		}, nil, ""},
		{"the controller's resize", controller, func(p *v2beta1.SpiderIPPool) { p.Spec.IPs = []v2beta1.IPOrRange{"10.95.1.10-10.95.1.16"} }, nil, ""},
		{"the controller's podAffinity", controller, func(p *v2beta1.SpiderIPPool) { p.Spec.PodAffinity = other }, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := &v2beta1.SpiderIPPool{}
			if err := e.Client.Get(ctx, client.ObjectKeyFromObject(p), before); err != nil {
				t.Fatal(err)
			}
			edited := before.DeepCopy()
			tt.change(edited)
			err := tt.by.Update(ctx, edited)
			after := &v2beta1.SpiderIPPool{}
			if err := e.Client.Get(ctx, client.ObjectKeyFromObject(p), after); err != nil {
				t.Fatal(err)
			}
			if tt.refuse == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !slices.Equal(after.Spec.IPs, edited.Spec.IPs) || after.Spec.PodAffinity.String() != edited.Spec.PodAffinity.String() {
					t.Fatalf("stored ips %v podAffinity %v, want the edit's %v %v", after.Spec.IPs, after.Spec.PodAffinity, edited.Spec.IPs, edited.Spec.PodAffinity)
				}
				return
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want Invalid saying %q", err, tt.msg)
			}
			if got := causes(err); !slices.Equal(got, tt.refuse) {
				t.Fatalf("refused with %v, want %v", got, tt.refuse)
			}
			if after.ResourceVersion != before.ResourceVersion {
				t.Fatalf("a refused edit was stored: ips %v podAffinity %v", after.Spec.IPs, after.Spec.PodAffinity)
			}
		})
	}
}

// TestRouteDstCanonicalisedAgainstTheAPIServer: manifests written for SpiderPool with a
// route destination that has host bits set (192.168.26.5/24), which SpiderPool accepts,
// apply unchanged with kubectl, a SpiderSubnet's and a SpiderIPPool's alike, on create
// and on update: the destination is stored as its network (192.168.26.0/24) and kubectl
// prints the webhook's warning saying so.
func TestRouteDstCanonicalisedAgainstTheAPIServer(t *testing.T) {
	e := testenv.Require(t, env)
	webhooktest.Serve(t, e, nil)
	ctx := context.Background()
	const manifest = `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderSubnet
metadata:
  name: wh-route-subnet
spec:
  subnet: fd00:97::/64
  ips: ["fd00:97::10-fd00:97::20"]
  routes:
    - dst: fd00:98::5/64
      gw: fd00:97::1
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: wh-route-pool
spec:
  subnet: 10.95.2.0/24
  ips: ["10.95.2.10-10.95.2.20"]
  gateway: 10.95.2.1
  routes:
    - dst: 10.96.0.0/12
      gw: 10.95.2.1
    - dst: 192.168.26.5/24
      gw: 10.95.2.1
`
	t.Cleanup(func() {
		p := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "wh-route-pool"}}
		_ = e.Client.Patch(context.Background(), p, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
		_ = e.Client.Delete(context.Background(), p)
		_ = e.Client.Delete(context.Background(), &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: "wh-route-subnet"}})
	})
	check := func(t *testing.T, subnetDst string, poolDsts ...string) {
		t.Helper()
		s := &v2beta1.SpiderSubnet{}
		if err := e.Client.Get(ctx, client.ObjectKey{Name: "wh-route-subnet"}, s); err != nil {
			t.Fatal(err)
		}
		if len(s.Spec.Routes) != 1 || s.Spec.Routes[0].Dst != subnetDst {
			t.Errorf("SpiderSubnet routes stored as %+v, want dst %s", s.Spec.Routes, subnetDst)
		}
		p := &v2beta1.SpiderIPPool{}
		if err := e.Client.Get(ctx, client.ObjectKey{Name: "wh-route-pool"}, p); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range p.Spec.Routes {
			got = append(got, r.Dst)
		}
		if !slices.Equal(got, poolDsts) {
			t.Errorf("SpiderIPPool route destinations stored as %v, want %v", got, poolDsts)
		}
	}

	t.Run("create", func(t *testing.T) {
		stderr := kubectlApply(t, e, manifest)
		for _, w := range []string{
			"Warning: spec.routes[0].dst: fd00:98::5/64 has host bits set; stored as the network fd00:98::/64",
			"Warning: spec.routes[1].dst: 192.168.26.5/24 has host bits set; stored as the network 192.168.26.0/24",
		} {
			if !strings.Contains(stderr, w) {
				t.Errorf("kubectl printed %q, want the line %q", stderr, w)
			}
		}
		check(t, "fd00:98::/64", "10.96.0.0/12", "192.168.26.0/24")
	})
	t.Run("update", func(t *testing.T) {
		edited := strings.NewReplacer("fd00:98::5/64", "fd00:99::7/64", "192.168.26.5/24", "192.168.27.9/24").Replace(manifest)
		stderr := kubectlApply(t, e, edited)
		for _, w := range []string{
			"Warning: spec.routes[0].dst: fd00:99::7/64 has host bits set; stored as the network fd00:99::/64",
			"Warning: spec.routes[1].dst: 192.168.27.9/24 has host bits set; stored as the network 192.168.27.0/24",
		} {
			if !strings.Contains(stderr, w) {
				t.Errorf("kubectl printed %q, want the line %q", stderr, w)
			}
		}
		check(t, "fd00:99::/64", "10.96.0.0/12", "192.168.27.0/24")
	})
}

// kubectlApply applies a manifest with the repository's kubectl and returns what it
// printed on stderr, where the API server's warnings go.
func kubectlApply(t *testing.T, e *testenv.Env, manifest string) (stderr string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(e.BinDir, "kubectl"), "--kubeconfig", e.Kubeconfig, "apply", "-f", "-")
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(manifest), &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl apply: %v: %s%s", err, out.String(), errOut.String())
	}
	return errOut.String()
}
