package autopool

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/event"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// Pure tests of the pieces the reconciler is made of; the integration tests run it
// against an API server.

func TestJobPods(t *testing.T) {
	tests := []struct {
		name                     string
		parallelism, completions *int32
		want                     int64
	}{
		{"neither: one pod", nil, nil, 1},
		{"work queue: parallelism", ptr.To[int32](4), nil, 4},
		{"fixed count: completions", nil, ptr.To[int32](3), 3},
		{"both: completions, as SpiderPool", ptr.To[int32](2), ptr.To[int32](5), 5},
		{"zero completions: 1", ptr.To[int32](2), ptr.To[int32](0), 1},
		{"zero parallelism: 1", ptr.To[int32](0), nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jobPods(tt.parallelism, tt.completions); got != tt.want {
				t.Errorf("jobPods = %d, want %d", got, tt.want)
			}
		})
	}
	if replicasOf(nil) != 1 || replicasOf(ptr.To[int32](0)) != 0 || replicasOf(ptr.To[int32](7)) != 7 {
		t.Error("replicasOf: nil is 1, else the value")
	}
}

func TestManagedBy(t *testing.T) {
	owned := func(apiVersion, kind string) metav1.ObjectMeta {
		return metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: "top", Controller: ptr.To(true)}}}
	}
	rs := builtinKinds()[1]
	tests := []struct {
		name string
		meta metav1.ObjectMeta
		want string
	}{
		{"bare", metav1.ObjectMeta{}, ""},
		{"a Deployment's", owned("apps/v1", "Deployment"), "Deployment top"},
		{"another group's Deployment", owned("example.com/v1", "Deployment"), ""},
		{"another kind's (Argo Rollout)", owned("argoproj.io/v1alpha1", "Rollout"), ""},
		{"an owner that is not the controller", metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "top"}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := rs.workload(&appsv1.ReplicaSet{ObjectMeta: tt.meta})
			if err != nil {
				t.Fatal(err)
			}
			if w.managedBy != tt.want {
				t.Errorf("managedBy = %q, want %q", w.managedBy, tt.want)
			}
		})
	}
}

func TestThirdPartyKindRead(t *testing.T) {
	k := thirdPartyKind(schema.GroupVersionKind{Group: "apps.kruise.io", Version: "v1alpha1", Kind: "CloneSet"})
	obj := k.newObject()
	u := obj.(interface{ UnstructuredContent() map[string]any })
	u.UnstructuredContent()["spec"] = map[string]any{"replicas": int64(4), "template": map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{ipam.AnnoPodIPPoolIPNumber: "2"}}}}
	obj.SetNamespace("ns")
	obj.SetName("web")
	obj.SetUID("u-1")
	w, err := k.workload(obj)
	if err != nil {
		t.Fatal(err)
	}
	want := ipam.Application{APIVersion: "apps.kruise.io/v1alpha1", Kind: "CloneSet", Namespace: "ns", Name: "web", UID: "u-1"}
	if w.app != want || w.replicas != 4 || w.annotations[ipam.AnnoPodIPPoolIPNumber] != "2" {
		t.Errorf("workload %+v", w)
	}
	if k.controllerName() != "autopool-cloneset.apps.kruise.io" {
		t.Errorf("controller name %q", k.controllerName())
	}
	if !k.owns(ipam.AutoPoolLabels(want, "s", "eth0", 4, true)) || k.owns(map[string]string{ipam.LabelOwnerAppKind: "CloneSet", ipam.LabelOwnerAppGV: "apps_v1"}) {
		t.Error("owns: kind and group must both match")
	}
}

