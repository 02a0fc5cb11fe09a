package autopool

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// TestSeed004 is the blog post's walk-through (seeds/004): SpiderSubnet nginx-subnet-v4,
// Deployment nginx with '+3' and 2 replicas gets exactly one pool of 5 addresses of the
// subnet, with SpiderPool's name, labels and podAffinity; it follows the replicas up,
// and down only by addresses no pod holds.
func TestSeed004(t *testing.T) {
	f := setup(t, Params{DefaultFlexibleIPNumber: 1})
	subnet := f.subnet("nginx-subnet-v4", "10.244.0.0/16", "10.244.100.0-10.244.100.255")
	d := deployment("nginx", 2, subnetAnno("nginx-subnet-v4", "+3"))
	f.create(d)

	pool := f.waitPool("Deployment", "nginx", sized(5))
	app := ipam.Application{APIVersion: "apps/v1", Kind: "Deployment", Namespace: f.ns, Name: "nginx", UID: string(d.UID)}
	if want := ipam.AutoPoolName(4, app, "eth0"); pool.Name != want {
		t.Errorf("pool name %q, want %q", pool.Name, want)
	}
	if !strings.HasPrefix(pool.Name, "auto4-nginx-eth0-") || len(pool.Name) != len("auto4-nginx-eth0-")+5 {
		t.Errorf("pool name %q is not auto4-nginx-eth0-<uid5>", pool.Name)
	}
	for k, v := range ipam.AutoPoolLabels(app, "nginx-subnet-v4", "eth0", 4, true) {
		if pool.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, pool.Labels[k], v)
		}
	}
	if !equality.Semantic.DeepEqual(pool.Spec.PodAffinity, ipam.AutoPoolAffinity(app)) {
		t.Errorf("podAffinity %v, want %v", pool.Spec.PodAffinity, ipam.AutoPoolAffinity(app))
	}
	if pool.Annotations[ipam.AnnoPodIPPoolIPNumber] != "+3" {
		t.Errorf("annotation %s = %q, want +3", ipam.AnnoPodIPPoolIPNumber, pool.Annotations[ipam.AnnoPodIPPoolIPNumber])
	}
	if pool.Spec.Subnet != "10.244.0.0/16" || pool.Spec.IPVersion == nil || *pool.Spec.IPVersion != 4 {
		t.Errorf("spec.subnet %s, ipVersion %v; want 10.244.0.0/16, 4", pool.Spec.Subnet, pool.Spec.IPVersion)
	}
	if got := tokensOf(pool.Spec.IPs); len(got) != 1 || got[0] != "10.244.100.0-10.244.100.4" {
		t.Errorf("spec.ips %q, want the lowest five addresses in range form", got)
	}
	if len(pool.Finalizers) != 1 || pool.Finalizers[0] != v2beta1.Finalizer {
		t.Errorf("finalizers %v, want [%s]", pool.Finalizers, v2beta1.Finalizer)
	}
	if refs := pool.OwnerReferences; len(refs) != 1 || refs[0].Kind != "SpiderSubnet" || refs[0].Name != "nginx-subnet-v4" || refs[0].UID != subnet.UID {
		t.Errorf("ownerReferences %v, want the SpiderSubnet", refs)
	}
	// The agent finds it as its selection does.
	top := ipam.TopController{APIVersion: "apps/v1", Kind: "Deployment", Namespace: f.ns, Name: "nginx"}
	var all v2beta1.SpiderIPPoolList
	if err := f.e.Client.List(f.ctx, &all); err != nil {
		t.Fatal(err)
	}
	if got := ipam.AutoPoolsFor(all.Items, top, "nginx-subnet-v4", "eth0", 4); len(got) != 1 || got[0] != pool.Name {
		t.Errorf("AutoPoolsFor = %v, want [%s]", got, pool.Name)
	}
	f.waitEvent("nginx", corev1.EventTypeNormal, ReasonCreated, pool.Name, "5 addresses")

	// Scale to 3: 6 addresses, the lowest free one added.
	f.update(d, func() { d.Spec.Replicas = ptr.To[int32](3) })
	pool = f.waitPool("Deployment", "nginx", sized(6))
	if got := poolIPs(t, &pool).String(); got != "10.244.100.0-10.244.100.5" {
		t.Errorf("after scaling to 3: %s", got)
	}

	// A pod holds the highest address; scale to 1: the pool shrinks to 4, giving back
	// free addresses only.
	f.hold(pool.Name, "10.244.100.5")
	f.update(d, func() { d.Spec.Replicas = ptr.To[int32](1) })
	pool = f.waitPool("Deployment", "nginx", sized(4))
	if got := poolIPs(t, &pool).String(); got != "10.244.100.0-10.244.100.2,10.244.100.5" {
		t.Errorf("after scaling to 1: %s, want the held 10.244.100.5 kept", got)
	}

	// Every address held; scale to 0: nothing can go, the event says why, and the pool
	// shrinks as soon as a pod releases one.
	f.hold(pool.Name, "10.244.100.0", "10.244.100.1", "10.244.100.2", "10.244.100.5")
	f.update(d, func() { d.Spec.Replicas = ptr.To[int32](0) })
	f.waitEvent("nginx", corev1.EventTypeNormal, ReasonShrinkPending, pool.Name, "keeps 1 addresses above the 3 wanted")
	if got := poolIPs(t, f.get(pool.Name)).Count(); got != ip.CountFromUint64(4) {
		t.Errorf("a shrink removed a held address: %s addresses", got)
	}
	f.hold(pool.Name, "10.244.100.0", "10.244.100.2", "10.244.100.5")
	pool = f.waitPool("Deployment", "nginx", sized(3))
	if got := poolIPs(t, &pool).String(); got != "10.244.100.0,10.244.100.2,10.244.100.5" {
		t.Errorf("after the release: %s", got)
	}

	// Each counter goes up just after its write lands, so wait for it.
	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"orbweaver_autopool_pools_created_total", map[string]string{"kind": "Deployment"}, 1},
		{"orbweaver_autopool_pools_resized_total", map[string]string{"kind": "Deployment", "direction": "grow"}, 1},
		{"orbweaver_autopool_pools_resized_total", map[string]string{"kind": "Deployment", "direction": "shrink"}, 2},
	} {
		f.waitCounter(c.name, c.labels, c.min)
	}
}

