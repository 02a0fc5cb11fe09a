package gc

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// Pure tests of the input building: no API server.

func testStatefulSet(name, uid string, replicas *int32, start int32, deleting bool) appsv1.StatefulSet {
	st := appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(uid)},
		Spec:       appsv1.StatefulSetSpec{Replicas: replicas},
	}
	if start != 0 {
		st.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: start}
	}
	if deleting {
		st.DeletionTimestamp = &metav1.Time{Time: time.Unix(100, 0)}
	}
	return st
}

func ownedPod(name string, refs ...metav1.OwnerReference) corev1.Pod {
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name), OwnerReferences: refs}}
}

func stsRef(name, uid string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: name, UID: types.UID(uid), Controller: ptr.To(true)}
}

func TestPodStatefulSetMember(t *testing.T) {
	web := testStatefulSet("web", "u1", ptr.To[int32](3), 0, false)
	tests := []struct {
		name string
		sets []appsv1.StatefulSet
		pod  corev1.Pod
		want *ipam.StatefulSetMember
	}{
		{"in range", []appsv1.StatefulSet{web}, ownedPod("web-2", stsRef("web", "u1")),
			&ipam.StatefulSetMember{Name: "web", Ordinal: 2, Exists: true, InRange: true}},
		{"scaled down", []appsv1.StatefulSet{testStatefulSet("web", "u1", ptr.To[int32](1), 0, false)}, ownedPod("web-2", stsRef("web", "u1")),
			&ipam.StatefulSetMember{Name: "web", Ordinal: 2, Exists: true}},
		{"replicas unset means 1", []appsv1.StatefulSet{testStatefulSet("web", "u1", nil, 0, false)}, ownedPod("web-0", stsRef("web", "u1")),
			&ipam.StatefulSetMember{Name: "web", Ordinal: 0, Exists: true, InRange: true}},
		{"ordinals.start honoured: below", []appsv1.StatefulSet{testStatefulSet("web", "u1", ptr.To[int32](2), 5, false)}, ownedPod("web-4", stsRef("web", "u1")),
			&ipam.StatefulSetMember{Name: "web", Ordinal: 4, Exists: true}},
		{"ordinals.start honoured: inside", []appsv1.StatefulSet{testStatefulSet("web", "u1", ptr.To[int32](2), 5, false)}, ownedPod("web-6", stsRef("web", "u1")),
			&ipam.StatefulSetMember{Name: "web", Ordinal: 6, Exists: true, InRange: true}},
		{"StatefulSet gone", nil, ownedPod("web-0", stsRef("web", "u1")),
			&ipam.StatefulSetMember{Name: "web", Ordinal: 0}},
		{"re-created StatefulSet (other UID) does not own the old pod", []appsv1.StatefulSet{testStatefulSet("web", "u2", ptr.To[int32](3), 0, false)}, ownedPod("web-0", stsRef("web", "u1")),
			&ipam.StatefulSetMember{Name: "web", Ordinal: 0}},
		{"StatefulSet being deleted", []appsv1.StatefulSet{testStatefulSet("web", "u1", ptr.To[int32](3), 0, true)}, ownedPod("web-0", stsRef("web", "u1")),
			&ipam.StatefulSetMember{Name: "web", Ordinal: 0}},
		{"no owner", []appsv1.StatefulSet{web}, ownedPod("web-0"), nil},
		{"owner that is not the controller", []appsv1.StatefulSet{web},
			ownedPod("web-0", metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "web", UID: "u1"}), nil},
		{"controller of another kind", []appsv1.StatefulSet{web},
			ownedPod("web-0", metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "u1", Controller: ptr.To(true)}), nil},
		{"StatefulSet of another API group", []appsv1.StatefulSet{web},
			ownedPod("web-0", metav1.OwnerReference{APIVersion: "apps.kruise.io/v1beta1", Kind: "StatefulSet", Name: "web", UID: "u1", Controller: ptr.To(true)}), nil},
		{"name without an ordinal", []appsv1.StatefulSet{web}, ownedPod("web-x", stsRef("web", "u1")), nil},
		{"name with a leading zero", []appsv1.StatefulSet{web}, ownedPod("web-01", stsRef("web", "u1")), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := snapshot{pods: []corev1.Pod{tt.pod}, statefulSets: tt.sets}
			in, errs := buildInput(ipam.DefaultGCConfig(), true, ipam.StatefulKinds{}, snap, nil)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if got := in.Pods[0].StatefulSet; !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("StatefulSet = %+v, want %+v", got, tt.want)
			}
			// Retention off: never a member.
			in, _ = buildInput(ipam.DefaultGCConfig(), false, ipam.StatefulKinds{}, snap, nil)
			if got := in.Pods[0].StatefulSet; got != nil {
				t.Fatalf("retention off: StatefulSet = %+v, want nil", got)
			}
		})
	}
}