func TestWantsOf(t *testing.T) {
	req, _, err := ipam.AutoPoolRequestOf(map[string]string{
		ipam.AnnoPodSubnets: `[{"interface":"eth0","ipv4":["a4"],"ipv6":["a6"]},{"interface":"net1","ipv6":["b6"]}]`,
	}, 1)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		v4, v6 bool
		want   []want
	}{
		{"dual-stack", true, true, []want{{"eth0", 4, "a4"}, {"eth0", 6, "a6"}, {"net1", 6, "b6"}}},
		{"IPv4 only", true, false, []want{{"eth0", 4, "a4"}}},
		{"IPv6 only", false, true, []want{{"eth0", 6, "a6"}, {"net1", 6, "b6"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wantsOf(req, tt.v4, tt.v6); !slices.Equal(got, tt.want) {
				t.Errorf("wantsOf = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPlanPools(t *testing.T) {
	deploy := builtinKinds()[0]
	app := ipam.Application{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "ns", Name: "web", UID: "uid-new"}
	old := app
	old.UID = "uid-old"
	w4 := want{"eth0", 4, "s4"}
	pool := func(name string, a ipam.Application, subnet string, reclaim bool) v2beta1.SpiderIPPool {
		return v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: ipam.AutoPoolLabels(a, subnet, "eth0", 4, reclaim)}}
	}
	terminating := pool("going", app, "s4", true)
	terminating.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}
	sts := app
	sts.Kind = "StatefulSet"
	elsewhere := app
	elsewhere.Namespace = "other"
	tests := []struct {
		name       string
		pools      []v2beta1.SpiderIPPool
		wants      []want
		keep       []string // "" for none
		wantRemove []string
	}{
		{name: "none: create", wants: []want{w4}, keep: []string{""}},
		{name: "its own pool", pools: []v2beta1.SpiderIPPool{pool("own", app, "s4", true)}, wants: []want{w4}, keep: []string{"own"}},
		{name: "a kept pool of an earlier application is adopted",
			pools: []v2beta1.SpiderIPPool{pool("kept", old, "s4", false)}, wants: []want{w4}, keep: []string{"kept"}},
		{name: "its own beats a kept one, which stays",
			pools: []v2beta1.SpiderIPPool{pool("a-kept", old, "s4", false), pool("own", app, "s4", true)}, wants: []want{w4}, keep: []string{"own"}},
		{name: "a reclaimable pool of an earlier application goes",
			pools: []v2beta1.SpiderIPPool{pool("stale", old, "s4", true)}, wants: []want{w4}, keep: []string{""}, wantRemove: []string{"stale"}},
		{name: "a pool of another subnet goes when reclaimable",
			pools: []v2beta1.SpiderIPPool{pool("moved", app, "s-old", true), pool("kept-old", app, "s-older", false)},
			wants: []want{w4}, keep: []string{""}, wantRemove: []string{"moved"}},
		{name: "no annotation any more: reclaimable pools go",
			pools: []v2beta1.SpiderIPPool{pool("own", app, "s4", true), pool("kept", app, "s4", false)}, wantRemove: []string{"own"}},
		{name: "pools being deleted, of other kinds or namespaces are not its",
			pools: []v2beta1.SpiderIPPool{terminating, pool("sts", sts, "s4", true), pool("elsewhere", elsewhere, "s4", true), {ObjectMeta: metav1.ObjectMeta{Name: "manual"}}},
			wants: []want{w4}, keep: []string{""}},
		{name: "a duplicate goes",
			pools: []v2beta1.SpiderIPPool{pool("own-a", app, "s4", true), pool("own-b", app, "s4", true)}, wants: []want{w4}, keep: []string{"own-a"}, wantRemove: []string{"own-b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := planPools(tt.pools, deploy, app, tt.wants)
			var keep, remove []string
			for _, p := range plan.keep {
				if p == nil {
					keep = append(keep, "")
				} else {
					keep = append(keep, p.Name)
				}
			}
			for _, p := range plan.remove {
				remove = append(remove, p.Name)
			}
			if !slices.Equal(keep, tt.keep) || !slices.Equal(remove, tt.wantRemove) {
				t.Errorf("keep %q remove %q, want keep %q remove %q", keep, remove, tt.keep, tt.wantRemove)
			}
		})
	}
}

func TestCurrentAndPoolName(t *testing.T) {
	app := ipam.Application{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "ns", Name: "web", UID: "0b7c1f9e-452e737e5e12"}
	req := ipam.AutoPoolRequest{IPNumber: ipam.IPNumber{N: 1, Flexible: true}, Reclaim: true}
	w := want{"eth0", 4, "s4"}
	subnet := &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: "s4", UID: "subnet-uid"},
		Spec: v2beta1.SubnetSpec{Subnet: "10.0.0.0/24", Gateway: ptr.To[v2beta1.IPAddress]("10.0.0.1"), Routes: []v2beta1.Route{{Dst: "10.9.0.0/16", Gw: "10.0.0.1"}}}}
	ips, _ := ip.ParseRanges([]string{"10.0.0.10-10.0.0.12"})
	p := newPool(ipam.AutoPoolName(4, app, "eth0"), subnet, 4, ipam.AutoPoolResize{IPs: ips})
	if current(p, app, req, w, 3) {
		t.Error("a pool without labels is current")
	}
	dress(p, app, req, w)
	if !current(p, app, req, w, 3) {
		t.Errorf("a dressed pool of 3 is not current: %+v", p)
	}
	if current(p, app, req, w, 4) {
		t.Error("a pool of 3 is current for 4")
	}
	other := app
	other.UID = "x-99999"
	if current(p, other, req, w, 3) {
		t.Error("a pool of another UID is current")
	}
	if *p.Spec.Gateway != "10.0.0.1" || len(p.Spec.Routes) != 1 || *p.Spec.IPVersion != 4 || p.OwnerReferences[0].UID != "subnet-uid" ||
		!slices.Equal(tokensOf(p.Spec.IPs), []string{"10.0.0.10-10.0.0.12"}) {
		t.Errorf("new pool %+v", p)
	}

	taken := []v2beta1.SpiderIPPool{{ObjectMeta: metav1.ObjectMeta{Name: "auto4-web-eth0-452e7"}}}
	alt := poolName(taken, app, w)
	if alt == "auto4-web-eth0-452e7" || len(alt) != len("auto4-web-xxxxx-eth0-452e7") {
		t.Errorf("poolName with the name taken = %q", alt)
	}
	if got := poolName(nil, app, w); got != "auto4-web-eth0-452e7" {
		t.Errorf("poolName = %q", got)
	}
	if got := poolName(append(taken, v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: alt}}), app, w); got != "" {
		t.Errorf("poolName with both taken = %q", got)
	}
}