func (f *fixture) get(name string) *v2beta1.SpiderIPPool {
	f.t.Helper()
	p := &v2beta1.SpiderIPPool{}
	if err := f.e.Client.Get(f.ctx, client.ObjectKey{Name: name}, p); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// TestFixedIPNumber: a fixed "N" ignores the replicas, and no annotation means the
// default "+N".
func TestFixedIPNumber(t *testing.T) {
	f := setup(t, Params{DefaultFlexibleIPNumber: 2})
	f.subnet("fixed-v4", "10.101.0.0/16", "10.101.0.10-10.101.0.100")
	fixed := deployment("fixed", 2, subnetAnno("fixed-v4", "4"))
	dflt := deployment("default", 3, subnetAnno("fixed-v4", ""))
	f.create(fixed)
	f.create(dflt)
	f.waitPool("Deployment", "fixed", sized(4))
	p := f.waitPool("Deployment", "default", sized(5))
	if p.Annotations[ipam.AnnoPodIPPoolIPNumber] != "+2" {
		t.Errorf("default size annotation %q, want +2", p.Annotations[ipam.AnnoPodIPPoolIPNumber])
	}
	f.update(fixed, func() { fixed.Spec.Replicas = ptr.To[int32](7) })
	f.update(dflt, func() { dflt.Spec.Replicas = ptr.To[int32](4) })
	f.waitPool("Deployment", "default", sized(6)) // the same worker has seen "fixed" by now
	f.waitPool("Deployment", "fixed", sized(4))
}

// TestSubnetEIPTemplate: a subnet's EIP template is copied into each auto pool it
// makes, so the pool's IPs get EIPs like a hand-made EIP pool's.
func TestSubnetEIPTemplate(t *testing.T) {
	f := setup(t, Params{DefaultFlexibleIPNumber: 1})
	s := &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: "eip-v4"}, Spec: v2beta1.SubnetSpec{
		Subnet: "10.120.0.0/16", IPs: rangesOfStrings([]string{"10.120.0.10-10.120.0.100"}),
		Orbweaver: &v2beta1.SubnetOrbweaverSpec{EIP: &v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPAuto,
			Bandwidth: ptr.To[int32](20), ReleaseStrategy: ptr.To(v2beta1.ReclaimPolicy("10m")), Tags: map[string]string{"team": "probe"}}}}}
	f.create(s)
	f.create(deployment("prober", 2, subnetAnno("eip-v4", "+1")))
	p := f.waitPool("Deployment", "prober", sized(3))
	if p.Spec.Orbweaver == nil || !equality.Semantic.DeepEqual(p.Spec.Orbweaver.EIP, s.Spec.Orbweaver.EIP) {
		t.Fatalf("auto pool's spec.orbweaver %+v, want the subnet's EIP template %+v", p.Spec.Orbweaver, s.Spec.Orbweaver.EIP)
	}
}

