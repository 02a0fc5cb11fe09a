package ipam

import (
	"fmt"
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

// AnnoFixedIP, on a StatefulSet's pod template, says whether its pods keep their IPs
// across re-creation: "true" or "false". It matters with fixed IPs on (the agent's
// --enable-statefulset): by default every StatefulSet pod keeps them, as SpiderPool,
// and "false" opts a StatefulSet out; with the agent's --statefulset-fixed-ip-opt-in
// only the pods that say "true" keep them, as Kingsoft KCE.
const AnnoFixedIP = "orbweaver.io/fixed-ip"

// AnnoKCEPodIPFixed is Kingsoft KCE's opt-in (seed 002), read as AnnoFixedIP; ours
// wins when a pod has both.
const AnnoKCEPodIPFixed = "k8s.ksyun.com/pod-ip-fixed"

// FixedIPWanted tells whether a StatefulSet pod with these annotations keeps its IPs:
// AnnoFixedIP, else AnnoKCEPodIPFixed, else !optIn. A value other than "true" or
// "false" is an ErrBadAnnotation naming the key.
func FixedIPWanted(annotations map[string]string, optIn bool) (bool, error) {
	for _, key := range []string{AnnoFixedIP, AnnoKCEPodIPFixed} {
		v, ok := annotations[key]
		if !ok {
			continue
		}
		switch strings.TrimSpace(v) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return !optIn, fmt.Errorf("%w: %s: %q is not \"true\" or \"false\"", ErrBadAnnotation, key, v)
	}
	return !optIn, nil
}

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
