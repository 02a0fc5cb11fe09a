package gc

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// snapshot is what one pass reads from the cache. The objects are the cache's own
// (listed without deep copies): nothing here modifies them.
type snapshot struct {
	pods         []corev1.Pod
	nodes        []corev1.Node
	statefulSets []appsv1.StatefulSet
	// workloads are the objects of the kinds added to ipam.StatefulKinds.
	workloads []statefulWorkload
	endpoints []v2beta1.SpiderEndpoint
	pools     []v2beta1.SpiderIPPool
	reserved  reservedSets
}

// read lists the snapshot from the manager's cache.
func (r *Reconciler) read(ctx context.Context) (snapshot, error) {
	var (
		s         snapshot
		pods      corev1.PodList
		nodes     corev1.NodeList
		sets      appsv1.StatefulSetList
		endpoints v2beta1.SpiderEndpointList
		pools     v2beta1.SpiderIPPoolList
		reserved  v2beta1.SpiderReservedIPList
	)
	for _, l := range []struct {
		kind string
		list client.ObjectList
	}{
		{"Pods", &pods}, {"Nodes", &nodes}, {"StatefulSets", &sets},
		{"SpiderEndpoints", &endpoints}, {"SpiderIPPools", &pools}, {"SpiderReservedIPs", &reserved},
	} {
		if err := r.cache.List(ctx, l.list, client.UnsafeDisableDeepCopy); err != nil {
			return snapshot{}, fmt.Errorf("gc: list %s from the cache: %w", l.kind, err)
		}
	}
	s.pods, s.nodes, s.statefulSets = pods.Items, nodes.Items, sets.Items
	s.endpoints, s.pools = endpoints.Items, pools.Items
	s.reserved = reservedSetsOf(reserved.Items)
	for _, k := range r.p.StatefulKinds.Extra() {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(schema.GroupVersionKind{Group: k.Group, Version: k.Version, Kind: k.Kind + "List"})
		if err := r.cache.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
			return snapshot{}, fmt.Errorf("gc: list %s from the cache: %w", k, err)
		}
		for i := range list.Items {
			s.workloads = append(s.workloads, workloadOf(k, &list.Items[i]))
		}
	}
	return s, nil
}

// statefulWorkload is what GC reads of a controller whose pods keep their addresses:
// apps' StatefulSet, or an object of a kind added to ipam.StatefulKinds.
type statefulWorkload struct {
	group, kind, namespace, name string
	uid                          types.UID
	// replicas is spec.replicas (nil: 1); start is spec.ordinals.start.
	replicas *int32
	start    int32
	deleting bool
}

// key is the workload's key in buildInput's map, workloadKey of its own fields.
func (w *statefulWorkload) key() string { return workloadKey(w.group, w.kind, w.namespace, w.name) }

func workloadKey(group, kind, namespace, name string) string {
	return group + "/" + kind + "/" + namespace + "/" + name
}

// wants tells whether the workload wants a pod with this ordinal.
func (w *statefulWorkload) wants(ordinal int) bool {
	return ipam.StatefulSetWantsOrdinal(w.replicas, w.start, ordinal)
}

func statefulSetWorkload(st *appsv1.StatefulSet) statefulWorkload {
	w := statefulWorkload{group: appsv1.GroupName, kind: ipam.KindStatefulSet, namespace: st.Namespace, name: st.Name,
		uid: st.UID, replicas: st.Spec.Replicas, deleting: st.DeletionTimestamp != nil}
	if st.Spec.Ordinals != nil {
		w.start = st.Spec.Ordinals.Start
	}
	return w
}

// workloadOf reads an added kind's object as a StatefulSet is read: spec.replicas and
// spec.ordinals.start. A replicas field that is not an integer counts as 1.
func workloadOf(k ipam.StatefulKind, u *unstructured.Unstructured) statefulWorkload {
	w := statefulWorkload{group: k.Group, kind: k.Kind, namespace: u.GetNamespace(), name: u.GetName(),
		uid: u.GetUID(), deleting: u.GetDeletionTimestamp() != nil}
	if n, found, err := unstructured.NestedInt64(u.Object, "spec", "replicas"); found && err == nil {
		w.replicas = ptr.To(int32(n))
	}
	if n, found, err := unstructured.NestedInt64(u.Object, "spec", "ordinals", "start"); found && err == nil {
		w.start = int32(n)
	}
	return w
}