func testEndpoint(name, kind, owner string, annotations map[string]string) v2beta1.SpiderEndpoint {
	return v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: "se-" + types.UID(name), ResourceVersion: "7", Annotations: annotations},
		Status: v2beta1.WorkloadEndpointStatus{
			Current: v2beta1.PodIPAllocation{
				UID: "uid-" + name, Node: "n1",
				IPs:       []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv4: ptr.To("10.0.0.5/24"), IPv4Pool: ptr.To("a")}},
				Orbweaver: &v2beta1.PodAllocationOrbweaver{ContainerID: "ctr"},
			},
			OwnerControllerType: kind, OwnerControllerName: owner,
		},
	}
}

func TestEndpointInput(t *testing.T) {
	never := v2beta1.ReclaimNever
	tests := []struct {
		name       string
		retention  bool
		sets       []appsv1.StatefulSet
		se         v2beta1.SpiderEndpoint
		wantMember *ipam.StatefulSetMember
		wantPolicy *v2beta1.ReclaimPolicy
	}{
		{"StatefulSet wants it", true, []appsv1.StatefulSet{testStatefulSet("db", "u1", ptr.To[int32](3), 0, false)},
			testEndpoint("db-1", "StatefulSet", "db", nil), &ipam.StatefulSetMember{Name: "db", Ordinal: 1, Exists: true, InRange: true}, nil},
		{"matched by name whatever its UID (re-created)", true, []appsv1.StatefulSet{testStatefulSet("db", "other", ptr.To[int32](3), 0, false)},
			testEndpoint("db-1", "StatefulSet", "db", nil), &ipam.StatefulSetMember{Name: "db", Ordinal: 1, Exists: true, InRange: true}, nil},
		{"scaled down, with a policy", true, []appsv1.StatefulSet{testStatefulSet("db", "u1", ptr.To[int32](1), 0, false)},
			testEndpoint("db-1", "StatefulSet", "db", map[string]string{ipam.AnnoReclaimPolicy: "Never"}),
			&ipam.StatefulSetMember{Name: "db", Ordinal: 1, Exists: true}, &never},
		{"StatefulSet gone", true, nil,
			testEndpoint("db-1", "StatefulSet", "db", nil), &ipam.StatefulSetMember{Name: "db", Ordinal: 1}, nil},
		{"retention off", false, []appsv1.StatefulSet{testStatefulSet("db", "u1", ptr.To[int32](3), 0, false)},
			testEndpoint("db-1", "StatefulSet", "db", nil), nil, nil},
		{"a Deployment's pod", true, nil,
			testEndpoint("web-abc-xyz", "Deployment", "web", map[string]string{ipam.AnnoReclaimPolicy: "Never"}), nil, &never},
		{"a StatefulSet pod that keeps nothing: its endpoint is its pod's", true, []appsv1.StatefulSet{testStatefulSet("db", "u1", ptr.To[int32](3), 0, false)},
			func() v2beta1.SpiderEndpoint {
				se := testEndpoint("db-1", "StatefulSet", "db", nil)
				se.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: "db-1", UID: "uid-db-1"}}
				return se
			}(), nil, nil},
		{"name without the StatefulSet's ordinal", true, []appsv1.StatefulSet{testStatefulSet("db", "u1", ptr.To[int32](3), 0, false)},
			testEndpoint("cache-1", "StatefulSet", "db", nil), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, errs := buildInput(ipam.DefaultGCConfig(), tt.retention, ipam.StatefulKinds{}, snapshot{endpoints: []v2beta1.SpiderEndpoint{tt.se}, statefulSets: tt.sets}, nil)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			e := in.Endpoints[0]
			if !reflect.DeepEqual(e.StatefulSet, tt.wantMember) {
				t.Errorf("StatefulSet = %+v, want %+v", e.StatefulSet, tt.wantMember)
			}
			if !reflect.DeepEqual(e.ReclaimPolicy, tt.wantPolicy) {
				t.Errorf("ReclaimPolicy = %v, want %v", e.ReclaimPolicy, tt.wantPolicy)
			}
			want := []ipam.GCAddress{{NIC: "eth0", Pool: "a", Addr: netip.MustParseAddr("10.0.0.5"), Owner: records.OwnerOf("uid-"+tt.se.Name, "ctr", "eth0")}}
			if !reflect.DeepEqual(e.Addresses, want) || e.ObjectUID != string(tt.se.UID) || e.ResourceVersion != "7" || e.PodUID != "uid-"+tt.se.Name {
				t.Errorf("endpoint = %+v", e)
			}
			if in.endpoint("ns/"+tt.se.Name) != &in.Endpoints[0] {
				t.Errorf("endpoint index does not find ns/%s", tt.se.Name)
			}
		})
	}
}

