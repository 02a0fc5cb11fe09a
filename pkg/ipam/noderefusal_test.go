package ipam

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

func TestNodeRefusal(t *testing.T) {
	zoneA := &metav1.LabelSelector{MatchLabels: map[string]string{"zone": "a"}}
	nodeIn := func(zone string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"zone": zone}}}
	}
	tests := []struct {
		name     string
		spec     v2beta1.IPPoolSpec
		node     *corev1.Node
		nodeName string
		want     string // "" when the pool serves the node; else a part of the reason
	}{
		{name: "no node selection", node: nodeIn("b")},
		{name: "nodeName lists the node", spec: v2beta1.IPPoolSpec{NodeName: []string{"n0", "n1"}}, node: nodeIn("b")},
		{name: "nodeName without the node", spec: v2beta1.IPPoolSpec{NodeName: []string{"n0"}}, node: nodeIn("a"), want: `does not include the pod's node "n1"`},
		{name: "nodeName, node known by name only", spec: v2beta1.IPPoolSpec{NodeName: []string{"n0"}}, nodeName: "n1", want: `"n1"`},
		{name: "nodeName wins over nodeAffinity", spec: v2beta1.IPPoolSpec{NodeName: []string{"n1"}, NodeAffinity: zoneA}, node: nodeIn("b")},
		{name: "nodeAffinity matches", spec: v2beta1.IPPoolSpec{NodeAffinity: zoneA}, node: nodeIn("a")},
		{name: "nodeAffinity does not match", spec: v2beta1.IPPoolSpec{NodeAffinity: zoneA}, node: nodeIn("b"), want: `spec.nodeAffinity`},
		{name: "nodeAffinity, node unknown", spec: v2beta1.IPPoolSpec{NodeAffinity: zoneA}, nodeName: "n1", want: "node is unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NodeRefusal(&v2beta1.SpiderIPPool{Spec: tt.spec}, tt.node, tt.nodeName)
			if (got == "") != (tt.want == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("NodeRefusal = %q, want %q", got, tt.want)
			}
		})
	}
}