// input is PlanGC's input plus what writing and reporting need of the objects.
type input struct {
	ipam.GCInput
	// endpoints by namespace/name, for events and for holding back deletions.
	endpoints map[string]*ipam.GCEndpoint
	// poolUIDs by name, for events on pools.
	poolUIDs map[string]types.UID
}

// endpoint returns the endpoint with this namespace/name in the snapshot.
func (in input) endpoint(key string) *ipam.GCEndpoint { return in.endpoints[key] }

// endpointNamedIn returns the endpoint a PlanGC warning names ("SpiderEndpoint
// <namespace>/<name>: ..."), as an object to post an event on; nil when none.
func (in input) endpointNamedIn(msg string) *v2beta1.SpiderEndpoint {
	rest, ok := strings.CutPrefix(msg, "SpiderEndpoint ")
	if !ok {
		return nil
	}
	key, _, ok := strings.Cut(rest, ":")
	if e := in.endpoints[key]; ok && e != nil {
		return endpointObject(e.Namespace, e.Name, e.ObjectUID)
	}
	return nil
}

// buildInput turns a snapshot into PlanGC's input. It is pure. StatefulSet members
// are set only with retention on. Inputs that do not decode are returned as errors:
// an endpoint's unreadable address is left out (the rest of it is used), a pool whose
// records do not decode is left out (its records wait).
func buildInput(cfg ipam.GCConfig, retention bool, kinds ipam.StatefulKinds, s snapshot, endedSince map[uint64]time.Time) (input, []error) {
	in := input{
		GCInput:   ipam.GCInput{Config: cfg, EndedSince: endedSince},
		endpoints: make(map[string]*ipam.GCEndpoint, len(s.endpoints)),
		poolUIDs:  make(map[string]types.UID, len(s.pools)),
	}
	var errs []error
	sets := make(map[string]*statefulWorkload, len(s.statefulSets)+len(s.workloads))
	for i := range s.statefulSets {
		w := statefulSetWorkload(&s.statefulSets[i])
		sets[w.key()] = &w
	}
	for i := range s.workloads {
		w := &s.workloads[i]
		sets[w.key()] = w
	}

	in.Pods = make([]ipam.GCPod, 0, len(s.pods))
	for i := range s.pods {
		pod := &s.pods[i]
		p := ipam.GCPod{
			Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID),
			Phase: ipam.PodPhase(pod.Status.Phase), Node: pod.Spec.NodeName,
		}
		if pod.DeletionTimestamp != nil {
			p.DeletionTimestamp = pod.DeletionTimestamp.Time
			p.ForceDeleted = ptr.Deref(pod.DeletionGracePeriodSeconds, -1) == 0
		}
		if retention {
			p.StatefulSet = podMember(pod, kinds, sets)
		}
		in.Pods = append(in.Pods, p)
	}

	in.Nodes = make([]ipam.GCNode, 0, len(s.nodes))
	for i := range s.nodes {
		in.Nodes = append(in.Nodes, ipam.GCNode{Name: s.nodes[i].Name, Ready: nodeReady(&s.nodes[i])})
	}

	in.Endpoints = make([]ipam.GCEndpoint, 0, len(s.endpoints))
	for i := range s.endpoints {
		se := &s.endpoints[i]
		e, err := ipam.GCEndpointOf(se)
		if err != nil {
			errs = append(errs, err)
		}
		// A kept endpoint has no owner reference; a StatefulSet pod that keeps nothing
		// (opted out, or not opted in) has its pod as owner and is any pod's.
		if retention && len(se.OwnerReferences) == 0 && kinds.Match(ipam.OwnerAPIVersionOf(se.Annotations), se.Status.OwnerControllerType) {
			e.StatefulSet = endpointMember(se, sets)
		}
		if v := se.Annotations[ipam.AnnoReclaimPolicy]; v != "" {
			rp := v2beta1.ReclaimPolicy(v)
			e.ReclaimPolicy = &rp
		}
		in.Endpoints = append(in.Endpoints, e)
	}
	for i := range in.Endpoints {
		in.endpoints[in.Endpoints[i].Key()] = &in.Endpoints[i]
	}

	in.Pools = make([]ipam.GCPool, 0, len(s.pools))
	for i := range s.pools {
		sp := &s.pools[i]
		in.poolUIDs[sp.Name] = sp.UID
		gp, err := ipam.GCPoolOf(sp)
		if err != nil {
			errs = append(errs, fmt.Errorf("SpiderIPPool %s left out of GC: %w", sp.Name, err))
			continue
		}
		in.Pools = append(in.Pools, gp)
	}
	return in, errs
}