func TestBuildInputPodsNodesPools(t *testing.T) {
	deleted := time.Unix(1000, 0)
	pod := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u", DeletionTimestamp: &metav1.Time{Time: deleted}},
		Spec:       corev1.PodSpec{NodeName: "n1"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	nodes := []corev1.Node{
		{ObjectMeta: metav1.ObjectMeta{Name: "ready"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "notready"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "new"}},
	}
	policy := v2beta1.ReclaimPolicy("1h")
	pools := []v2beta1.SpiderIPPool{
		{ObjectMeta: metav1.ObjectMeta{Name: "good", UID: "pu"}, Spec: v2beta1.IPPoolSpec{Subnet: "10.0.0.0/24", IPs: []v2beta1.IPOrRange{"10.0.0.1-10.0.0.9"},
			Orbweaver: &v2beta1.IPPoolOrbweaverSpec{ReclaimPolicy: &policy}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "corrupt"}, Spec: v2beta1.IPPoolSpec{Subnet: "10.1.0.0/24"},
			Status: v2beta1.IPPoolStatus{Orbweaver: &v2beta1.IPPoolOrbweaverStatus{Records: []byte{9, 9, 9}}}},
	}
	ended := map[uint64]time.Time{1: time.Unix(5, 0)}
	in, errs := buildInput(ipam.DefaultGCConfig(), true, ipam.StatefulKinds{}, snapshot{pods: []corev1.Pod{pod}, nodes: nodes, pools: pools}, ended)

	wantPod := ipam.GCPod{Namespace: "ns", Name: "p", UID: "u", Phase: ipam.PodRunning, Node: "n1", DeletionTimestamp: deleted}
	if !reflect.DeepEqual(in.Pods, []ipam.GCPod{wantPod}) {
		t.Errorf("pods = %+v", in.Pods)
	}
	wantNodes := []ipam.GCNode{{Name: "ready", Ready: true}, {Name: "notready"}, {Name: "new"}}
	if !reflect.DeepEqual(in.Nodes, wantNodes) {
		t.Errorf("nodes = %+v, want %+v", in.Nodes, wantNodes)
	}
	if len(in.Pools) != 1 || in.Pools[0].Pool.Name() != "good" || in.Pools[0].ReclaimPolicy == nil || *in.Pools[0].ReclaimPolicy != policy {
		t.Errorf("pools = %+v, want only the decodable pool with its policy", in.Pools)
	}
	if in.poolUIDs["good"] != "pu" {
		t.Errorf("pool UIDs = %v", in.poolUIDs)
	}
	if len(errs) != 1 || !errors.Is(errs[0], ipam.ErrInvalidPool) {
		t.Errorf("errors = %v, want the corrupt pool's", errs)
	}
	if !reflect.DeepEqual(in.EndedSince, ended) {
		t.Errorf("EndedSince not passed through: %v", in.EndedSince)
	}
}

func TestEndpointNamedIn(t *testing.T) {
	in, _ := buildInput(ipam.DefaultGCConfig(), true, ipam.StatefulKinds{}, snapshot{endpoints: []v2beta1.SpiderEndpoint{testEndpoint("db-1", "StatefulSet", "db", nil)}}, nil)
	tests := []struct {
		msg  string
		want bool
	}{
		{"SpiderEndpoint ns/db-1: invalid reclaim policy: reclaim policy \"0s\": ...; keeping its addresses", true},
		{"SpiderEndpoint ns/db-2: invalid reclaim policy", false},
		{"SpiderIPPool a left out of GC", false},
	}
	for _, tt := range tests {
		se := in.endpointNamedIn(tt.msg)
		if (se != nil) != tt.want || (se != nil && (se.Name != "db-1" || se.UID != "se-db-1")) {
			t.Errorf("endpointNamedIn(%q) = %v, want found=%t", tt.msg, se, tt.want)
		}
	}
}

func TestReservedSets(t *testing.T) {
	rs := reservedSetsOf([]v2beta1.SpiderReservedIP{
		{Spec: v2beta1.ReservedIPSpec{IPs: []v2beta1.IPOrRange{"10.0.0.1-10.0.0.3", "fd00::1"}}},
		{Spec: v2beta1.ReservedIPSpec{IPs: []v2beta1.IPOrRange{"10.0.0.3-10.0.0.4", "not-an-ip"}}},
	})
	v4 := rs.of(&v2beta1.SpiderIPPool{Spec: v2beta1.IPPoolSpec{Subnet: "10.0.0.0/24"}})
	v6 := rs.of(&v2beta1.SpiderIPPool{Spec: v2beta1.IPPoolSpec{Subnet: "fd00::/64"}})
	if got := v4.String(); got != "10.0.0.1-10.0.0.4" {
		t.Errorf("IPv4 reserved = %s", got)
	}
	if got := v6.String(); got != "fd00::1" {
		t.Errorf("IPv6 reserved = %s", got)
	}
}

func TestUpdateFilters(t *testing.T) {
	pod := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	finished := pod.DeepCopy()
	finished.Status.Phase = corev1.PodSucceeded
	relabeled := pod.DeepCopy()
	relabeled.Labels = map[string]string{"a": "b"}
	deleting := pod.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}
	node := &corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	notReady := node.DeepCopy()
	notReady.Status.Conditions[0].Status = corev1.ConditionFalse
	heartbeat := node.DeepCopy()
	heartbeat.Status.Conditions[0].LastHeartbeatTime = metav1.Time{Time: time.Unix(2, 0)}
	st := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3)}}
	scaled := st.DeepCopy()
	scaled.Spec.Replicas = ptr.To[int32](1)
	status := st.DeepCopy()
	status.Status.ReadyReplicas = 2

	tests := []struct {
		name     string
		changed  func(old, new client.Object) bool
		old, new client.Object
		want     bool
	}{
		{"pod finished", podChanged, pod, finished, true},
		{"pod being deleted", podChanged, pod, deleting, true},
		{"pod relabeled", podChanged, pod, relabeled, false},
		{"node NotReady", nodeChanged, node, notReady, true},
		{"node heartbeat", nodeChanged, node, heartbeat, false},
		{"StatefulSet scaled", statefulSetChanged, st, scaled, true},
		{"StatefulSet status", statefulSetChanged, st, status, false},
	}
	for _, tt := range tests {
		if got := tt.changed(tt.old, tt.new); got != tt.want {
			t.Errorf("%s: changed = %t, want %t", tt.name, got, tt.want)
		}
	}
}

