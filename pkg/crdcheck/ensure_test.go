package crdcheck

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

// installCRDs installs (or replaces) the CRDs in dir.
func installCRDs(t *testing.T, e *testenv.Env, dir string) {
	t.Helper()
	if _, err := envtest.InstallCRDs(e.Config, envtest.CRDInstallOptions{Paths: []string{dir}, ErrorIfPathMissing: true}); err != nil {
		t.Fatalf("install the CRDs of %s: %v", dir, err)
	}
}

// TestEnsure, against a real API server: with orbweaver's CRDs Ensure passes; with
// SpiderPool's in their place (the API server then truly prunes spec.orbweaver) it
// refuses, naming each CRD's gaps and the command to run, and records one Warning event
// per CRD, patched rather than repeated by a second refusal; once the command it names
// (kubectl apply --server-side --force-conflicts) has applied orbweaver's CRDs, it passes.
func TestEnsure(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p := Params{Client: e.Client, Component: "orbweaver-test", Host: "node-a", Now: func() time.Time { return clock }}

	if err := Ensure(ctx, p); err != nil {
		t.Fatalf("with orbweaver's CRDs: %v", err)
	}

	installCRDs(t, e, spiderPoolCRDs)
	t.Cleanup(func() { installCRDs(t, e, orbweaverCRDs) })

	// The premise: SpiderPool's schema drops orbweaver's fields, silently.
	testenv.WaitFor(t, "SpiderPool's schema to prune spec.orbweaver", func() (bool, error) {
		sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{GenerateName: "pruned-"}, Spec: v2beta1.IPPoolSpec{
			Subnet: "10.99.0.0/24", IPs: []v2beta1.IPOrRange{"10.99.0.10"},
			Orbweaver: &v2beta1.IPPoolOrbweaverSpec{ReclaimPolicy: ptrTo(v2beta1.ReclaimNever)},
		}}
		if err := e.Client.Create(ctx, sp); err != nil {
			return false, err
		}
		defer func() { _ = e.Client.Delete(ctx, sp) }()
		stored := &v2beta1.SpiderIPPool{}
		if err := e.Client.Get(ctx, client.ObjectKeyFromObject(sp), stored); err != nil {
			return false, err
		}
		return stored.Spec.Orbweaver == nil, nil
	})

	err := Ensure(ctx, p)
	if !errors.Is(err, ErrSchema) {
		t.Fatalf("with SpiderPool's CRDs: Ensure = %v, want ErrSchema", err)
	}
	t.Logf("the refusal: %v", err)
	for _, want := range []string{
		"orbweaver-test refuses to start",
		"spiderippools.spiderpool.spidernet.io lacks spec.vlan, spec.orbweaver, status.orbweaver, status.conditions",
		"spiderendpoints.spiderpool.spidernet.io lacks status.current.orbweaver, the selectable field .status.current.node",
		"spidersubnets.spiderpool.spidernet.io lacks spec.vlan, spec.orbweaver, status.orbweaver, status.conditions",
		"kubectl apply --server-side --force-conflicts -f charts/orbweaver/crds/",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "spiderreservedips") {
		t.Errorf("the refusal names spiderreservedips, whose schema SpiderPool and orbweaver share:\n%v", err)
	}

	events := func() []corev1.Event {
		t.Helper()
		var l corev1.EventList
		if err := e.Client.List(ctx, &l, client.InNamespace(metav1.NamespaceDefault)); err != nil {
			t.Fatal(err)
		}
		var out []corev1.Event
		for _, ev := range l.Items {
			if ev.InvolvedObject.Kind == "CustomResourceDefinition" && ev.Reason == EventReason {
				out = append(out, ev)
			}
		}
		return out
	}
	got := map[string]corev1.Event{}
	for _, ev := range events() {
		got[ev.InvolvedObject.Name] = ev
	}
	for _, crd := range []string{"spiderippools", "spiderendpoints", "spidersubnets"} {
		ev, ok := got[crd+".spiderpool.spidernet.io"]
		switch {
		case !ok:
			t.Errorf("no %s event on the CRD %s.spiderpool.spidernet.io; events: %v", EventReason, crd, got)
		case ev.Type != corev1.EventTypeWarning || ev.Source.Component != "orbweaver-test" || ev.InvolvedObject.UID == "" ||
			!strings.Contains(ev.Message, "orbweaver-test refuses to start") || !strings.Contains(ev.Message, Fix):
			t.Errorf("the event on %s: %s %s from %s (uid %q): %s", crd, ev.Type, ev.Reason, ev.Source.Component, ev.InvolvedObject.UID, ev.Message)
		}
	}
	if len(got) != 3 {
		t.Errorf("events on %d CRDs, want 3: %v", len(got), got)
	}

	clock = clock.Add(time.Minute)
	if err := Ensure(ctx, p); !errors.Is(err, ErrSchema) {
		t.Fatalf("again: Ensure = %v, want ErrSchema", err)
	}
	again := events()
	if len(again) != 3 {
		t.Errorf("a second refusal made %d events, want the same 3", len(again))
	}
	for _, ev := range again {
		if !ev.LastTimestamp.Time.Equal(clock) {
			t.Errorf("the event on %s was not patched: last %s, want %s", ev.InvolvedObject.Name, ev.LastTimestamp, clock)
		}
	}

	// The fix the refusal names, as it says it.
	if out, err := e.Kubectl(ctx, "apply", "--server-side", "--force-conflicts", "-f", orbweaverCRDs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if err := Ensure(ctx, p); err != nil {
		t.Fatalf("with orbweaver's CRDs applied over SpiderPool's: %v", err)
	}
}

// TestEnsureOtherFailures: a CRD that is not installed is a refusal too; a client that may
// not read CRDs gets an error that says which permission is missing, not ErrSchema.
func TestEnsureOtherFailures(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	missing := Kind{CRD: "spiderfoos.spiderpool.spidernet.io", Version: "v2beta1", Object: v2beta1.SpiderIPPool{}}
	err := Ensure(ctx, Params{Client: e.Client, Component: "orbweaver-test", Kinds: []Kind{missing}})
	if !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), "spiderfoos.spiderpool.spidernet.io is not installed") {
		t.Errorf("a missing CRD: Ensure = %v, want ErrSchema naming it", err)
	}

	cfg := rest.CopyConfig(e.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "nobody"}
	c, err := client.New(cfg, client.Options{Scheme: e.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	err = Ensure(ctx, Params{Client: c, Component: "orbweaver-test"})
	if err == nil || errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), "needs get on customresourcedefinitions") {
		t.Errorf("without permission: Ensure = %v, want the missing permission named", err)
	}
}
