package v2beta1

import (
	"fmt"
	"time"
)

// ReclaimPolicy says when an IP retained for a StatefulSet pod goes back to its pool
// once the pod is gone (orbweaver addition): "Follow" releases it with the pod, "Never"
// keeps it until its SpiderEndpoint is deleted by hand, and a duration such as "10m" or
// "1h30m" keeps it that long after the pod is gone.
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:Pattern=`^(Follow|Never|([0-9]+(h|m|s))+)$`
type ReclaimPolicy string

// The fixed reclaim policies; any other valid value is a duration.
const (
	ReclaimFollow ReclaimPolicy = "Follow"
	ReclaimNever  ReclaimPolicy = "Never"
)

// ReclaimAfter interprets the policy. keep is false for Follow; for Never keep is true and
// after is zero; for a duration keep is true and after is that duration.
func (p ReclaimPolicy) ReclaimAfter() (after time.Duration, keep bool, err error) {
	switch p {
	case ReclaimFollow:
		return 0, false, nil
	case ReclaimNever:
		return 0, true, nil
	}
	d, err := time.ParseDuration(string(p))
	if err != nil || d <= 0 {
		return 0, false, fmt.Errorf("reclaim policy %q: want Follow, Never or a positive duration such as 10m", string(p))
	}
	return d, true, nil
}
