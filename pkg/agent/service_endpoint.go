package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/crdstore"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// record writes the NIC into the pod's SpiderEndpoint, creating it for the first NIC.
func (s *Service) record(ctx context.Context, req *addRequest, se *v2beta1.SpiderEndpoint, detail v2beta1.IPAllocationDetail) error {
	for try := 0; try < 5; try++ {
		if se == nil {
			se = newEndpoint(req.pod, s.node, *req.att.ContainerID, req.retain)
			se.Status.Current.IPs = []v2beta1.IPAllocationDetail{detail}
			setNetwork(se, detail.NIC, req.att.NetworkName)
			err := s.endpoints.Create(ctx, se)
			if !errors.Is(err, crdstore.ErrEndpointChanged) {
				return err
			}
		} else {
			next := se.DeepCopy()
			next.Status.Current.IPs = slices.DeleteFunc(next.Status.Current.IPs, func(d v2beta1.IPAllocationDetail) bool { return d.NIC == detail.NIC })
			next.Status.Current.IPs = append(next.Status.Current.IPs, detail)
			setNetwork(next, detail.NIC, req.att.NetworkName)
			err := s.endpoints.Update(ctx, next)
			if !errors.Is(err, crdstore.ErrEndpointChanged) {
				return err
			}
		}
		// Another NIC of the same pod wrote it meanwhile: merge into the fresh one.
		fresh, err := s.endpoints.Get(ctx, req.pod.Namespace, req.pod.Name)
		if err != nil && !errors.Is(err, crdstore.ErrEndpointNotFound) {
			return err
		}
		switch s.relate(fresh, req.pod, *req.att.ContainerID, req.retain) {
		case ipam.EndpointNone:
			se = nil
		case ipam.EndpointPredecessor:
			// A StatefulSet's endpoint written a moment ago for the pod's previous
			// instance: roll back and let the runtime retry, whose ADD adopts it.
			return fmt.Errorf("SpiderEndpoint %s/%s was just written for the previous instance of the StatefulSet pod: %w", req.pod.Namespace, req.pod.Name, ipam.ErrConflict)
		case ipam.EndpointPreviousPod:
			// A previous pod of the same name, recorded by another node's agent (so not
			// in this node's cache): it is gone, since this pod has its name now.
			if err := s.releaseEndpoint(ctx, fresh); err != nil {
				return fmt.Errorf("release the IPs of the previous pod named %s/%s: %w", req.pod.Namespace, req.pod.Name, err)
			}
			se = nil
		case ipam.EndpointOtherSandbox:
			// The pod's previous sandbox recorded it a moment ago and this node's cache
			// had not seen it yet: merging would mix two sandboxes' ownership. Roll back
			// and let the runtime retry; by then the cache has it and ADD moves it.
			return fmt.Errorf("SpiderEndpoint %s/%s was just written for another sandbox of the pod: %w", req.pod.Namespace, req.pod.Name, ipam.ErrConflict)
		default:
			se = fresh
		}
	}
	return fmt.Errorf("record SpiderEndpoint %s/%s: %w", req.pod.Namespace, req.pod.Name, ipam.ErrConflict)
}

// newEndpoint is a pod's first SpiderEndpoint. It is owned by the pod, and so deleted
// with it, except when retain (a StatefulSet's pod with fixed IPs): then it outlives the
// pod, and carries the pod's reclaim-policy annotation for garbage collection.
func newEndpoint(pod *corev1.Pod, node, containerID string, retain bool) *v2beta1.SpiderEndpoint {
	kind, name := "Pod", pod.Name
	top := topControllerOf(pod)
	if !top.IsZero() {
		kind, name = top.Kind, top.Name
	}
	se := &v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name},
		Status: v2beta1.WorkloadEndpointStatus{
			Current: v2beta1.PodIPAllocation{
				UID: string(pod.UID), Node: node,
				Orbweaver: &v2beta1.PodAllocationOrbweaver{ContainerID: containerID},
			},
			OwnerControllerType: kind, OwnerControllerName: name,
		},
	}
	if retain {
		// Which group's kind ownerControllerType is: apps' StatefulSet and OpenKruise's
		// share the kind (ipam.StatefulKinds).
		se.Annotations = map[string]string{ipam.AnnoOwnerAPIVersion: top.APIVersion}
		setReclaimPolicy(se, pod)
	} else {
		// Deleted with the pod by Kubernetes' garbage collector once the pod is gone.
		se.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}}
	}
	return se
}

