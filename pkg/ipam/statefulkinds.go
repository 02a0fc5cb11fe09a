package ipam

import (
	"fmt"
	"strings"
)

// StatefulKinds are the controllers whose pods keep their addresses as a StatefulSet's
// do (fixed IPs): apps' StatefulSet always, and the kinds an operator adds with
// --stateful-workload-kinds, such as OpenKruise's Advanced StatefulSet
// (apps.kruise.io/v1beta1/StatefulSet), as ACK's customStatefulWorkloadKinds. Their pods
// must be named <controller>-<ordinal>, and the controller must say how many it wants in
// spec.replicas (and, optionally, from which ordinal in spec.ordinals.start), as apps'
// StatefulSet does: garbage collection reads those to decide when an ordinal's
// addresses go.
type StatefulKinds struct {
	extra []StatefulKind
}

// StatefulKind is one added kind: the group, the version garbage collection reads it
// in, and the kind.
type StatefulKind struct {
	Group, Version, Kind string
}

// APIVersion is the kind's group/version.
func (k StatefulKind) APIVersion() string { return k.Group + "/" + k.Version }

func (k StatefulKind) String() string { return k.APIVersion() + "/" + k.Kind }

// AnnoOwnerAPIVersion, on a kept SpiderEndpoint, is the apiVersion of the controller its
// status.ownerControllerType and ownerControllerName name: apps' StatefulSet and
// OpenKruise's share the kind StatefulSet. The agent writes it; an endpoint without it
// (SpiderPool's, or an older agent's) is apps'.
const AnnoOwnerAPIVersion = "orbweaver.io/owner-api-version"

// ParseStatefulKinds reads --stateful-workload-kinds: entries <group>/<version>/<Kind>.
// apps' StatefulSet is always one and need not be listed.
func ParseStatefulKinds(specs []string) (StatefulKinds, error) {
	var s StatefulKinds
	seen := map[string]bool{}
	for _, spec := range specs {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		parts := strings.Split(spec, "/")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			return StatefulKinds{}, fmt.Errorf("stateful workload kind %q: want <group>/<version>/<Kind>, e.g. apps.kruise.io/v1beta1/StatefulSet", spec)
		}
		k := StatefulKind{Group: parts[0], Version: parts[1], Kind: parts[2]}
		if k.Group == "apps" && k.Kind == KindStatefulSet {
			continue // always one
		}
		if !strings.Contains(k.Group, ".") {
			return StatefulKinds{}, fmt.Errorf("stateful workload kind %q: the group %q is Kubernetes' own, whose only stateful kind is apps/v1/StatefulSet; want a custom resource's group, e.g. apps.kruise.io", spec, k.Group)
		}
		if k.Kind[0] < 'A' || k.Kind[0] > 'Z' {
			return StatefulKinds{}, fmt.Errorf("stateful workload kind %q: the kind %q is a Kind (StatefulSet), not a resource (statefulsets)", spec, k.Kind)
		}
		key := k.Group + "/" + k.Kind
		if seen[key] {
			return StatefulKinds{}, fmt.Errorf("stateful workload kind %q: %s/%s is listed twice", spec, k.Group, k.Kind)
		}
		seen[key] = true
		s.extra = append(s.extra, k)
	}
	return s, nil
}

// Extra returns the added kinds, in the order given.
func (s StatefulKinds) Extra() []StatefulKind { return s.extra }

// Match tells whether a controller of this apiVersion (any version of the group) and kind
// keeps its pods' addresses.
func (s StatefulKinds) Match(apiVersion, kind string) bool {
	group := GroupOf(apiVersion)
	if group == "apps" && kind == KindStatefulSet {
		return true
	}
	for _, k := range s.extra {
		if k.Group == group && k.Kind == kind {
			return true
		}
	}
	return false
}

// GroupOf returns the group of an apiVersion ("apps/v1" → "apps", "v1" → "").
func GroupOf(apiVersion string) string {
	group, _, ok := strings.Cut(apiVersion, "/")
	if !ok {
		return ""
	}
	return group
}

// OwnerAPIVersionOf returns the apiVersion of a kept endpoint's controller from its
// annotations (AnnoOwnerAPIVersion): apps/v1 when it has none.
func OwnerAPIVersionOf(annotations map[string]string) string {
	if v := annotations[AnnoOwnerAPIVersion]; v != "" {
		return v
	}
	return "apps/v1"
}
