package inspect

import (
	"context"
	"fmt"
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// Verdicts of `pool why` about one pool named for an interface of a pod.
const (
	// VerdictTaken: the pool the agent allocates from: the first candidate in order
	// that has a free address.
	VerdictTaken = "Taken"
	// VerdictFallback: a candidate after the taken one, tried only when those before it
	// are full.
	VerdictFallback = "Fallback"
	// VerdictFull: a candidate with no free address; the agent passes over it.
	VerdictFull = "Full"
	// VerdictNotReady: a candidate whose Ready condition is False for a reason selection
	// does not look at (its records do not decode, its spec does not parse): the agent
	// tries it and the ADD fails.
	VerdictNotReady = "NotReady"
	// VerdictCandidate: a candidate of an interface whose selection fails anyway (the
	// other family has no pool, say): the ADD fails before any allocation.
	VerdictCandidate = "Candidate"
	// VerdictRefused: the pool refuses the pod; Reason says why.
	VerdictRefused = "Refused"
)

// WhyOptions is what `pool why` asks about, and what it cannot read from the cluster:
// the settings of the agent and of the CNI network config on the pod's node.
type WhyOptions struct {
	Namespace, Pod string
	// Interfaces to explain; empty means ipam.PodInterfaces of the pod, plus those its
	// SpiderEndpoint records.
	Interfaces []string
	// CNIDefaultIPv4 and CNIDefaultIPv6 are the CNI config's default_ipv4_ippool and
	// default_ipv6_ippool, when CNIDefaultsGiven; else they are unknown and taken as
	// empty, which the answer says.
	CNIDefaultIPv4, CNIDefaultIPv6 []string
	CNIDefaultsGiven               bool
	// EnableIPv4 and EnableIPv6 are the families the agents serve (their
	// --enable-ipv4/--enable-ipv6).
	EnableIPv4, EnableIPv6 bool
	// MultusClusterNetwork is the agents' --multus-cluster-network.
	MultusClusterNetwork string
}

// WhyInput is everything PodWhy is decided from.
type WhyInput struct {
	Options   WhyOptions
	Pod       *corev1.Pod
	Namespace *corev1.Namespace // nil when it cannot be read
	Node      *corev1.Node      // nil when the pod has none or it is gone
	Pools     []v2beta1.SpiderIPPool
	// JobController is the controller of the pod's Job, for a Job's pod that asks for
	// an auto pool (ipam.NeedsJobController); nil otherwise.
	JobController *metav1.OwnerReference
	// Endpoint is the pod's SpiderEndpoint; nil when it has none.
	Endpoint *v2beta1.SpiderEndpoint
}

// PodWhy is the answer of `pool why`: for each interface of the pod, the pools the
// selection rules named and what became of each.
type PodWhy struct {
	Namespace     string `json:"namespace"`
	Pod           string `json:"pod"`
	Node          string `json:"node,omitempty"`
	TopController string `json:"topController,omitempty"`
	// Assumptions say what the answer took from flags, not from the cluster.
	Assumptions []string       `json:"assumptions,omitempty"`
	Interfaces  []InterfaceWhy `json:"interfaces"`
}

// InterfaceWhy is one interface of a PodWhy.
type InterfaceWhy struct {
	Interface string `json:"interface"`
	// Rule is the selection rule that named the pools ("" when none did: see Error).
	Rule          string    `json:"rule,omitempty"`
	MultusNetwork string    `json:"multusNetwork,omitempty"`
	Pools         []PoolWhy `json:"pools"`
	// Notes say what else applies: a family named but not served.
	Notes []string `json:"notes,omitempty"`
	// Holds are the addresses the pod's SpiderEndpoint records for the interface now.
	Holds []string `json:"holds,omitempty"`
	// Error is why the agent's ADD of the interface fails at selection, as it would
	// say it; "" when selection succeeds.
	Error string `json:"error,omitempty"`
}

// PoolWhy is one pool of an InterfaceWhy.
type PoolWhy struct {
	Family  int64  `json:"family"`
	Pool    string `json:"pool"`
	Verdict string `json:"verdict"`
	Reason  string `json:"reason"`
	// Ready is the pool's Ready condition: "True", "False (Reason)", or "" when the
	// controller has not set it.
	Ready string `json:"ready,omitempty"`
}

// Taken tells whether some pool of the interface is taken for each family selection
// chose: the ADD would get an address now.
func (w InterfaceWhy) Taken() bool {
	if w.Error != "" {
		return false
	}
	fams := map[int64]bool{}
	for _, p := range w.Pools {
		if _, seen := fams[p.Family]; !seen {
			fams[p.Family] = false
		}
		if p.Verdict == VerdictTaken {
			fams[p.Family] = true
		}
	}
	for _, ok := range fams {
		if !ok {
			return false
		}
	}
	return len(fams) > 0
}

// Why reads the pod, its namespace, node, Job (for a CronJob's auto pool) and
// SpiderEndpoint, and every pool, then answers with ExplainPod. A pod that does not
// exist is an error wrapping the API's NotFound.
func Why(ctx context.Context, c client.Reader, o WhyOptions) (PodWhy, error) {
	in := WhyInput{Options: o, Pod: &corev1.Pod{}}
	if err := c.Get(ctx, client.ObjectKey{Namespace: o.Namespace, Name: o.Pod}, in.Pod); err != nil {
		return PodWhy{}, fmt.Errorf("get pod %s/%s: %w", o.Namespace, o.Pod, err)
	}
	optional := func(what string, key client.ObjectKey, obj client.Object) (bool, error) {
		err := c.Get(ctx, key, obj)
		switch {
		case err == nil:
			return true, nil
		case apierrors.IsNotFound(err):
			return false, nil
		}
		return false, fmt.Errorf("get %s %s: %w", what, key, err)
	}
	ns := &corev1.Namespace{}
	if ok, err := optional("namespace", client.ObjectKey{Name: o.Namespace}, ns); err != nil {
		return PodWhy{}, err
	} else if ok {
		in.Namespace = ns
	}
	if name := in.Pod.Spec.NodeName; name != "" {
		node := &corev1.Node{}
		if ok, err := optional("node", client.ObjectKey{Name: name}, node); err != nil {
			return PodWhy{}, err
		} else if ok {
			in.Node = node
		}
	}
	if top := ipam.TopControllerOf(in.Pod); ipam.NeedsJobController(in.Pod, top) {
		job := &batchv1.Job{}
		if ok, err := optional("Job", client.ObjectKey{Namespace: o.Namespace, Name: top.Name}, job); err != nil {
			return PodWhy{}, err
		} else if ok {
			in.JobController = metav1.GetControllerOf(job)
		}
	}
	se := &v2beta1.SpiderEndpoint{}
	if ok, err := optional("SpiderEndpoint", client.ObjectKey{Namespace: o.Namespace, Name: o.Pod}, se); err != nil {
		return PodWhy{}, err
	} else if ok {
		in.Endpoint = se
	}
	var pools v2beta1.SpiderIPPoolList
	if err := c.List(ctx, &pools); err != nil {
		return PodWhy{}, fmt.Errorf("list SpiderIPPools: %w", err)
	}
	in.Pools = pools.Items
	return ExplainPod(in), nil
}

// ExplainPod runs the agent's pool selection (ipam.ExplainSelection, the code behind
// ipam.SelectPools) for each interface, then says of each candidate whether the agent
// takes it, passes over it (full) or keeps it as a fallback, from the pools' status.
func ExplainPod(in WhyInput) PodWhy {
	o := in.Options
	pod := in.Pod
	top := ipam.TopControllerOf(pod)
	if ipam.NeedsJobController(pod, top) {
		top = ipam.AutoPoolTopController(top, in.JobController)
	}
	out := PodWhy{Namespace: pod.Namespace, Pod: pod.Name, Node: pod.Spec.NodeName}
	if !top.IsZero() {
		out.TopController = top.String()
	}
	out.Assumptions = assumptions(in)

	byName := make(map[string]*v2beta1.SpiderIPPool, len(in.Pools))
	for i := range in.Pools {
		byName[in.Pools[i].Name] = &in.Pools[i]
	}
	ifaces := o.Interfaces
	if len(ifaces) == 0 {
		ifaces = ipam.PodInterfaces(pod)
		if in.Endpoint != nil {
			for _, d := range in.Endpoint.Status.Current.IPs {
				if d.NIC != "" && !slices.Contains(ifaces, d.NIC) {
					ifaces = append(ifaces, d.NIC)
				}
			}
		}
	}
	for _, ifName := range ifaces {
		ex := ipam.ExplainSelection(ipam.SelectionInput{
			Pod: pod, Namespace: in.Namespace, Node: in.Node,
			TopController:  top,
			IfName:         ifName,
			MultusNetwork:  ipam.MultusNetworkOf(pod, ifName, o.MultusClusterNetwork),
			CNIDefaultIPv4: o.CNIDefaultIPv4,
			CNIDefaultIPv6: o.CNIDefaultIPv6,
			Pools:          in.Pools,
			EnableIPv4:     o.EnableIPv4,
			EnableIPv6:     o.EnableIPv6,
		})
		out.Interfaces = append(out.Interfaces, explainInterface(ex, byName, pod, in.Endpoint))
	}
	return out
}

// explainInterface turns one interface's selection into verdicts.
func explainInterface(ex ipam.Explanation, byName map[string]*v2beta1.SpiderIPPool, pod *corev1.Pod, se *v2beta1.SpiderEndpoint) InterfaceWhy {
	w := InterfaceWhy{Interface: ex.Interface, Rule: ex.Source, MultusNetwork: ex.MultusNetwork, Pools: []PoolWhy{}}
	if ex.Err != nil {
		w.Error = ex.Err.Error()
	}
	for _, f := range ex.Families {
		fam := familyWord(f.Family)
		if f.NotServed {
			w.Notes = append(w.Notes, fmt.Sprintf("%s pools named by %s are skipped: the agents do not serve %s (--enable-ipv%d=false)", fam, f.Source, fam, f.Family))
			continue
		}
		taken := false
		for _, d := range f.Decisions {
			sp := byName[d.Pool]
			p := PoolWhy{Family: f.Family, Pool: d.Pool, Ready: readyOf(sp)}
			switch {
			case !d.Admitted():
				p.Verdict, p.Reason = VerdictRefused, d.Refusal
			case ex.Err != nil:
				p.Verdict, p.Reason = VerdictCandidate, "admitted, but selection fails for the interface (see the error): the ADD allocates nothing"
			case taken:
				p.Verdict, p.Reason = VerdictFallback, "admitted; tried only when the pools before it are full"
			default:
				p.Verdict, p.Reason = firstChoice(sp, pod, ex.Auto)
				taken = p.Verdict == VerdictTaken || p.Verdict == VerdictNotReady
			}
			w.Pools = append(w.Pools, p)
		}
	}
	if se != nil {
		for _, d := range se.Status.Current.IPs {
			if d.NIC != ex.Interface {
				continue
			}
			for _, a := range []struct{ addr, pool *string }{{d.IPv4, d.IPv4Pool}, {d.IPv6, d.IPv6Pool}} {
				if a.addr != nil && *a.addr != "" {
					h := *a.addr
					if a.pool != nil && *a.pool != "" {
						h += " from pool " + *a.pool
					}
					w.Holds = append(w.Holds, h)
				}
			}
		}
	}
	return w
}

// firstChoice is the verdict of an admitted pool that no pool before it was taken for:
// taken, unless its status says it is full or not Ready.
func firstChoice(sp *v2beta1.SpiderIPPool, pod *corev1.Pod, auto bool) (verdict, reason string) {
	if sp == nil {
		return VerdictTaken, "the first candidate" // cannot happen: selection found it
	}
	if c := meta.FindStatusCondition(sp.Status.Conditions, v2beta1.IPPoolReadyCondition); c != nil && c.Status == metav1.ConditionFalse {
		return VerdictNotReady, fmt.Sprintf("admitted, but its Ready condition is False (%s: %s): the agent tries it and the ADD fails until the pool is fixed", c.Reason, c.Message)
	}
	if full, why := poolFull(sp); full {
		next := "the agent passes over it to the next candidate"
		if auto {
			next = "the controller grows the application's auto pool, and the agent waits for it (--auto-pool-wait)"
		}
		if node := pod.Spec.NodeName; node != "" && !sp.GrantsMode() {
			next += "; only a spare that node " + node + " already holds could still serve the pod"
		}
		return VerdictFull, "admitted, but " + why + ": " + next
	}
	if st := sp.Status.Orbweaver; st != nil && st.FreeIPCount != nil {
		return VerdictTaken, fmt.Sprintf("the first candidate, %d addresses free: the agent allocates from it", *st.FreeIPCount)
	}
	return VerdictTaken, "the first candidate: the agent allocates from it"
}

// poolFull reports whether the pool's status says no address is free, and how it says so.
func poolFull(sp *v2beta1.SpiderIPPool) (bool, string) {
	st := sp.Status.Orbweaver
	if st == nil {
		return false, ""
	}
	if c := meta.FindStatusCondition(st.Conditions, v2beta1.IPPoolExhaustedCondition); c != nil && c.Status == metav1.ConditionTrue {
		return true, "it is Exhausted (" + c.Message + ")"
	}
	if st.FreeIPCount != nil && *st.FreeIPCount == 0 {
		return true, "status.orbweaver.freeIPCount is 0"
	}
	return false, ""
}

// readyOf is a pool's Ready condition in short: "True", "False (Reason)", "" when unset.
func readyOf(sp *v2beta1.SpiderIPPool) string {
	if sp == nil {
		return ""
	}
	c := meta.FindStatusCondition(sp.Status.Conditions, v2beta1.IPPoolReadyCondition)
	switch {
	case c == nil:
		return ""
	case c.Status == metav1.ConditionTrue:
		return "True"
	}
	return fmt.Sprintf("%s (%s)", c.Status, c.Reason)
}

// assumptions say what the answer could not read from the cluster.
func assumptions(in WhyInput) []string {
	o := in.Options
	var out []string
	if o.CNIDefaultsGiven {
		out = append(out, fmt.Sprintf("the CNI config's default_ipv4_ippool %v and default_ipv6_ippool %v, as given by --default-ipv4-ippool/--default-ipv6-ippool (the agent uses the network config of the pod's node)",
			o.CNIDefaultIPv4, o.CNIDefaultIPv6))
	} else {
		out = append(out, "the CNI config's default_ipv4_ippool/default_ipv6_ippool are unknown and taken as empty (they are in the network config on the pod's node; pass them with --default-ipv4-ippool/--default-ipv6-ippool); they matter only when no annotation names a pool")
	}
	served := "IPv4 and IPv6"
	switch {
	case !o.EnableIPv6:
		served = "IPv4 only"
	case !o.EnableIPv4:
		served = "IPv6 only"
	}
	out = append(out, fmt.Sprintf("the agents serve %s (--enable-ipv4/--enable-ipv6, as the agents' flags of the same names; the chart's ipam.enableIPv4/enableIPv6)", served))
	if o.MultusClusterNetwork != "" {
		out = append(out, fmt.Sprintf("Multus's cluster network is %q (--multus-cluster-network)", o.MultusClusterNetwork))
	}
	switch {
	case in.Pod.Spec.NodeName == "":
		out = append(out, "the pod is not scheduled yet: a pool with a node affinity refuses it until it is")
	case in.Node == nil:
		out = append(out, fmt.Sprintf("the pod's node %q does not exist: spec.nodeAffinity cannot be judged", in.Pod.Spec.NodeName))
	}
	if in.Namespace == nil {
		out = append(out, fmt.Sprintf("namespace %q could not be read: its default pools and spec.namespaceAffinity cannot be judged", in.Pod.Namespace))
	}
	return out
}

func familyWord(fam int64) string {
	if fam == v2beta1.IPv6 {
		return "IPv6"
	}
	return "IPv4"
}
