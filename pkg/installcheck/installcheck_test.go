package installcheck

import (
	"context"
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func agentPod(name, node string, ready bool) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: name, Labels: map[string]string{"app": "agent"}},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

func daemonSet(desired, ready, updated int32) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "orbweaver-agent"},
		Spec:       appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}}},
		Status:     appsv1.DaemonSetStatus{DesiredNumberScheduled: desired, NumberReady: ready, UpdatedNumberScheduled: updated},
	}
}

// TestAgentsReady: every agent ready and updated passes; otherwise the error names the
// pods (and nodes) that are not, or the counts.
func TestAgentsReady(t *testing.T) {
	other := agentPod("other", "n9", false)
	other.Labels = map[string]string{"app": "someone-else"}
	tests := []struct {
		name    string
		objs    []client.Object
		want    int
		wantErr string // in the error; "" for none
	}{
		{"all ready", []client.Object{daemonSet(2, 2, 2), agentPod("a", "n1", true), agentPod("b", "n2", true), other}, 2, ""},
		{"one not ready", []client.Object{daemonSet(2, 1, 2), agentPod("a", "n1", true), agentPod("b", "n2", false)}, 0, `b on node "n2"`},
		{"one not updated", []client.Object{daemonSet(2, 2, 1), agentPod("a", "n1", true), agentPod("b", "n2", true)}, 0, "2 of 2 agents ready, 1 updated"},
		{"a pod missing", []client.Object{daemonSet(2, 1, 1), agentPod("a", "n1", true)}, 0, "1 of 2 agents ready"},
		{"no node", []client.Object{daemonSet(0, 0, 0)}, 0, "wants no pod on any node"},
		{"no DaemonSet", nil, 0, "DaemonSet kube-system/orbweaver-agent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := runtime.NewScheme()
			if err := clientgoscheme.AddToScheme(s); err != nil {
				t.Fatal(err)
			}
			c := fake.NewClientBuilder().WithScheme(s).WithObjects(tt.objs...).Build()
			n, err := agentsReady(context.Background(), Params{Client: c, Namespace: "kube-system", DaemonSet: "orbweaver-agent"})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("agentsReady: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("agentsReady = %d, %v; want an error naming %q", n, err, tt.wantErr)
			case tt.wantErr != "" && tt.name != "no DaemonSet" && !errors.Is(err, ErrNotReady):
				t.Errorf("error %v is not ErrNotReady", err)
			case n != tt.want:
				t.Errorf("%d agents ready; want %d", n, tt.want)
			}
		})
	}
}

// TestProbe: the valid pool is of the first enabled family and holds its addresses in
// its subnet; the invalid one differs only by an address outside it.
func TestProbe(t *testing.T) {
	for _, tt := range []struct {
		v4, v6 bool
		subnet string
	}{{true, true, "198.51.100.0/24"}, {true, false, "198.51.100.0/24"}, {false, true, "2001:db8:ffff:ff00::/120"}} {
		valid, invalid := probe(Params{EnableIPv4: tt.v4, EnableIPv6: tt.v6})
		if string(valid.Spec.Subnet) != tt.subnet || invalid.Spec.Subnet != valid.Spec.Subnet || invalid.Name == valid.Name {
			t.Errorf("v4 %v v6 %v: pools %+v and %+v; want subnet %s", tt.v4, tt.v6, valid.Spec, invalid.Spec, tt.subnet)
		}
	}
}