// setReclaimPolicy copies the pod's reclaim-policy annotation onto its endpoint, where
// garbage collection reads it (it holds after the StatefulSet is gone).
func setReclaimPolicy(se *v2beta1.SpiderEndpoint, pod *corev1.Pod) {
	v, ok := pod.Annotations[ipam.AnnoReclaimPolicy]
	if !ok {
		delete(se.Annotations, ipam.AnnoReclaimPolicy)
		return
	}
	if se.Annotations == nil {
		se.Annotations = map[string]string{}
	}
	se.Annotations[ipam.AnnoReclaimPolicy] = v
}

// retainsFor tells whether the pod keeps its addresses across re-creation: a pod of a
// StatefulSet (or of a kind added to ipam.StatefulKinds), with StatefulSet fixed IPs on,
// that does not opt out (or, with fixedIPOptIn, opts in) by ipam.FixedIPWanted, whose
// error it returns for a bad annotation. Other pods' annotations are not read.
func (s *Service) retainsFor(pod *corev1.Pod) (bool, error) {
	if !s.statefulSetFixedIPs {
		return false, nil
	}
	top := topControllerOf(pod)
	if !s.kinds.Match(top.APIVersion, top.Kind) {
		return false, nil
	}
	return ipam.FixedIPWanted(pod.Annotations, s.fixedIPOptIn)
}

// ordinalFor returns the pod's ordinal when it takes the address of it
// (ipam.AnnoIPByOrdinal): a pod that keeps its addresses (retain) and whose name ends in
// its controller's ordinal; -1 otherwise. A bad annotation is an error.
func (s *Service) ordinalFor(pod *corev1.Pod, retain bool) (int, error) {
	if !retain {
		return -1, nil
	}
	want, err := ipam.IPByOrdinalWanted(pod.Annotations)
	if err != nil || !want {
		return -1, err
	}
	controller := topControllerOf(pod).Name
	ordinal, ok := ipam.StatefulSetOrdinal(pod.Name, controller)
	if !ok {
		return -1, fmt.Errorf("%w: %s: pod name %s ends in no ordinal of its controller %s", ipam.ErrBadAnnotation, ipam.AnnoIPByOrdinal, pod.Name, controller)
	}
	return ordinal, nil
}

// relate is ipam.RelateEndpoint for a pod's endpoint (nil: none) and an ADD of the pod's
// sandbox ctr; retain is retainsFor's answer for the pod.
func (s *Service) relate(se *v2beta1.SpiderEndpoint, pod *corev1.Pod, ctr string, retain bool) ipam.EndpointRelation {
	return ipam.RelateEndpoint(endpointFacts(se, pod), ipam.CallFacts{PodUID: string(pod.UID), ContainerID: ctr, Retains: retain, Add: true})
}

// endpointFacts are what ipam.RelateEndpoint needs of an endpoint (nil: none); pod, when
// set, is the pod of the call: the endpoint is kept for it when no pod owns the endpoint
// and it names the pod's StatefulSet.
func endpointFacts(se *v2beta1.SpiderEndpoint, pod *corev1.Pod) ipam.EndpointFacts {
	if se == nil {
		return ipam.EndpointFacts{}
	}
	f := ipam.EndpointFacts{Exists: true, PodUID: se.Status.Current.UID, ContainerID: containerOf(se)}
	if pod != nil {
		f.KeptFor = keptFor(se, topControllerOf(pod))
	}
	return f
}

