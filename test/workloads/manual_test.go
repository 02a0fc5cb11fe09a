package workloads

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

func podTemplate(app string, annotations map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}, Annotations: annotations},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken:  ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To(int64(1)),
			Containers:                    []corev1.Container{{Name: "nginx", Image: "registry.invalid/nginx:1"}},
		},
	}
}

func deployment(ns, name string, replicas int32, annotations map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name, annotations),
		},
	}
}

func statefulSet(ns, name string, replicas int32, annotations map[string]string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(replicas),
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template:            podTemplate(name, annotations),
			ServiceName:         name,
			PodManagementPolicy: appsv1.ParallelPodManagement, // no kubelet runs probes: do not wait pod by pod
		},
	}
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// waitRunning waits until exactly n pods that match run, and returns them by name.
func waitRunning(t *testing.T, k *fakeKubelet, ns string, n int, match func(*corev1.Pod) bool) []corev1.Pod {
	t.Helper()
	var got []corev1.Pod
	testenv.WaitFor(t, fmt.Sprintf("%d running pods in %s", n, ns), func() (bool, error) {
		got = runningPods(context.Background(), t, ns, match)
		if len(got) == n {
			return true, nil
		}
		var pods corev1.PodList
		_ = env.Client.List(context.Background(), &pods, client.InNamespace(ns))
		var why []string
		for _, p := range pods.Items {
			if f := k.failure(p.UID); f != "" {
				why = append(why, p.Name+": "+f)
			}
		}
		if exited, err := kcm.Exited(); exited {
			return false, fmt.Errorf("kube-controller-manager exited: %v: %s", err, kcm.LogTail(2000))
		}
		return false, fmt.Errorf("%d running of %d pods; ADD failures: %v", len(got), len(pods.Items), why)
	})
	return got
}

func ofApp(app string) func(*corev1.Pod) bool {
	return func(p *corev1.Pod) bool { return p.Labels["app"] == app }
}

func inRange(t *testing.T, ip, from, to string) bool {
	t.Helper()
	a, lo, hi := netip.MustParseAddr(ip), netip.MustParseAddr(from), netip.MustParseAddr(to)
	return a.Compare(lo) >= 0 && a.Compare(hi) <= 0
}

// TestManualPoolDeployment is seed 004's second half: Deployment nginx-m on pool
// nginx-v4-ippool; its pods' IPs stay inside the pool across a restart and a scale-up,
// and no two pods ever share one.
func TestManualPoolDeployment(t *testing.T) {
	testenv.Require(t, env)
	ctx := context.Background()
	ns := newNamespace(t, "manual")
	n1, n2 := startNode(t, "manual-1"), startNode(t, "manual-2")
	k := startKubelet(t, ns, n1, n2)
	create(t, &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx-v4-ippool"},
		Spec:       v2beta1.IPPoolSpec{IPVersion: ptr.To(int64(4)), Subnet: "10.244.0.0/16", IPs: []v2beta1.IPOrRange{"10.244.120.10-10.244.120.20"}},
	})
	dep := deployment(ns, "nginx-m", 2, map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["nginx-v4-ippool"]}`})
	create(t, dep)

	check := func(pods []corev1.Pod) {
		t.Helper()
		seen := map[string]string{}
		for _, p := range pods {
			if !inRange(t, p.Status.PodIP, "10.244.120.10", "10.244.120.20") {
				t.Errorf("pod %s has %s, outside nginx-v4-ippool", p.Name, p.Status.PodIP)
			}
			if other, dup := seen[p.Status.PodIP]; dup {
				t.Errorf("pods %s and %s share %s", other, p.Name, p.Status.PodIP)
			}
			seen[p.Status.PodIP] = p.Name
		}
	}
	pods := waitRunning(t, k, ns, 2, ofApp("nginx-m"))
	check(pods)

	// A restart: the Deployment replaces a deleted pod.
	if err := env.Client.Delete(ctx, &pods[0]); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the replacement pod", func() (bool, error) {
		now := runningPods(ctx, t, ns, ofApp("nginx-m"))
		return len(now) == 2 && now[0].Name != pods[0].Name && now[1].Name != pods[0].Name, nil
	})
	check(runningPods(ctx, t, ns, ofApp("nginx-m")))

	// Scale to 4.
	if err := env.Client.Patch(ctx, dep, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"replicas":4}}`))); err != nil {
		t.Fatal(err)
	}
	check(waitRunning(t, k, ns, 4, ofApp("nginx-m")))
}

// TestStatefulSetPodKeepsIP: kube-controller-manager re-creates a deleted StatefulSet
// pod, 20 times; each new pod gets the same IP.
func TestStatefulSetPodKeepsIP(t *testing.T) {
	testenv.Require(t, env)
	ctx := context.Background()
	ns := newNamespace(t, "sts-keep")
	n1, n2 := startNode(t, "sts-keep-1"), startNode(t, "sts-keep-2")
	k := startKubelet(t, ns, n1, n2)
	create(t, &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "sts-keep"},
		Spec:       v2beta1.IPPoolSpec{Subnet: "10.245.0.0/24", IPs: []v2beta1.IPOrRange{"10.245.0.10-10.245.0.60"}},
	})
	create(t, statefulSet(ns, "db", 2, map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["sts-keep"]}`}))
	pods := waitRunning(t, k, ns, 2, ofApp("db"))
	want := map[string]string{pods[0].Name: pods[0].Status.PodIP, pods[1].Name: pods[1].Status.PodIP}
	// A Deployment beside it takes addresses as pods come and go, so a freed address
	// would not come back by chance.
	create(t, deployment(ns, "churn", 3, map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["sts-keep"]}`}))
	waitRunning(t, k, ns, 3, ofApp("churn"))

	for i := 1; i <= 20; i++ {
		victim := pods[i%2]
		if err := env.Client.Delete(ctx, &victim); err != nil {
			t.Fatal(err)
		}
		var back corev1.Pod
		testenv.WaitFor(t, fmt.Sprintf("round %d: %s back", i, victim.Name), func() (bool, error) {
			for _, p := range runningPods(ctx, t, ns, ofApp("db")) {
				if p.Name == victim.Name && p.UID != victim.UID {
					back = p
					return true, nil
				}
			}
			return false, nil
		})
		if back.Status.PodIP != want[victim.Name] {
			t.Fatalf("round %d: %s came back with %s on %s, want %s", i, victim.Name, back.Status.PodIP, back.Spec.NodeName, want[victim.Name])
		}
		pods[i%2] = back
		if i%5 == 0 { // churn: replace the Deployment's pods too
			var churn corev1.PodList
			if err := env.Client.List(ctx, &churn, client.InNamespace(ns), client.MatchingLabels{"app": "churn"}); err != nil {
				t.Fatal(err)
			}
			for j := range churn.Items {
				_ = env.Client.Delete(ctx, &churn.Items[j])
			}
		}
	}
	t.Logf("20 re-creations: %s kept %s and %s kept %s; %d ADDs served", pods[0].Name, pods[0].Status.PodIP, pods[1].Name, pods[1].Status.PodIP, k.adds)
}