// TestKinds: StatefulSet, DaemonSet (desiredNumberScheduled), Job, CronJob and a bare
// ReplicaSet get pools; a Deployment's ReplicaSet and a CronJob's Job do not.
func TestKinds(t *testing.T) {
	f := setup(t, Params{DefaultFlexibleIPNumber: 1})
	f.subnet("kinds-v4", "10.102.0.0/16", "10.102.0.1-10.102.0.200")
	anno := subnetAnno("kinds-v4", "+1")
	sel := func(name string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
	}

	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3), Selector: sel("db"), Template: template("db", anno)}}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{Selector: sel("agent"), Template: template("agent", anno)}}
	jobTemplate := template("job", anno)
	jobTemplate.Spec.RestartPolicy = corev1.RestartPolicyNever
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "batch"},
		Spec: batchv1.JobSpec{Parallelism: ptr.To[int32](2), Completions: ptr.To[int32](3), Template: jobTemplate}}
	cron := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
		Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: jobTemplate}}}}
	dep := deployment("web", 1, anno)
	for _, o := range []client.Object{sts, ds, job, cron, dep} {
		f.create(o)
	}
	// Made by their controllers (none runs here): created first, so the one worker of
	// their kind sees them before the bare ones below.
	rsOfDep := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-5d9c7b",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: dep.UID, Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](1), Selector: sel("web"), Template: template("web", anno)}}
	jobOfCron := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "nightly-2905",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: "nightly", UID: cron.UID, Controller: ptr.To(true)}}},
		Spec: batchv1.JobSpec{Template: jobTemplate}}
	f.create(rsOfDep)
	f.create(jobOfCron)
	bareRS := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "bare"},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](2), Selector: sel("bare"), Template: template("bare", anno)}}
	bareJob := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "bare-job"}, Spec: batchv1.JobSpec{Template: jobTemplate}}
	f.create(bareRS)
	f.create(bareJob)

	tests := []struct {
		kind, name string
		size       uint64
	}{
		{"StatefulSet", "db", 4},  // 3 replicas + 1
		{"DaemonSet", "agent", 1}, // desiredNumberScheduled 0 + 1
		{"Job", "batch", 4},       // completions 3 + 1
		{"CronJob", "nightly", 2}, // neither set: 1 + 1
		{"Deployment", "web", 2},
		{"ReplicaSet", "bare", 3},
		{"Job", "bare-job", 2}, // the API server sets completions and parallelism to 1
	}
	for _, tt := range tests {
		p := f.waitPool(tt.kind, tt.name, sized(tt.size))
		gv := "apps_v1"
		if tt.kind == "Job" || tt.kind == "CronJob" {
			gv = "batch_v1"
		}
		if p.Labels[ipam.LabelOwnerAppKind] != tt.kind || p.Labels[ipam.LabelOwnerAppGV] != gv {
			t.Errorf("%s %s: labels %v", tt.kind, tt.name, p.Labels)
		}
	}
	for _, skipped := range []struct{ kind, name string }{{"ReplicaSet", "web-5d9c7b"}, {"Job", "nightly-2905"}} {
		if got := f.pools(skipped.kind, f.ns, skipped.name); len(got) != 0 {
			t.Errorf("%s %s, managed by another application, got pools %v", skipped.kind, skipped.name, got)
		}
	}

	// The DaemonSet follows status.desiredNumberScheduled.
	testenv.WaitFor(t, "DaemonSet status", func() (bool, error) {
		if err := f.e.Client.Get(f.ctx, client.ObjectKeyFromObject(ds), ds); err != nil {
			return false, err
		}
		ds.Status.DesiredNumberScheduled = 3
		err := f.e.Client.Status().Update(f.ctx, ds)
		return err == nil, err
	})
	f.waitPool("DaemonSet", "agent", sized(4))
}

