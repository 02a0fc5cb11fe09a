package v2beta1

import (
	"fmt"
	"time"
)

// ReclaimPolicy says when an IP retained for a StatefulSet pod goes back to its pool
// once the StatefulSet no longer wants the pod (orbweaver addition): "Follow" releases
// it with the pod, "Never" keeps it until its SpiderEndpoint is deleted by hand,
// "Reserved" keeps it while the StatefulSet exists (scaled down and up again, the
// ordinal finds its IP) and releases it with the StatefulSet, and a duration such as
// "10m" or "1h30m" keeps it that long after the pod is gone. An EIP's release strategy
// takes the same values but Reserved.
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:Pattern=`^(Follow|Never|Reserved|([0-9]+(h|m|s))+)$`
type ReclaimPolicy string

// The fixed reclaim policies; any other valid value is a duration.
const (
	ReclaimFollow   ReclaimPolicy = "Follow"
	ReclaimNever    ReclaimPolicy = "Never"
	ReclaimReserved ReclaimPolicy = "Reserved"
)

// ReclaimAfter interprets the policy of an EIP's release: keep is false for Follow; for
// Never keep is true and after is zero; for a duration keep is true and after is that
// duration. Reserved is an error here: it speaks of a StatefulSet's lifetime, which
// only ReclaimAfterFor knows.
func (p ReclaimPolicy) ReclaimAfter() (after time.Duration, keep bool, err error) {
	if p == ReclaimReserved {
		return 0, false, fmt.Errorf("reclaim policy %q keeps a StatefulSet's IPs until the StatefulSet is deleted and applies to IPs only: want Follow, Never or a positive duration such as 10m", string(p))
	}
	return p.ReclaimAfterFor(false)
}

// ReclaimAfterFor interprets the policy of a StatefulSet pod's IPs once the
// StatefulSet no longer wants the pod, setDeleted telling whether the StatefulSet
// itself is gone: Reserved keeps them (as Never) while it exists and releases them (as
// Follow) once it is deleted; the other policies do not depend on it.
func (p ReclaimPolicy) ReclaimAfterFor(setDeleted bool) (after time.Duration, keep bool, err error) {
	switch p {
	case ReclaimFollow:
		return 0, false, nil
	case ReclaimNever:
		return 0, true, nil
	case ReclaimReserved:
		return 0, !setDeleted, nil
	}
	d, err := time.ParseDuration(string(p))
	if err != nil || d <= 0 {
		return 0, false, fmt.Errorf("reclaim policy %q: want Follow, Never, Reserved or a positive duration such as 10m", string(p))
	}
	return d, true, nil
}
