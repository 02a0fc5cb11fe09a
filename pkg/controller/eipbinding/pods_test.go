package eipbinding

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestGateCondition(t *testing.T) {
	refused := &refusalEntry{refusal: refusal{reason: RefusedNamespaceNotAllowed, msg: "label the namespace"}}
	for _, tt := range []struct {
		name        string
		want, bound int
		refused     *refusalEntry
		anno        string
		status      corev1.ConditionStatus
		reason, msg string
	}{
		{"every EIP bound", 2, 2, nil, "203.0.113.1,203.0.113.2", corev1.ConditionTrue, "EIPBound", "EIP 203.0.113.1,203.0.113.2 bound"},
		{"some pending", 2, 1, nil, "203.0.113.1", corev1.ConditionFalse, "EIPPending", "1 of 2 EIPs bound"},
		{"none due", 0, 0, nil, "", corev1.ConditionFalse, "NoEIP", ""},
		{"a refusal wins", 1, 1, refused, "203.0.113.1", corev1.ConditionFalse, ReasonRequestRefused, RefusedNamespaceNotAllowed + ": label the namespace"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := gateCondition(tt.want, tt.bound, tt.refused, tt.anno)
			if c.Status != tt.status || c.Reason != tt.reason || (tt.msg != "" && c.Message != tt.msg) || c.Type != "" {
				t.Fatalf("gateCondition = %+v, want %s %s %q (no type)", c, tt.status, tt.reason, tt.msg)
			}
		})
	}
}