func TestPoolChange(t *testing.T) {
	base := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "p", ResourceVersion: "1", Generation: 1, Labels: map[string]string{"a": "1"}}}
	status := base.DeepCopy()
	status.ResourceVersion = "2"
	spec := status.DeepCopy()
	spec.Generation = 2
	labels := status.DeepCopy()
	labels.Labels = map[string]string{"a": "2"}
	deleting := status.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}
	tests := []struct {
		name string
		new  *v2beta1.SpiderIPPool
		want bool
	}{
		{"resync", base.DeepCopy(), true},
		{"status only (an allocation)", status, false},
		{"spec", spec, true},
		{"labels", labels, true},
		{"deletion", deleting, true},
	}
	for _, tt := range tests {
		if got := poolChange().Update(event.UpdateEvent{ObjectOld: base, ObjectNew: tt.new}); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRetryOnRace(t *testing.T) {
	gr := schema.GroupResource{Group: v2beta1.GroupName, Resource: "spiderippools"}
	b := wait.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 4}
	boom := errors.New("boom")
	tests := []struct {
		name      string
		errs      []error // returned by successive calls; nil after the list
		wantCalls int
		wantErr   func(error) bool // nil: no error
	}{
		{"success", nil, 1, nil},
		{"conflicts, then success", []error{apierrors.NewConflict(gr, "p", boom), apierrors.NewAlreadyExists(gr, "p")}, 3, nil},
		{"webhook refusal, then success", []error{apierrors.NewInvalid(schema.GroupKind{Group: v2beta1.GroupName, Kind: "SpiderIPPool"}, "p", nil)}, 2, nil},
		{"another error: no retry", []error{boom}, 1, func(err error) bool { return errors.Is(err, boom) }},
		{"races every time: gives up with the last conflict", []error{
			apierrors.NewConflict(gr, "p", boom), apierrors.NewConflict(gr, "p", boom), apierrors.NewConflict(gr, "p", boom), apierrors.NewConflict(gr, "p", boom),
		}, 4, apierrors.IsConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := retryOnRace(context.Background(), b, func() error {
				calls++
				if calls <= len(tt.errs) {
					return tt.errs[calls-1]
				}
				return nil
			})
			if calls != tt.wantCalls || (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !tt.wantErr(err)) {
				t.Errorf("calls %d err %v, want %d calls", calls, err, tt.wantCalls)
			}
		})
	}
}