// kruiseObject is an OpenKruise Advanced StatefulSet as the cache lists it.
func kruiseObject(name, uid string, replicas any, deleting bool) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps.kruise.io/v1beta1", "kind": "StatefulSet",
		"metadata": map[string]any{"namespace": "ns", "name": name, "uid": uid},
		"spec":     map[string]any{},
	}}
	if replicas != nil {
		u.Object["spec"].(map[string]any)["replicas"] = replicas
	}
	if deleting {
		u.SetDeletionTimestamp(&metav1.Time{Time: time.Unix(100, 0)})
	}
	return u
}

// TestAddedStatefulKindMember: with OpenKruise's Advanced StatefulSet added
// (--stateful-workload-kinds), its pods and kept endpoints are members as a
// StatefulSet's are, read from spec.replicas; apps' StatefulSet of the same name is
// another controller; without the flag they are no one's.
func TestAddedStatefulKindMember(t *testing.T) {
	kruise, err := ipam.ParseStatefulKinds([]string{"apps.kruise.io/v1beta1/StatefulSet"})
	if err != nil {
		t.Fatal(err)
	}
	k := kruise.Extra()[0]
	kruiseRef := func(name, uid string) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: "apps.kruise.io/v1beta1", Kind: "StatefulSet", Name: name, UID: types.UID(uid), Controller: ptr.To(true)}
	}
	kruiseEndpoint := func(name, owner string) v2beta1.SpiderEndpoint {
		return testEndpoint(name, "StatefulSet", owner, map[string]string{ipam.AnnoOwnerAPIVersion: "apps.kruise.io/v1beta1"})
	}
	for _, tt := range []struct {
		name      string
		kinds     ipam.StatefulKinds
		sets      []appsv1.StatefulSet
		workloads []*unstructured.Unstructured
		pod       *corev1.Pod
		se        *v2beta1.SpiderEndpoint
		want      *ipam.StatefulSetMember
	}{
		{name: "pod, in range", kinds: kruise, workloads: []*unstructured.Unstructured{kruiseObject("web", "u1", int64(3), false)},
			pod: ptr.To(ownedPod("web-2", kruiseRef("web", "u1"))), want: &ipam.StatefulSetMember{Name: "web", Ordinal: 2, Exists: true, InRange: true}},
		{name: "pod, scaled down", kinds: kruise, workloads: []*unstructured.Unstructured{kruiseObject("web", "u1", int64(2), false)},
			pod: ptr.To(ownedPod("web-2", kruiseRef("web", "u1"))), want: &ipam.StatefulSetMember{Name: "web", Ordinal: 2, Exists: true}},
		{name: "pod, replicas unset means 1", kinds: kruise, workloads: []*unstructured.Unstructured{kruiseObject("web", "u1", nil, false)},
			pod: ptr.To(ownedPod("web-0", kruiseRef("web", "u1"))), want: &ipam.StatefulSetMember{Name: "web", Ordinal: 0, Exists: true, InRange: true}},
		{name: "pod, being deleted", kinds: kruise, workloads: []*unstructured.Unstructured{kruiseObject("web", "u1", int64(3), true)},
			pod: ptr.To(ownedPod("web-0", kruiseRef("web", "u1"))), want: &ipam.StatefulSetMember{Name: "web", Ordinal: 0}},
		{name: "pod, apps' StatefulSet of the same name is another controller", kinds: kruise,
			sets: []appsv1.StatefulSet{testStatefulSet("web", "u1", ptr.To[int32](3), 0, false)},
			pod:  ptr.To(ownedPod("web-0", kruiseRef("web", "u1"))), want: &ipam.StatefulSetMember{Name: "web", Ordinal: 0}},
		{name: "pod, kind not added", workloads: []*unstructured.Unstructured{kruiseObject("web", "u1", int64(3), false)},
			pod: ptr.To(ownedPod("web-0", kruiseRef("web", "u1")))},
		{name: "endpoint, in range", kinds: kruise, workloads: []*unstructured.Unstructured{kruiseObject("db", "u1", int64(3), false)},
			se: ptr.To(kruiseEndpoint("db-1", "db")), want: &ipam.StatefulSetMember{Name: "db", Ordinal: 1, Exists: true, InRange: true}},
		{name: "endpoint, its controller gone though apps' db exists", kinds: kruise,
			sets: []appsv1.StatefulSet{testStatefulSet("db", "u1", ptr.To[int32](3), 0, false)},
			se:   ptr.To(kruiseEndpoint("db-1", "db")), want: &ipam.StatefulSetMember{Name: "db", Ordinal: 1}},
		{name: "endpoint without the annotation is apps'", kinds: kruise,
			sets:      []appsv1.StatefulSet{testStatefulSet("db", "u1", ptr.To[int32](3), 0, false)},
			workloads: []*unstructured.Unstructured{kruiseObject("db", "u2", int64(0), false)},
			se:        ptr.To(testEndpoint("db-1", "StatefulSet", "db", nil)), want: &ipam.StatefulSetMember{Name: "db", Ordinal: 1, Exists: true, InRange: true}},
		{name: "endpoint, kind not added", workloads: []*unstructured.Unstructured{kruiseObject("db", "u1", int64(3), false)},
			se: ptr.To(kruiseEndpoint("db-1", "db"))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			snap := snapshot{statefulSets: tt.sets}
			for _, u := range tt.workloads {
				snap.workloads = append(snap.workloads, workloadOf(k, u))
			}
			if tt.pod != nil {
				snap.pods = []corev1.Pod{*tt.pod}
			}
			if tt.se != nil {
				snap.endpoints = []v2beta1.SpiderEndpoint{*tt.se}
			}
			in, errs := buildInput(ipam.DefaultGCConfig(), true, tt.kinds, snap, nil)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			var got *ipam.StatefulSetMember
			if tt.pod != nil {
				got = in.Pods[0].StatefulSet
			} else {
				got = in.Endpoints[0].StatefulSet
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("member = %+v, want %+v", got, tt.want)
			}
		})
	}
}