// TestThirdPartyKind: a kind given in ThirdPartyKinds, read as unstructured, gets a pool
// of a fixed size; "+N" is refused with an event and no pool.
func TestThirdPartyKind(t *testing.T) {
	e := testenv.Require(t, env)
	crd := `{
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "clonesets.apps.kruise.io"},
  "spec": {"group": "apps.kruise.io", "scope": "Namespaced",
    "names": {"plural": "clonesets", "singular": "cloneset", "kind": "CloneSet", "listKind": "CloneSetList"},
    "versions": [{"name": "v1alpha1", "served": true, "storage": true,
      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}`
	if _, err := e.KubectlWithInput(t.Context(), crd, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Kubectl(t.Context(), "wait", "--for=condition=Established", "--timeout=30s", "crd/clonesets.apps.kruise.io"); err != nil {
		t.Fatal(err)
	}
	f := setup(t, Params{ThirdPartyKinds: []schema.GroupVersionKind{{Group: "apps.kruise.io", Version: "v1alpha1", Kind: "CloneSet"}}})
	f.subnet("kruise-v4", "10.103.0.0/16", "10.103.0.1-10.103.0.50")
	cloneSet := func(name, ipNumber string) string {
		return fmt.Sprintf(`{"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
  "metadata": {"name": %q, "namespace": %q},
  "spec": {"replicas": 5, "template": {"metadata": {"annotations": {
    "ipam.spidernet.io/subnet": "{\"ipv4\":[\"kruise-v4\"]}", "ipam.spidernet.io/ippool-ip-number": %q}}}}}`, name, f.ns, ipNumber)
	}
	for name, n := range map[string]string{"fixed": "3", "flexible": "+1"} {
		if _, err := e.KubectlWithInput(t.Context(), cloneSet(name, n), "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
	}
	p := f.waitPool("CloneSet", "fixed", sized(3))
	if p.Labels[ipam.LabelOwnerAppGV] != "apps.kruise.io_v1alpha1" {
		t.Errorf("gv label %q", p.Labels[ipam.LabelOwnerAppGV])
	}
	if p.Spec.PodAffinity.MatchLabels[ipam.LabelAppAPIGroup] != "apps.kruise.io" {
		t.Errorf("podAffinity %v", p.Spec.PodAffinity)
	}
	f.waitEvent("flexible", corev1.EventTypeWarning, ReasonFlexibleUnsupported, `"+1"`)
	if got := f.pools("CloneSet", f.ns, "flexible"); len(got) != 0 {
		t.Errorf("a third-party kind with +N got pools %v", got)
	}
}

// TestReclaim: deleting an application deletes its pools (their finalizer keeps them
// while addresses are allocated), also when the controller was down at the time.
func TestReclaim(t *testing.T) {
	f := setup(t, Params{DefaultFlexibleIPNumber: 1})
	f.subnet("reclaim-v4", "10.104.0.0/16", "10.104.0.1-10.104.0.100")
	live := deployment("live", 1, subnetAnno("reclaim-v4", "+1"))
	f.create(live)
	p := f.waitPool("Deployment", "live", sized(2))
	if err := f.e.Client.Delete(f.ctx, live); err != nil {
		t.Fatal(err)
	}
	f.waitDeleting(p.Name)
	f.dropFinalizer(p.Name)
	f.waitCounter("orbweaver_autopool_pools_deleted_total", map[string]string{"kind": "Deployment", "reason": deleteAppGone}, 1)

	// Deleted while no controller runs: the next one reclaims the pool at start-up.
	// (The first manager is stopped; its webhooks keep serving.)
	offline := deployment("offline", 1, subnetAnno("reclaim-v4", "+1"))
	f.create(offline)
	p = f.waitPool("Deployment", "offline", sized(2))
	f.stopManagers()
	if err := f.e.Client.Delete(f.ctx, offline); err != nil {
		t.Fatal(err)
	}
	f.start(Params{DefaultFlexibleIPNumber: 1})
	f.waitDeleting(p.Name)
}

// TestReclaimFalse: with ippool-reclaim "false" the pool outlives its Deployment, and a
// new Deployment of the same name takes it over: the UID label changes, the name stays,
// the size follows the new replicas.
func TestReclaimFalse(t *testing.T) {
	f := setup(t, Params{DefaultFlexibleIPNumber: 1})
	f.subnet("keep-v4", "10.105.0.0/16", "10.105.0.1-10.105.0.100")
	anno := subnetAnno("keep-v4", "+1")
	anno[ipam.AnnoPodIPPoolReclaim] = "false"
	kept := deployment("kept", 2, anno)
	other := deployment("other", 1, subnetAnno("keep-v4", "+1"))
	f.create(kept)
	f.create(other)
	keptPool := f.waitPool("Deployment", "kept", sized(3))
	if keptPool.Labels[ipam.LabelIPPoolReclaim] != "false" {
		t.Errorf("reclaim label %q", keptPool.Labels[ipam.LabelIPPoolReclaim])
	}
	otherPool := f.waitPool("Deployment", "other", sized(2))
	// Delete both, kept first: when other's pool is being deleted, the one worker has
	// handled kept's deletion too.
	for _, d := range []*appsv1.Deployment{kept, other} {
		if err := f.e.Client.Delete(f.ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	f.waitDeleting(otherPool.Name)
	if got := f.get(keptPool.Name); got.DeletionTimestamp != nil {
		t.Fatal("the pool with ippool-reclaim false was deleted with its Deployment")
	}

	again := deployment("kept", 4, anno)
	f.create(again)
	adopted := f.waitPool("Deployment", "kept", func(p *v2beta1.SpiderIPPool, ips ip.Set) bool {
		return p.Labels[ipam.LabelOwnerAppUID] == string(again.UID) && ips.Count() == ip.CountFromUint64(5)
	})
	if adopted.Name != keptPool.Name {
		t.Errorf("adopted pool %q, want the kept %q", adopted.Name, keptPool.Name)
	}
	if !poolIPs(t, &adopted).ContainsSet(poolIPs(t, &keptPool)) {
		t.Errorf("the adopted pool %v lost addresses of %v", poolIPs(t, &adopted), poolIPs(t, &keptPool))
	}
	f.waitEvent("kept", corev1.EventTypeNormal, ReasonAdopted, keptPool.Name)
}

// TestConcurrentDeployments: applications created at once from a small subnet get
// disjoint pools inside it, Deployments (one worker) and other kinds (their own workers,
// at the same time); the one that does not fit gets a Warning event and no pool.
func TestConcurrentDeployments(t *testing.T) {
	f := setup(t, Params{DefaultFlexibleIPNumber: 1})
	f.subnet("small-v4", "10.106.0.0/24", "10.106.0.1-10.106.0.30")
	anno := subnetAnno("small-v4", "+2")
	sel := func(name string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
	}
	jobTemplate := template("job", anno)
	jobTemplate.Spec.RestartPolicy = corev1.RestartPolicyNever
	type app struct {
		kind string
		obj  client.Object
	}
	var apps []app // 9 applications of 3 addresses: 27 of the 30
	for i := range 4 {
		apps = append(apps, app{"Deployment", deployment(fmt.Sprintf("app%d", i), 1, anno)})
	}
	for i := range 2 {
		name := fmt.Sprintf("sts%d", i)
		apps = append(apps, app{"StatefulSet", &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1), Selector: sel(name), Template: template(name, anno)}}})
		name = fmt.Sprintf("rs%d", i)
		apps = append(apps, app{"ReplicaSet", &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](1), Selector: sel(name), Template: template(name, anno)}}})
	}
	apps = append(apps, app{"Job", &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "job"}, Spec: batchv1.JobSpec{Template: jobTemplate}}})

	var wg sync.WaitGroup
	errs := make([]error, len(apps))
	for i, a := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.obj.SetNamespace(f.ns)
			errs[i] = f.e.Client.Create(f.ctx, a.obj)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var sets []ip.Set
	for _, a := range apps {
		p := f.waitPool(a.kind, a.obj.GetName(), sized(3))
		sets = append(sets, poolIPs(t, &p))
	}
	subnetIPs, _ := ip.ParseRanges([]string{"10.106.0.1-10.106.0.30"})
	for i := range sets {
		if !subnetIPs.ContainsSet(sets[i]) {
			t.Errorf("%s %s's pool %v is not inside the subnet", apps[i].kind, apps[i].obj.GetName(), sets[i])
		}
		for j := range i {
			if sets[i].Overlaps(sets[j]) {
				t.Errorf("%s %s and %s %s share %v", apps[i].kind, apps[i].obj.GetName(), apps[j].kind, apps[j].obj.GetName(), sets[i].Intersect(sets[j]))
			}
		}
	}
	f.create(deployment("late", 2, subnetAnno("small-v4", "+2")))
	f.waitEvent("late", corev1.EventTypeWarning, ReasonSubnetExhausted, `"small-v4" has 3 free, 4 needed`)
	if got := f.pools("Deployment", f.ns, "late"); len(got) != 0 {
		t.Errorf("an exhausted subnet made pools %v", got)
	}
}

