package ipam

import (
	"strconv"
	"strings"
)

// StatefulSet fixed IPs: a StatefulSet pod's SpiderEndpoint has no owner reference, so
// it outlives the pod, and the agent gives a re-created pod of the same name the
// addresses the endpoint names. Garbage collection (PlanGC) decides when they go back.

// AnnoReclaimPolicy, on a StatefulSet's pod template, overrides its pools' reclaim
// policy (spec.orbweaver.reclaimPolicy) for the pods' retained addresses: "Follow",
// "Never" or a duration such as "10m". The agent copies it from the pod onto the pod's
// SpiderEndpoint, where garbage collection reads it, so it holds after the StatefulSet
// is deleted.
const AnnoReclaimPolicy = "orbweaver.io/ip-reclaim-policy"

// KindStatefulSet is the top-controller kind (and SpiderEndpoint
// status.ownerControllerType) of a StatefulSet's pods.
const KindStatefulSet = "StatefulSet"

// StatefulSetOrdinal returns the ordinal of a StatefulSet's pod from its name,
// "<statefulset>-<ordinal>"; false when the name is not of that form.
func StatefulSetOrdinal(podName, statefulSet string) (int, bool) {
	rest, ok := strings.CutPrefix(podName, statefulSet+"-")
	if !ok || rest == "" || (len(rest) > 1 && rest[0] == '0') {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// StatefulSetWantsOrdinal tells whether a StatefulSet of replicas (nil: 1) starting at
// spec.ordinals.start (0 when unset) wants a pod with this ordinal.
func StatefulSetWantsOrdinal(replicas *int32, start int32, ordinal int) bool {
	r := int32(1)
	if replicas != nil {
		r = *replicas
	}
	return int64(ordinal) >= int64(start) && int64(ordinal) < int64(start)+int64(r)
}
