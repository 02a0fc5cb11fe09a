package ipam

import (
	"cmp"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// Labels an auto-created pool's spec.podAffinity matches: they describe the pod's top
// controller, not the pod (docs/reference/annotations.md, "Labels read"). SelectPools adds
// them to the pod's labels before it matches any podAffinity.
const (
	LabelAppAPIGroup   = "ipam.spidernet.io/app-api-group"
	LabelAppAPIVersion = "ipam.spidernet.io/app-api-version"
	LabelAppKind       = "ipam.spidernet.io/app-kind"
	LabelAppNamespace  = "ipam.spidernet.io/app-namespace"
	LabelAppName       = "ipam.spidernet.io/app-name"
)

// TopController identifies the pod's top controller (Deployment for a ReplicaSet's pod,
// etc.). It is zero for a bare pod.
type TopController struct{ APIVersion, Kind, Namespace, Name string }

// IsZero tells whether the pod has no controller.
func (t TopController) IsZero() bool { return t == TopController{} }

// String is "Kind namespace/name" for messages.
func (t TopController) String() string {
	if t.IsZero() {
		return "none"
	}
	return t.Kind + " " + t.Namespace + "/" + t.Name
}

// SelectionInput is everything SelectPools looks at. The caller reads it from its caches.
type SelectionInput struct {
	Pod       *corev1.Pod
	Namespace *corev1.Namespace // the pod's namespace; nil when unknown
	Node      *corev1.Node      // the pod's node; nil when unknown
	// TopController is the pod's top controller, matched by auto-created pools.
	TopController TopController
	// IfName is the interface of this CNI call, e.g. eth0, net1.
	IfName string
	// MultusNetwork is the Multus network that attached IfName ("ns/name"), "" when
	// unknown; see MultusNetworkOf.
	MultusNetwork string
	// CNIDefaultIPv4 and CNIDefaultIPv6 are the CNI config's default_ipv4_ippool and
	// default_ipv6_ippool.
	CNIDefaultIPv4, CNIDefaultIPv6 []string
	// Pools is every pool, from the caller's cache.
	Pools []v2beta1.SpiderIPPool
	// EnableIPv4 and EnableIPv6 are the families the cluster serves.
	EnableIPv4, EnableIPv6 bool
}

// Selection is the outcome of SelectPools for one interface.
type Selection struct {
	// IPv4 and IPv6 are the candidate pool names for IfName, in the order to try, already
	// filtered. A family is empty when the rule that chose names no pool of it or the
	// cluster does not serve it.
	IPv4, IPv6 []string
	// CleanGateway is the cleangateway of the ippool/ippools annotation for this
	// interface; false for other rules (the caller adds the CNI config's clean_gateway).
	CleanGateway bool
	// Routes are all custom routes of ipam.spidernet.io/routes; the caller keeps those
	// whose gw lies in a subnet allocated to the interface.
	Routes []v2beta1.Route
	// Source says which rule chose the pools, for messages: e.g.
	// "pod annotation ipam.spidernet.io/ippools".
	Source string
	// Auto is true when the pools are the pod's application's auto-created pools, which
	// the controller sizes: a full one may grow.
	Auto bool
}

// Sources of pool names, as Selection.Source reports them.
const (
	sourceDefaultPools = "pools with spec.default: true"
	sourceCNIConfig    = "CNI config"
)

// request is what the winning rule names for the interface, before expansion and filters.
type request struct {
	source       string
	ipv4, ipv6   []string
	src4, src6   string // source of each family's names, for messages
	cleanGateway bool
	auto         bool
}

// SelectPools chooses the candidate pools of one interface of a pod, as SpiderPool does
// (docs/guides/pools-and-annotations.md, section 3). The first rule that names pools for
// the interface wins, with no merging across rules:
//
//  1. pod annotation ipam.spidernet.io/subnets (which, when it names IfName, wins) or
//     subnet (which applies to the interface it names, eth0 by default): the pod's
//     application's auto-created pools (AutoPoolsFor), ErrAutoPoolNotReady until the
//     controller has created them;
//  2. pod annotation ipam.spidernet.io/ippools (which must name IfName), else
//     ipam.spidernet.io/ippool (which applies to every interface unless its
//     "interface" key names another one);
//  3. the namespace's annotations ipam.spidernet.io/default-ipv4-ippool and
//     default-ipv6-ippool;
//  4. the CNI config's default_ipv4_ippool and default_ipv6_ippool;
//  5. every pool with spec.default: true, by name.
//
// None names a pool: ErrNoPool. Then, per IP family: a family the cluster does not serve
// is dropped; wildcards are expanded in place against the pools of the family (matches
// by name) and a plain name must exist (ErrUnknownPool); repeats are dropped, the first
// kept; pools that refuse the pod are dropped, and if all do, ErrPoolRefused lists each
// with its reason; the rest is sorted by affinity priority (see sortByPriority). Full
// pools are kept: the caller tries the next candidate when one is exhausted. The errors
// of the two families are joined.
//
// A malformed annotation of the pod or namespace, including ipam.spidernet.io/routes
// (which is read whatever rule wins), is ErrBadAnnotation; a malformed CNI default list
// is ErrBadCNIConfig.
func SelectPools(in SelectionInput) (Selection, error) {
	sel, _, err := selectPools(in)
	return sel, err
}

// selectPools is SelectPools, with what it decided about each pool on the way
// (ExplainSelection).
func selectPools(in SelectionInput) (Selection, Explanation, error) {
	ex := Explanation{Interface: in.IfName, TopController: in.TopController, MultusNetwork: in.MultusNetwork}
	if in.Pod == nil {
		return Selection{}, ex, errors.New("select pools: no pod given")
	}
	if in.IfName == "" {
		return Selection{}, ex, fmt.Errorf("select pools for pod %s: no interface name given", podRef(in.Pod))
	}
	var routes []v2beta1.Route
	if v, ok := in.Pod.Annotations[AnnoPodRoutes]; ok {
		var err error
		if routes, err = ParseRoutes(v); err != nil {
			return Selection{}, ex, fmt.Errorf("pod %s: %w", podRef(in.Pod), err)
		}
	}
	req, err := chooseRule(in)
	if err != nil {
		return Selection{}, ex, fmt.Errorf("pod %s interface %s: %w", podRef(in.Pod), in.IfName, err)
	}
	ex.Source, ex.Auto = req.source, req.auto
	named4, named6 := len(req.ipv4) > 0, len(req.ipv6) > 0
	if !in.EnableIPv4 && named4 {
		ex.Families = append(ex.Families, FamilyExplanation{Family: v2beta1.IPv4, Source: req.src4, NotServed: true})
		req.ipv4 = nil
	}
	if !in.EnableIPv6 && named6 {
		ex.Families = append(ex.Families, FamilyExplanation{Family: v2beta1.IPv6, Source: req.src6, NotServed: true})
		req.ipv6 = nil
	}
	if len(req.ipv4) == 0 && len(req.ipv6) == 0 {
		return Selection{}, ex, fmt.Errorf("%w: %s: only %s pools are named for interface %s of pod %s, but the cluster serves %s; name a pool of a served family",
			ErrNoPool, req.source, familiesNamed(named4, named6), in.IfName, podRef(in.Pod), familiesServed(in.EnableIPv4, in.EnableIPv6))
	}

	c := newCandidates(in)
	sel := Selection{CleanGateway: req.cleanGateway, Routes: routes, Source: req.source, Auto: req.auto}
	var errs []error
	if len(req.ipv4) > 0 {
		fe := c.family(v2beta1.IPv4, req.ipv4, req.src4)
		ex.Families = append(ex.Families, fe)
		sel.IPv4 = fe.Candidates()
		errs = append(errs, fe.Err)
	}
	if len(req.ipv6) > 0 {
		fe := c.family(v2beta1.IPv6, req.ipv6, req.src6)
		ex.Families = append(ex.Families, fe)
		sel.IPv6 = fe.Candidates()
		errs = append(errs, fe.Err)
	}
	if err := errors.Join(errs...); err != nil {
		return Selection{}, ex, err
	}
	return sel, ex, nil
}

// chooseRule applies the rules in order and returns what the first one that names pools
// for the interface names.
func chooseRule(in SelectionInput) (request, error) {
	pod := in.Pod
	if r, ok, err := autoPoolRule(in); ok || err != nil {
		return r, err
	}

	if v, ok := pod.Annotations[AnnoPodIPPools]; ok {
		items, err := ParseIPPools(v)
		if err != nil {
			return request{}, err
		}
		var names []string
		for _, it := range items {
			if it.Interface == in.IfName {
				src := "pod annotation " + AnnoPodIPPools
				return request{source: src, ipv4: it.IPv4, ipv6: it.IPv6, src4: src, src6: src, cleanGateway: it.CleanGateway}, nil
			}
			names = append(names, it.Interface)
		}
		return request{}, badAnnotation(AnnoPodIPPools, "add an item for interface "+in.IfName,
			"names interfaces %s but not %s, the interface being set up", strings.Join(names, ", "), in.IfName)
	}
	if v, ok := pod.Annotations[AnnoPodIPPool]; ok {
		a, err := ParseIPPool(v)
		if err != nil {
			return request{}, err
		}
		// An "interface" key that names another interface makes the annotation that
		// interface's alone, as SpiderPool's documentation describes the key; this
		// interface falls through to the next rule.
		if a.Interface == "" || a.Interface == in.IfName {
			src := "pod annotation " + AnnoPodIPPool
			return request{source: src, ipv4: a.IPv4, ipv6: a.IPv6, src4: src, src6: src, cleanGateway: a.CleanGateway}, nil
		}
	}

	if ns := in.Namespace; ns != nil {
		var r request
		var keys []string
		for _, f := range []struct {
			key   string
			names *[]string
			src   *string
		}{{AnnoNamespaceDefaultIPv4Pool, &r.ipv4, &r.src4}, {AnnoNamespaceDefaultIPv6Pool, &r.ipv6, &r.src6}} {
			v, ok := ns.Annotations[f.key]
			if !ok {
				continue
			}
			names, err := ParseNamespaceDefaultPools(f.key, v)
			if err != nil {
				return request{}, fmt.Errorf("namespace %s: %w", ns.Name, err)
			}
			if len(names) > 0 {
				*f.names = names
				*f.src = fmt.Sprintf("namespace %s annotation %s", ns.Name, f.key)
				keys = append(keys, f.key)
			}
		}
		if len(keys) > 0 {
			r.source = fmt.Sprintf("namespace %s annotation %s", ns.Name, strings.Join(keys, " and "))
			return r, nil
		}
	}

	if len(in.CNIDefaultIPv4) > 0 || len(in.CNIDefaultIPv6) > 0 {
		r := request{source: sourceCNIConfig + " default_ipv4_ippool/default_ipv6_ippool",
			ipv4: in.CNIDefaultIPv4, ipv6: in.CNIDefaultIPv6,
			src4: sourceCNIConfig + " default_ipv4_ippool", src6: sourceCNIConfig + " default_ipv6_ippool"}
		if problem := checkPoolNames(r.ipv4); problem != "" {
			return request{}, fmt.Errorf("%w: default_ipv4_ippool: %s", ErrBadCNIConfig, problem)
		}
		if problem := checkPoolNames(r.ipv6); problem != "" {
			return request{}, fmt.Errorf("%w: default_ipv6_ippool: %s", ErrBadCNIConfig, problem)
		}
		return r, nil
	}

	r := request{source: sourceDefaultPools, src4: sourceDefaultPools, src6: sourceDefaultPools}
	for i := range in.Pools {
		p := &in.Pools[i]
		if p.Spec.Default == nil || !*p.Spec.Default {
			continue
		}
		switch f, _ := PoolFamily(p); f {
		case v2beta1.IPv4:
			r.ipv4 = append(r.ipv4, p.Name)
		case v2beta1.IPv6:
			r.ipv6 = append(r.ipv6, p.Name)
		}
	}
	if len(r.ipv4) > 0 || len(r.ipv6) > 0 {
		slices.Sort(r.ipv4)
		r.ipv4 = slices.Compact(r.ipv4)
		slices.Sort(r.ipv6)
		r.ipv6 = slices.Compact(r.ipv6)
		return r, nil
	}
	return request{}, fmt.Errorf("%w: no rule names one; name a pool with the pod annotation %s, the pod annotation %s (one item per interface), the namespace annotations %s / %s, the CNI config's default_ipv4_ippool / default_ipv6_ippool, or set spec.default: true on a pool",
		ErrNoPool, AnnoPodIPPool, AnnoPodIPPools, AnnoNamespaceDefaultIPv4Pool, AnnoNamespaceDefaultIPv6Pool)
}

// autoPoolRule is rule 1: the application's auto pools of the interface, when the pod
// asks for them. ok is false when it does not, for this interface.
func autoPoolRule(in SelectionInput) (request, bool, error) {
	req, ok, err := AutoPoolRequestOf(in.Pod.Annotations, 0)
	if err != nil || !ok {
		return request{}, false, err
	}
	sub4, sub6 := req.SubnetFor(in.IfName, v2beta1.IPv4), req.SubnetFor(in.IfName, v2beta1.IPv6)
	if sub4 == "" && sub6 == "" {
		return request{}, false, nil // another interface's: the next rules decide this one
	}
	key := AnnoPodSubnet
	if _, multi := in.Pod.Annotations[AnnoPodSubnets]; multi {
		key = AnnoPodSubnets
	}
	src := "pod annotation " + key
	if in.TopController.IsZero() {
		return request{}, true, fmt.Errorf("%w: %s asks for a pool created for the pod's application, but the pod has no controller (a bare pod has no auto pool); run it from a Deployment, StatefulSet, DaemonSet, Job or CronJob, or name a pool with %s",
			ErrNoPool, src, AnnoPodIPPool)
	}
	r := request{source: src, src4: src, src6: src, auto: true}
	var missing []string
	for _, f := range []struct {
		fam    int64
		subnet string
		names  *[]string
	}{{v2beta1.IPv4, sub4, &r.ipv4}, {v2beta1.IPv6, sub6, &r.ipv6}} {
		if f.subnet == "" || (f.fam == v2beta1.IPv4 && !in.EnableIPv4) || (f.fam == v2beta1.IPv6 && !in.EnableIPv6) {
			continue
		}
		*f.names = AutoPoolsFor(in.Pools, in.TopController, f.subnet, in.IfName, f.fam)
		if len(*f.names) == 0 {
			missing = append(missing, fmt.Sprintf("%s pool %s from SpiderSubnet %q", familyName(f.fam == v2beta1.IPv4),
				AutoPoolName(f.fam, Application{Name: in.TopController.Name, UID: "<uid>"}, in.IfName), f.subnet))
		}
	}
	if len(missing) > 0 {
		return request{}, true, fmt.Errorf("%w: %s of %s for interface %s does not exist yet; the orbweaver controller creates it (is it running? does the subnet have free addresses? see kubectl get ss and the events of the application); the pod is retried",
			ErrAutoPoolNotReady, strings.Join(missing, " and "), in.TopController, in.IfName)
	}
	return r, true, nil
}

// candidates turns a family's list of names into admitted pools.
type candidates struct {
	in     SelectionInput
	byName map[string]*v2beta1.SpiderIPPool
	// podLabels are the pod's labels with the top controller's labels on top.
	podLabels labels.Set
}

func newCandidates(in SelectionInput) candidates {
	byName := make(map[string]*v2beta1.SpiderIPPool, len(in.Pools))
	for i := range in.Pools {
		if _, dup := byName[in.Pools[i].Name]; !dup {
			byName[in.Pools[i].Name] = &in.Pools[i]
		}
	}
	return candidates{in: in, byName: byName, podLabels: affinityLabels(in.Pod.Labels, in.TopController)}
}

// family expands, filters and sorts the names of one family: the admitted pools in
// the order to try them, then the refused ones in the order named. Err is set when
// none is admitted.
func (c candidates) family(fam int64, names []string, source string) FamilyExplanation {
	fe := FamilyExplanation{Family: fam, Source: source}
	famName := familyName(fam == v2beta1.IPv4)
	pools, err := c.expand(fam, names)
	if err != nil {
		fe.Err = fmt.Errorf("%w: %s in the %s list of %s, for interface %s of pod %s; create the pool or fix the name (the pod is retried)",
			ErrUnknownPool, err.Error(), famName, source, c.in.IfName, podRef(c.in.Pod))
		return fe
	}
	var admitted []*v2beta1.SpiderIPPool
	var refused []PoolDecision
	var refusals []string
	for _, p := range pools {
		if reason := c.refusal(fam, p); reason != "" {
			refused = append(refused, PoolDecision{Pool: p.Name, Refusal: reason})
			refusals = append(refusals, fmt.Sprintf("pool %q: %s", p.Name, reason))
			continue
		}
		admitted = append(admitted, p)
	}
	sortByPriority(admitted)
	for _, p := range admitted {
		fe.Decisions = append(fe.Decisions, PoolDecision{Pool: p.Name})
	}
	fe.Decisions = append(fe.Decisions, refused...)
	if len(admitted) == 0 {
		fe.Err = fmt.Errorf("%w: every %s pool named by %s refuses interface %s of pod %s: %s",
			ErrPoolRefused, famName, source, c.in.IfName, podRef(c.in.Pod), strings.Join(refusals, "; "))
	}
	return fe
}

// expand replaces each wildcard by the pools of the family it matches (by name) and
// looks up each plain name; the first occurrence of a pool is kept.
func (c candidates) expand(fam int64, names []string) ([]*v2beta1.SpiderIPPool, error) {
	var out []*v2beta1.SpiderIPPool
	seen := map[string]bool{}
	var unknown, empty []string
	add := func(p *v2beta1.SpiderIPPool) {
		if !seen[p.Name] {
			seen[p.Name] = true
			out = append(out, p)
		}
	}
	for _, n := range names {
		if !isWildcard(n) {
			p, ok := c.byName[n]
			if !ok {
				unknown = append(unknown, fmt.Sprintf("%q", n))
				continue
			}
			add(p)
			continue
		}
		var matches []*v2beta1.SpiderIPPool
		for i := range c.in.Pools {
			p := &c.in.Pools[i]
			if ok, _ := path.Match(n, p.Name); !ok {
				continue
			}
			if f, _ := PoolFamily(p); f == fam {
				matches = append(matches, p)
			}
		}
		if len(matches) == 0 {
			empty = append(empty, fmt.Sprintf("%q", n))
		}
		slices.SortFunc(matches, func(a, b *v2beta1.SpiderIPPool) int { return cmp.Compare(a.Name, b.Name) })
		for _, p := range matches {
			add(p)
		}
	}
	switch {
	case len(unknown) == 1:
		return nil, fmt.Errorf("pool %s does not exist", unknown[0])
	case len(unknown) > 1:
		return nil, fmt.Errorf("pools %s do not exist", strings.Join(unknown, ", "))
	case len(out) == 0:
		return nil, fmt.Errorf("wildcard %s matches no pool of the family", strings.Join(empty, ", "))
	}
	return out, nil
}

// refusal returns why pool p does not serve this interface of the pod, or "". The
// checks run in SpiderPool's order and the first failing one is reported.
func (c candidates) refusal(fam int64, p *v2beta1.SpiderIPPool) string {
	in := c.in
	if p.DeletionTimestamp != nil {
		return "terminating (metadata.deletionTimestamp is set)"
	}
	if p.Spec.Disable != nil && *p.Spec.Disable {
		return "disabled (spec.disable is true)"
	}
	if p.Status.AllocatedIPs != nil {
		return "holds SpiderPool's allocation records (status.allocatedIPs), which the orbweaver controller has not imported yet " +
			"(its condition " + v2beta1.IPPoolImportedCondition + " says why)"
	}
	if f, err := PoolFamily(p); err != nil {
		return err.Error()
	} else if f != fam {
		return fmt.Sprintf("is an %s pool, not %s", familyName(f == v2beta1.IPv4), familyName(fam == v2beta1.IPv4))
	}

	if reason := NodeRefusal(p, in.Node, in.Pod.Spec.NodeName); reason != "" {
		return reason
	}

	if len(p.Spec.NamespaceName) > 0 {
		if !slices.Contains(p.Spec.NamespaceName, in.Pod.Namespace) {
			return fmt.Sprintf("spec.namespaceName %v does not include the pod's namespace %q", p.Spec.NamespaceName, in.Pod.Namespace)
		}
	} else if p.Spec.NamespaceAffinity != nil {
		if in.Namespace == nil {
			return fmt.Sprintf("spec.namespaceAffinity is set but namespace %q is unknown", in.Pod.Namespace)
		}
		if reason := mismatch("spec.namespaceAffinity", p.Spec.NamespaceAffinity, in.Namespace.Labels); reason != "" {
			return reason + fmt.Sprintf(" of namespace %q", in.Namespace.Name)
		}
	}

	if p.Spec.PodAffinity != nil {
		if reason := mismatch("spec.podAffinity", p.Spec.PodAffinity, c.podLabels); reason != "" {
			return reason + fmt.Sprintf(" of the pod (top controller: %s)", in.TopController)
		}
	}

	if len(p.Spec.MultusName) > 0 {
		network := normaliseNetwork(in.MultusNetwork, in.Pod.Namespace)
		if network == "" {
			return fmt.Sprintf("spec.multusName %v is set but the Multus network of interface %s is unknown", p.Spec.MultusName, in.IfName)
		}
		if !slices.ContainsFunc(p.Spec.MultusName, func(m string) bool { return normaliseNetwork(m, in.Pod.Namespace) == network }) {
			return fmt.Sprintf("spec.multusName %v does not include %q, the Multus network of interface %s", p.Spec.MultusName, network, in.IfName)
		}
	}
	return ""
}

// NodeRefusal says why pool p does not serve a node, "" when it does: spec.nodeName,
// else spec.nodeAffinity over the node's labels, as SpiderPool checks them. node is the
// node (nil when unknown), nodeName its name when node is nil.
func NodeRefusal(p *v2beta1.SpiderIPPool, node *corev1.Node, nodeName string) string {
	if node != nil {
		nodeName = node.Name
	}
	if len(p.Spec.NodeName) > 0 {
		if !slices.Contains(p.Spec.NodeName, nodeName) {
			return fmt.Sprintf("spec.nodeName %v does not include the pod's node %q", p.Spec.NodeName, nodeName)
		}
	} else if p.Spec.NodeAffinity != nil {
		if node == nil {
			return "spec.nodeAffinity is set but the pod's node is unknown"
		}
		if reason := mismatch("spec.nodeAffinity", p.Spec.NodeAffinity, node.Labels); reason != "" {
			return reason + fmt.Sprintf(" of node %q", node.Name)
		}
	}
	return ""
}

// mismatch returns why a label selector does not match a label set, or "".
func mismatch(field string, sel *metav1.LabelSelector, set map[string]string) string {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return fmt.Sprintf("%s is invalid (%v), it matches nothing", field, err)
	}
	if s.Matches(labels.Set(set)) {
		return ""
	}
	return fmt.Sprintf("%s %q does not match the labels", field, s.String())
}