// TestSubnetTooSmallThenGrown: a subnet too small gives a Warning event and no pool;
// when the subnet grows, the pool comes at once (the subnet watch).
func TestSubnetTooSmallThenGrown(t *testing.T) {
	// No retry for an hour: only the subnet watch can bring the pool.
	f := setup(t, Params{DefaultFlexibleIPNumber: 1, RetryInterval: time.Hour})
	s := f.subnet("tiny-v4", "10.107.0.0/24", "10.107.0.1-10.107.0.3")
	f.create(deployment("big", 2, subnetAnno("tiny-v4", "+3")))
	f.waitEvent("big", corev1.EventTypeWarning, ReasonSubnetExhausted, "to 5 addresses", `"tiny-v4" has 3 free, 5 needed`)
	if got := f.pools("Deployment", f.ns, "big"); len(got) != 0 {
		t.Fatalf("pools %v from a subnet too small", got)
	}
	f.waitCounter("orbweaver_autopool_failures_total", map[string]string{"kind": "Deployment", "reason": failSubnetExhausted}, 1)
	f.update(s, func() { s.Spec.IPs = rangesOfStrings([]string{"10.107.0.1-10.107.0.10"}) })
	f.waitPool("Deployment", "big", sized(5))
}

// TestSubnetMissing: a subnet that does not exist gives a Warning event; creating it
// brings the pool.
func TestSubnetMissing(t *testing.T) {
	f := setup(t, Params{DefaultFlexibleIPNumber: 1, RetryInterval: time.Hour})
	f.create(deployment("early", 1, subnetAnno("later-v4", "+1")))
	f.waitEvent("early", corev1.EventTypeWarning, ReasonSubnetMissing, `SpiderSubnet "later-v4" does not exist`)
	f.subnet("later-v4", "10.108.0.0/24", "10.108.0.1-10.108.0.10")
	f.waitPool("Deployment", "early", sized(2))
}