// podMember is what the StatefulSet (or added stateful kind, ipam.StatefulKinds)
// controlling a pod wants of it; nil when none controls the pod (or its name carries no
// ordinal of it). The controller must be the one the owner reference names: one deleted
// and re-created under the same name, or one being deleted, no longer wants the old pod.
func podMember(pod *corev1.Pod, kinds ipam.StatefulKinds, sets map[string]*statefulWorkload) *ipam.StatefulSetMember {
	ref := metav1.GetControllerOf(pod)
	if ref == nil || !kinds.Match(ref.APIVersion, ref.Kind) {
		return nil
	}
	ordinal, ok := ipam.StatefulSetOrdinal(pod.Name, ref.Name)
	if !ok {
		return nil
	}
	m := &ipam.StatefulSetMember{Name: ref.Name, Ordinal: ordinal}
	if w := sets[workloadKey(ipam.GroupOf(ref.APIVersion), ref.Kind, pod.Namespace, ref.Name)]; w != nil && w.uid == ref.UID && !w.deleting {
		m.Exists = true
		m.InRange = w.wants(ordinal)
	}
	return m
}

// endpointMember is what the controller an endpoint names (status.ownerControllerType
// and ownerControllerName, its group in ipam.AnnoOwnerAPIVersion) wants of the
// endpoint's pod identity; nil when the endpoint's name carries no ordinal of it. The
// endpoint outlives its pods and the controller, so the controller is matched by name:
// one re-created under the same name wants the identity again.
func endpointMember(se *v2beta1.SpiderEndpoint, sets map[string]*statefulWorkload) *ipam.StatefulSetMember {
	name := se.Status.OwnerControllerName
	ordinal, ok := ipam.StatefulSetOrdinal(se.Name, name)
	if name == "" || !ok {
		return nil
	}
	m := &ipam.StatefulSetMember{Name: name, Ordinal: ordinal}
	group := ipam.GroupOf(ipam.OwnerAPIVersionOf(se.Annotations))
	if w := sets[workloadKey(group, se.Status.OwnerControllerType, se.Namespace, name)]; w != nil && !w.deleting {
		m.Exists = true
		m.InRange = w.wants(ordinal)
	}
	return m
}

// nodeReady reports the node's Ready condition; a node that reports none is not Ready.
func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// reservedSets is the union of every SpiderReservedIP, per family.
type reservedSets struct{ v4, v6 ip.Set }

// of returns the reserved addresses of the pool's family.
func (r reservedSets) of(sp *v2beta1.SpiderIPPool) ip.Set {
	if family, _ := ipam.PoolFamily(sp); family == v2beta1.IPv6 {
		return r.v6
	}
	return r.v4
}

// reservedSetsOf unions the reserved IPs by family (ipam.ReservedAddresses). GC's writes
// do not depend on them: reserved addresses narrow what is handed out, not who holds what.
func reservedSetsOf(items []v2beta1.SpiderReservedIP) reservedSets {
	return reservedSets{v4: ipam.ReservedAddresses(items, v2beta1.IPv4), v6: ipam.ReservedAddresses(items, v2beta1.IPv6)}
}