// keptFor tells whether no pod owns the endpoint and it names the controller top: the
// same name, kind and group.
func keptFor(se *v2beta1.SpiderEndpoint, top ipam.TopController) bool {
	return len(se.OwnerReferences) == 0 && se.Status.OwnerControllerType == top.Kind && se.Status.OwnerControllerName == top.Name &&
		ipam.GroupOf(ipam.OwnerAPIVersionOf(se.Annotations)) == ipam.GroupOf(top.APIVersion)
}

// kept tells whether the endpoint is kept for its pod's next instance: no pod owns it,
// and it names a controller whose pods keep their addresses.
func (s *Service) kept(se *v2beta1.SpiderEndpoint) bool {
	return s.statefulSetFixedIPs && len(se.OwnerReferences) == 0 &&
		s.kinds.Match(ipam.OwnerAPIVersionOf(se.Annotations), se.Status.OwnerControllerType)
}

// keptPoolsServe refuses, with ErrKeptIPNotServed, to let a StatefulSet pod's kept
// addresses go because it was scheduled to a node their pool does not serve: the pod
// would silently get another address. A kept pool that is gone, or that serves this
// node but is no longer chosen (the pod's pool annotation changed), lets them go.
func (s *Service) keptPoolsServe(ctx context.Context, se *v2beta1.SpiderEndpoint, nic *v2beta1.IPAllocationDetail, c candidates) error {
	node, err := s.cluster.Node(ctx)
	if err != nil {
		return fmt.Errorf("look up this node: %w", err)
	}
	for _, kept := range []struct {
		pool, addr *string
		chosen     []string
	}{{nic.IPv4Pool, nic.IPv4, c.ipv4}, {nic.IPv6Pool, nic.IPv6, c.ipv6}} {
		if kept.pool == nil || slices.Contains(kept.chosen, *kept.pool) {
			continue
		}
		sp, err := s.cluster.Pool(ctx, *kept.pool)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		if why := ipam.NodeRefusal(sp, node, ""); why != "" {
			return fmt.Errorf("%w: StatefulSet pod %s/%s keeps %s of SpiderIPPool %q, whose %s; it does not take another address silently: "+
				"schedule it on a node the pool serves (a nodeAffinity on the StatefulSet), widen the pool's nodeName or nodeAffinity, "+
				"or delete SpiderEndpoint %s/%s to let it take a new address",
				ipam.ErrKeptIPNotServed, se.Namespace, se.Name, ptr.Deref(kept.addr, ""), *kept.pool, why, se.Namespace, se.Name)
		}
	}
	return nil
}

// stillChosen tells whether a NIC's recorded pools are among the ones selection would
// choose now, family by family.
func stillChosen(nic *v2beta1.IPAllocationDetail, c candidates) bool {
	ok := func(pool *string, chosen []string) bool {
		return pool == nil || slices.Contains(chosen, *pool)
	}
	return ok(nic.IPv4Pool, c.ipv4) && ok(nic.IPv6Pool, c.ipv6)
}

// moveEndpoint hands every address of the endpoint to the pod's sandbox newCtr, in the
// pools first: the runtime re-created the pod's sandbox, or a StatefulSet re-created the
// pod (a new UID). The endpoint names one container for all of the pod's interfaces, so
// all of them move together. An interface whose addresses the previous holder no longer
// holds (released, or collected, and perhaps handed to someone else since) is dropped
// from the endpoint instead of reused; its ADD allocates afresh, and any of its
// addresses that did move come back to it then, since allocation is idempotent per
// owner.
func (s *Service) moveEndpoint(ctx context.Context, se *v2beta1.SpiderEndpoint, pod *corev1.Pod, newCtr string) (*v2beta1.SpiderEndpoint, error) {
	oldUID, oldCtr, newUID := se.Status.Current.UID, containerOf(se), string(pod.UID)
	next := se.DeepCopy()
	next.Status.Current.IPs = nil
	for i := range se.Status.Current.IPs {
		nic := &se.Status.Current.IPs[i]
		from, to := records.OwnerOf(oldUID, oldCtr, nic.NIC), records.OwnerOf(newUID, newCtr, nic.NIC)
		moved := true
		for _, a := range nicAddrs(nic) {
			ok, err := s.writers.get(a.pool).Rebind(ctx, a.addr, from, to)
			if err != nil && !errors.Is(err, ipam.ErrPoolNotFound) {
				return nil, err
			}
			moved = moved && ok
		}
		if moved {
			next.Status.Current.IPs = append(next.Status.Current.IPs, *nic)
		} else {
			s.log.Info("not reusing addresses their previous holder no longer holds", "SpiderEndpoint", klog.KObj(se), "ifName", nic.NIC)
		}
	}
	if next.Status.Current.Orbweaver == nil {
		next.Status.Current.Orbweaver = &v2beta1.PodAllocationOrbweaver{}
	}
	next.Status.Current.Orbweaver.ContainerID = newCtr
	next.Status.Current.UID = newUID
	next.Status.Current.Node = s.node
	if len(next.OwnerReferences) == 0 {
		setReclaimPolicy(next, pod)
	}
	if err := s.endpoints.Update(ctx, next); err != nil {
		return nil, err
	}
	return next, nil
}

