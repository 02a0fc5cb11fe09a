package ipam

// This file is the one decision of "whose endpoint is this": how a pod's SpiderEndpoint,
// found by the pod's namespace and name, relates to the CNI call at hand. The agent's
// ADD, its endpoint write (which re-reads the endpoint on a conflict) and its DEL act on
// the answer.

// EndpointRelation is how a pod's SpiderEndpoint relates to a CNI call.
type EndpointRelation int

const (
	// EndpointNone: the pod has no endpoint.
	EndpointNone EndpointRelation = iota
	// EndpointSame: the endpoint is this sandbox's (a repeated ADD; the DEL of the
	// sandbox that holds the addresses).
	EndpointSame
	// EndpointOtherSandbox: the same pod instance, another sandbox (the runtime
	// re-created it): the addresses move to this sandbox.
	EndpointOtherSandbox
	// EndpointPredecessor: a previous instance of this StatefulSet pod, whose endpoint
	// was kept for it: the addresses move to this instance.
	EndpointPredecessor
	// EndpointPreviousPod: a previous pod of the same name, not kept for this one: its
	// addresses go, and this call neither uses nor frees them as its own.
	EndpointPreviousPod
)

// EndpointFacts are what the decision needs of the endpoint.
type EndpointFacts struct {
	// Exists is false when the pod has no endpoint; the rest is then ignored.
	Exists bool
	// PodUID and ContainerID are status.current.uid and the sandbox it records. An
	// endpoint SpiderPool wrote records no sandbox ("").
	PodUID, ContainerID string
	// KeptFor is true when the endpoint is kept for the StatefulSet the call's pod
	// belongs to: no pod owns it, and it names that StatefulSet as the pod's owner.
	KeptFor bool
}

// CallFacts are what the decision needs of the CNI call.
type CallFacts struct {
	// PodUID is the pod's UID; empty when the runtime did not say (a DEL may not).
	PodUID string
	// ContainerID is the sandbox of the call.
	ContainerID string
	// Retains is true when the pod keeps its addresses across re-creation (a
	// StatefulSet's pod, with StatefulSet fixed IPs on).
	Retains bool
	// Add is true for a CNI ADD, which moves an endpoint that records no sandbox to its
	// own; false for a DEL or a CHECK.
	Add bool
}

// RelateEndpoint decides how the endpoint relates to the call. A call that names no pod
// UID matches the endpoint's instance. An endpoint that records no sandbox (SpiderPool
// wrote it, docs/design/spiderpool-import.md) is the sandbox of any DEL or CHECK of its
// pod, as SpiderPool itself releases by pod UID; an ADD moves it to the ADD's sandbox,
// after which only that sandbox's DEL releases it.
func RelateEndpoint(e EndpointFacts, c CallFacts) EndpointRelation {
	switch {
	case !e.Exists:
		return EndpointNone
	case c.PodUID != "" && e.PodUID != c.PodUID && c.Retains && e.KeptFor:
		return EndpointPredecessor
	case c.PodUID != "" && e.PodUID != c.PodUID:
		return EndpointPreviousPod
	case !c.Add && e.ContainerID == "":
		return EndpointSame
	case e.ContainerID != c.ContainerID:
		return EndpointOtherSandbox
	default:
		return EndpointSame
	}
}
