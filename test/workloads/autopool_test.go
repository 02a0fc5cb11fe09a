package workloads

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// appPools returns the auto pools of an application (by kind, namespace and name).
func appPools(ctx context.Context, t *testing.T, kind, ns, name string) []v2beta1.SpiderIPPool {
	t.Helper()
	var list v2beta1.SpiderIPPoolList
	if err := env.Client.List(ctx, &list, client.MatchingLabels{ipam.LabelOwnerAppKind: kind, ipam.LabelOwnerAppNamespace: ns, ipam.LabelOwnerAppName: name}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// poolAddrs is the set of addresses a pool can hand out.
func poolAddrs(t *testing.T, sp *v2beta1.SpiderIPPool) (ip.Set, int64) {
	t.Helper()
	p, err := ipam.NewPool(sp, ip.Set{})
	if err != nil {
		t.Fatal(err)
	}
	var toks []string
	for _, r := range sp.Spec.IPs {
		toks = append(toks, string(r))
	}
	set, err := ip.ParseRanges(toks)
	if err != nil {
		t.Fatal(err)
	}
	return set, p.TotalCount()
}

// waitPoolSize waits until the application has exactly one auto pool, of size IPs, and
// returns it.
func waitPoolSize(t *testing.T, kind, ns, name string, size int64) v2beta1.SpiderIPPool {
	t.Helper()
	var got v2beta1.SpiderIPPool
	testenv.WaitFor(t, fmt.Sprintf("one auto pool of %d IPs for %s %s/%s", size, kind, ns, name), func() (bool, error) {
		pools := appPools(context.Background(), t, kind, ns, name)
		if len(pools) != 1 {
			return false, fmt.Errorf("%d pools; events of %s: %v", len(pools), name, eventsOf(t, ns, name))
		}
		got = pools[0]
		_, n := poolAddrs(t, &got)
		return n == size, fmt.Errorf("pool %s has %d IPs (%v)", got.Name, n, got.Spec.IPs)
	})
	return got
}

func scale(t *testing.T, obj client.Object, replicas int) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	if err := env.Client.Patch(context.Background(), obj, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

// noSharedIPs fails when two live pods of the namespace hold one address.
func noSharedIPs(t *testing.T, ns string) {
	t.Helper()
	seen := map[string]string{}
	for _, p := range runningPods(context.Background(), t, ns, func(*corev1.Pod) bool { return true }) {
		if other, dup := seen[p.Status.PodIP]; dup {
			t.Fatalf("pods %s and %s share %s", other, p.Name, p.Status.PodIP)
		}
		seen[p.Status.PodIP] = p.Name
	}
}

// TestSeed004AutoPool is seed 004 end to end with real Deployment and ReplicaSet
// controllers: Deployment nginx with ipam.spidernet.io/subnet and ippool-ip-number '+3' and
// 2 replicas gets one pool of 5 IPs inside subnet nginx-subnet-v4, its pods' IPs inside
// that pool; scaled to 3 the pool holds 6; a rolling update with maxSurge finds free IPs;
// deleted, the pool goes. Then ippool-reclaim "false" keeps the pool for a Deployment of
// the same name, and a fixed "N" ignores the replicas.
func TestSeed004AutoPool(t *testing.T) {
	testenv.Require(t, env)
	ctx := context.Background()
	ns := newNamespace(t, "seed004")
	n1, n2 := startNode(t, "seed004-1"), startNode(t, "seed004-2")
	k := startKubelet(t, ns, n1, n2)
	startControllers(t, controllerOptions{})
	create(t, &v2beta1.SpiderSubnet{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx-subnet-v4"},
		Spec:       v2beta1.SubnetSpec{IPVersion: ptr.To(int64(4)), Subnet: "10.244.0.0/16", IPs: []v2beta1.IPOrRange{"10.244.100.0-10.244.100.255"}},
	})
	subnetIPs, err := ip.ParseRanges([]string{"10.244.100.0-10.244.100.255"})
	if err != nil {
		t.Fatal(err)
	}
	seedAnno := map[string]string{ipam.AnnoPodSubnet: `{"ipv4":["nginx-subnet-v4"]}`, ipam.AnnoPodIPPoolIPNumber: "+3"}

	dep := deployment(ns, "nginx", 2, seedAnno)
	dep.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType}
	create(t, dep)
	pool := waitPoolSize(t, "Deployment", ns, "nginx", 5)
	want := ipam.AutoPoolName(4, ipam.Application{Name: "nginx", UID: string(dep.UID)}, "eth0")
	if pool.Name != want {
		t.Errorf("pool name %s, want %s", pool.Name, want)
	}
	addrs, _ := poolAddrs(t, &pool)
	if !subnetIPs.ContainsSet(addrs) {
		t.Errorf("pool %s ips %v not inside the subnet's", pool.Name, pool.Spec.IPs)
	}
	inPool := func(pods []corev1.Pod, pool v2beta1.SpiderIPPool) {
		t.Helper()
		addrs, _ := poolAddrs(t, &pool)
		for _, p := range pods {
			if !addrs.Contains(netip.MustParseAddr(p.Status.PodIP)) {
				t.Errorf("pod %s has %s, outside auto pool %s %v", p.Name, p.Status.PodIP, pool.Name, pool.Spec.IPs)
			}
		}
	}
	inPool(waitRunning(t, k, ns, 2, ofApp("nginx")), pool)
	t.Logf("seed 004: pool %s %v, 2 pods", pool.Name, pool.Spec.IPs)

	scale(t, dep, 3)
	pool = waitPoolSize(t, "Deployment", ns, "nginx", 6)
	inPool(waitRunning(t, k, ns, 3, ofApp("nginx")), pool)

	// Rolling update: a template change makes a new ReplicaSet; its surge pods take the
	// spare addresses while the old pods still hold theirs.
	if err := env.Client.Patch(ctx, dep, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"template":{"metadata":{"labels":{"rev":"2"}}}}}`))); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the rolling update done", func() (bool, error) {
		noSharedIPs(t, ns)
		pods := runningPods(ctx, t, ns, ofApp("nginx"))
		for _, p := range pods {
			if p.Labels["rev"] != "2" {
				return false, nil
			}
		}
		return len(pods) == 3, nil
	})
	pool = waitPoolSize(t, "Deployment", ns, "nginx", 6)
	inPool(runningPods(ctx, t, ns, ofApp("nginx")), pool)

	// Deleted: the pods go, then the pool.
	if err := env.Client.Delete(ctx, dep, client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "auto pool "+pool.Name+" deleted with its Deployment", func() (bool, error) {
		err := env.Client.Get(ctx, types.NamespacedName{Name: pool.Name}, &v2beta1.SpiderIPPool{})
		return apierrors.IsNotFound(err), err
	})

	// ippool-reclaim "false": the pool outlives the Deployment and serves the next one of
	// the same name, sized for it.
	keep := map[string]string{ipam.AnnoPodSubnet: `{"ipv4":["nginx-subnet-v4"]}`, ipam.AnnoPodIPPoolIPNumber: "+1", ipam.AnnoPodIPPoolReclaim: "false"}
	web := deployment(ns, "web", 2, keep)
	create(t, web)
	kept := waitPoolSize(t, "Deployment", ns, "web", 3)
	waitRunning(t, k, ns, 2, ofApp("web"))
	if err := env.Client.Delete(ctx, web, client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "Deployment web gone", func() (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(web), &appsv1.Deployment{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err := env.Client.Get(ctx, types.NamespacedName{Name: kept.Name}, &v2beta1.SpiderIPPool{}); err != nil {
		t.Fatalf("the pool with ippool-reclaim false went with its Deployment: %v", err)
	}
	web2 := deployment(ns, "web", 4, keep)
	create(t, web2)
	testenv.WaitFor(t, "the kept pool adopted by the new web", func() (bool, error) {
		sp := &v2beta1.SpiderIPPool{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: kept.Name}, sp); err != nil {
			return false, err
		}
		_, n := poolAddrs(t, sp)
		return sp.Labels[ipam.LabelOwnerAppUID] == string(web2.UID) && n == 5, fmt.Errorf("uid label %s, %d IPs", sp.Labels[ipam.LabelOwnerAppUID], n)
	})
	if pools := appPools(ctx, t, "Deployment", ns, "web"); len(pools) != 1 {
		t.Fatalf("%d pools for the re-created web, want the kept one only", len(pools))
	}
	waitRunning(t, k, ns, 4, ofApp("web"))

	// A fixed "N" ignores the replicas.
	fixed := deployment(ns, "fixed", 1, map[string]string{ipam.AnnoPodSubnet: `{"ipv4":["nginx-subnet-v4"]}`, ipam.AnnoPodIPPoolIPNumber: "4"})
	create(t, fixed)
	waitPoolSize(t, "Deployment", ns, "fixed", 4)
	scale(t, fixed, 3)
	waitRunning(t, k, ns, 3, ofApp("fixed"))
	waitPoolSize(t, "Deployment", ns, "fixed", 4)
	noSharedIPs(t, ns)
}

// eventsOf returns the reasons and messages of the events of the namespace's objects
// named name, for failure messages.
func eventsOf(t *testing.T, ns, name string) []string {
	t.Helper()
	var list corev1.EventList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, ev := range list.Items {
		if ev.InvolvedObject.Name == name {
			out = append(out, ev.InvolvedObject.Kind+" "+ev.Reason+": "+ev.Message)
		}
	}
	return out
}

// TestCronJobAutoPool: a CronJob's auto pool serves the pods of its Jobs (their top
// controller is the CronJob, one hop further than the pod's owner).
func TestCronJobAutoPool(t *testing.T) {
	testenv.Require(t, env)
	ns := newNamespace(t, "cronjob")
	k := startKubelet(t, ns, startNode(t, "cronjob-1"))
	startControllers(t, controllerOptions{})
	create(t, &v2beta1.SpiderSubnet{
		ObjectMeta: metav1.ObjectMeta{Name: "cron-subnet"},
		Spec:       v2beta1.SubnetSpec{Subnet: "10.247.0.0/24", IPs: []v2beta1.IPOrRange{"10.247.0.10-10.247.0.50"}},
	})
	tmpl := podTemplate("report", map[string]string{ipam.AnnoPodSubnet: `{"ipv4":["cron-subnet"]}`, ipam.AnnoPodIPPoolIPNumber: "2"})
	tmpl.Spec.RestartPolicy = corev1.RestartPolicyNever
	cron := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "report"},
		Spec: batchv1.CronJobSpec{
			Schedule: "0 0 1 1 *", Suspend: ptr.To(true), // the test starts its Job itself
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}},
		},
	}
	create(t, cron)
	pool := waitPoolSize(t, "CronJob", ns, "report", 2)
	// What the CronJob controller would do at the scheduled time.
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "report-29000000", OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "batch/v1", Kind: "CronJob", Name: cron.Name, UID: cron.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}},
		Spec: batchv1.JobSpec{Template: *tmpl.DeepCopy()},
	}
	create(t, job)
	pods := waitRunning(t, k, ns, 1, ofApp("report"))
	addrs, _ := poolAddrs(t, &pool)
	if !addrs.Contains(netip.MustParseAddr(pods[0].Status.PodIP)) {
		t.Fatalf("the Job's pod got %s, outside the CronJob's pool %s %v", pods[0].Status.PodIP, pool.Name, pool.Spec.IPs)
	}
}