type poolAddr struct {
	pool string
	addr netip.Addr
}

func nicAddrs(nic *v2beta1.IPAllocationDetail) []poolAddr {
	var out []poolAddr
	for _, f := range []struct{ cidr, pool *string }{{nic.IPv4, nic.IPv4Pool}, {nic.IPv6, nic.IPv6Pool}} {
		if f.cidr == nil || f.pool == nil {
			continue
		}
		if p, err := netip.ParsePrefix(*f.cidr); err == nil {
			out = append(out, poolAddr{*f.pool, p.Addr()})
		}
	}
	return out
}

func resultOf(nic *v2beta1.IPAllocationDetail) *models.AddResult {
	res := &models.AddResult{}
	add := func(version int64, cidr, pool, gw *string) {
		if cidr == nil {
			return
		}
		res.Ips = append(res.Ips, &models.IPConfig{Version: ptr.To(version), Address: cidr, Pool: pool, Gateway: ptr.Deref(gw, ""), Nic: nic.NIC})
	}
	add(4, nic.IPv4, nic.IPv4Pool, nic.IPv4Gateway)
	add(6, nic.IPv6, nic.IPv6Pool, nic.IPv6Gateway)
	for _, r := range nic.Routes {
		res.Routes = append(res.Routes, &models.Route{IfName: nic.NIC, Dst: ptr.To(r.Dst), Gw: string(r.Gw)})
	}
	return res
}

// setNetwork records which CNI network attached an interface.
func setNetwork(se *v2beta1.SpiderEndpoint, nic, network string) {
	if se.Status.Current.Orbweaver == nil {
		se.Status.Current.Orbweaver = &v2beta1.PodAllocationOrbweaver{}
	}
	o := se.Status.Current.Orbweaver
	if network == "" {
		delete(o.Networks, nic)
		return
	}
	if o.Networks == nil {
		o.Networks = map[string]string{}
	}
	o.Networks[nic] = network
}

func containerOf(se *v2beta1.SpiderEndpoint) string {
	if se.Status.Current.Orbweaver == nil {
		return ""
	}
	return se.Status.Current.Orbweaver.ContainerID
}

func findNIC(se *v2beta1.SpiderEndpoint, ifName string) *v2beta1.IPAllocationDetail {
	for i := range se.Status.Current.IPs {
		if se.Status.Current.IPs[i].NIC == ifName {
			return &se.Status.Current.IPs[i]
		}
	}
	return nil
}

// releaseEndpoint frees every address an endpoint records and deletes it.
func (s *Service) releaseEndpoint(ctx context.Context, se *v2beta1.SpiderEndpoint) error {
	ctr := containerOf(se)
	var errs []error
	for i := range se.Status.Current.IPs {
		nic := &se.Status.Current.IPs[i]
		owner := records.OwnerOf(se.Status.Current.UID, ctr, nic.NIC)
		for _, a := range nicAddrs(nic) {
			if _, err := s.writers.get(a.pool).Release(ctx, a.addr, owner); err != nil && !errors.Is(err, ipam.ErrPoolNotFound) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return s.endpoints.Delete(ctx, se)
}