// TestBadAnnotation: a malformed annotation gives a Warning event with the parse error.
func TestBadAnnotation(t *testing.T) {
	f := setup(t, Params{DefaultFlexibleIPNumber: 1})
	f.create(deployment("broken", 1, map[string]string{ipam.AnnoPodSubnet: `{"ipv4":"not-a-list"}`}))
	f.create(deployment("badnumber", 1, subnetAnno("whatever", "++1")))
	f.waitEvent("broken", corev1.EventTypeWarning, ReasonBadAnnotation, ipam.AnnoPodSubnet)
	f.waitEvent("badnumber", corev1.EventTypeWarning, ReasonBadAnnotation, ipam.AnnoPodIPPoolIPNumber)
}

// TestSubnetChange: a new subnet in the template moves the application to a new pool;
// the old one is reclaimed. The new pool cannot have the old one's name while that is
// being deleted, so it gets the variant.
func TestSubnetChange(t *testing.T) {
	f := setup(t, Params{DefaultFlexibleIPNumber: 1})
	f.subnet("first-v4", "10.109.0.0/24", "10.109.0.1-10.109.0.10")
	f.subnet("second-v4", "10.110.0.0/24", "10.110.0.1-10.110.0.10")
	d := deployment("mover", 1, subnetAnno("first-v4", "+1"))
	f.create(d)
	old := f.waitPool("Deployment", "mover", sized(2))
	f.update(d, func() { d.Spec.Template.Annotations = subnetAnno("second-v4", "+1") })
	moved := f.waitPool("Deployment", "mover", func(p *v2beta1.SpiderIPPool, _ ip.Set) bool {
		return p.Labels[ipam.LabelOwnerSpiderSubnet] == "second-v4"
	})
	f.waitDeleting(old.Name)
	if moved.Name == old.Name || !strings.HasPrefix(moved.Name, "auto4-mover-") || moved.Spec.Subnet != "10.110.0.0/24" {
		t.Errorf("moved pool %q of %s (old %q)", moved.Name, moved.Spec.Subnet, old.Name)
	}
	f.waitEvent("mover", corev1.EventTypeNormal, ReasonDeleted, old.Name)
}