// affinityLabels are the labels a pool's podAffinity is matched against: the pod's own,
// with the top controller's labels (LabelApp*) on top. The LabelApp* keys always
// describe the top controller, so that a pod cannot claim another application's
// auto-created pool by labelling itself; a bare pod has none of them.
func affinityLabels(podLabels map[string]string, top TopController) labels.Set {
	out := make(labels.Set, len(podLabels)+5)
	for k, v := range podLabels {
		out[k] = v
	}
	for _, k := range []string{LabelAppAPIGroup, LabelAppAPIVersion, LabelAppKind, LabelAppNamespace, LabelAppName} {
		delete(out, k)
	}
	if top.IsZero() {
		return out
	}
	group, version, found := strings.Cut(top.APIVersion, "/")
	if !found { // the core group: "v1"
		group, version = "", top.APIVersion
	}
	out[LabelAppAPIGroup] = group
	out[LabelAppAPIVersion] = version
	out[LabelAppKind] = top.Kind
	out[LabelAppNamespace] = top.Namespace
	out[LabelAppName] = top.Name
	return out
}

// sortByPriority orders pools as SpiderPool's ByPoolPriority: pools with podAffinity
// first, then with nodeName, nodeAffinity, namespaceName, namespaceAffinity and
// multusName, each a tie-breaker for the one before. SpiderPool sorts with an unstable
// sort over pools collected from a map, so it loses the order the user gave among pools
// of equal priority; we use a stable sort and keep it, so the user's order is the final
// tie-breaker.
func sortByPriority(pools []*v2beta1.SpiderIPPool) {
	key := func(p *v2beta1.SpiderIPPool) [6]bool {
		s := p.Spec
		return [6]bool{s.PodAffinity != nil, len(s.NodeName) > 0, s.NodeAffinity != nil,
			len(s.NamespaceName) > 0, s.NamespaceAffinity != nil, len(s.MultusName) > 0}
	}
	slices.SortStableFunc(pools, func(a, b *v2beta1.SpiderIPPool) int {
		ka, kb := key(a), key(b)
		for i := range ka {
			if ka[i] != kb[i] {
				if ka[i] {
					return -1
				}
				return 1
			}
		}
		return 0
	})
}

func podRef(pod *corev1.Pod) string { return pod.Namespace + "/" + pod.Name }

func familiesNamed(v4, v6 bool) string {
	switch {
	case v4 && v6:
		return "IPv4 and IPv6"
	case v4:
		return "IPv4"
	}
	return "IPv6"
}

func familiesServed(v4, v6 bool) string {
	switch {
	case v4 && v6:
		return "IPv4 and IPv6"
	case v4:
		return "only IPv4"
	case v6:
		return "only IPv6"
	}
	return "no IP family (enableIPv4 and enableIPv6 are both off)"
}