// TestDualStackMultiNIC: ipam.spidernet.io/subnets with two interfaces, one dual-stack,
// gives one pool per interface and family; a family the cluster does not serve is left
// out.
func TestDualStackMultiNIC(t *testing.T) {
	f := setup(t, Params{DefaultFlexibleIPNumber: 1})
	f.subnet("multi-v4", "10.111.0.0/24", "10.111.0.1-10.111.0.50")
	f.subnet("multi-v6", "fd00:111::/64", "fd00:111::10-fd00:111::ff")
	f.subnet("multi-net1", "10.112.0.0/24", "10.112.0.1-10.112.0.50")
	anno := map[string]string{
		ipam.AnnoPodSubnets:        `[{"interface":"eth0","ipv4":["multi-v4"],"ipv6":["multi-v6"]},{"interface":"net1","ipv4":["multi-net1"]}]`,
		ipam.AnnoPodIPPoolIPNumber: "+1",
	}
	d := deployment("multi", 2, anno)
	f.create(d)
	var got map[string]v2beta1.SpiderIPPool
	testenv.WaitFor(t, "three pools", func() (bool, error) {
		got = map[string]v2beta1.SpiderIPPool{}
		for _, p := range f.pools("Deployment", f.ns, "multi") {
			got[p.Labels[ipam.LabelInterface]+"/"+p.Labels[ipam.LabelIPVersion]] = p
		}
		return len(got) == 3, fmt.Errorf("pools %v", keys(got))
	})
	app := ipam.Application{APIVersion: "apps/v1", Kind: "Deployment", Namespace: f.ns, Name: "multi", UID: string(d.UID)}
	for key, want := range map[string]struct {
		name, first string
	}{
		"eth0/IPv4": {ipam.AutoPoolName(4, app, "eth0"), "10.111.0.1"},
		"eth0/IPv6": {ipam.AutoPoolName(6, app, "eth0"), "fd00:111::10"},
		"net1/IPv4": {ipam.AutoPoolName(4, app, "net1"), "10.112.0.1"},
	} {
		p, ok := got[key]
		if !ok {
			t.Errorf("no pool for %s", key)
			continue
		}
		ips := poolIPs(t, &p)
		first, _ := ips.Nth(ip.Count{})
		if p.Name != want.name || ips.Count() != ip.CountFromUint64(3) || first != netip.MustParseAddr(want.first) {
			t.Errorf("%s: pool %s with %s, want %s with 3 addresses from %s", key, p.Name, ips, want.name, want.first)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
