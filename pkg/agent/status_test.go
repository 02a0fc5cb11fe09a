package agent

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// poolsOnly is a Cluster that knows only pools; other reads panic (nil interface).
type poolsOnly struct {
	Cluster
	pools []v2beta1.SpiderIPPool
}

func (c poolsOnly) Pools(context.Context) ([]v2beta1.SpiderIPPool, error) { return c.pools, nil }

func TestNotReady(t *testing.T) {
	full := v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "full"}}
	full.Status.AllocatedIPCount, full.Status.TotalIPCount = ptr.To[int64](1), ptr.To[int64](1)
	tests := []struct {
		name   string
		synced bool
		pools  []v2beta1.SpiderIPPool
		want   string // a fragment of the only reason; "" for ready
	}{
		{name: "caches not synced", synced: false, pools: []v2beta1.SpiderIPPool{full}, want: "not synced"},
		{name: "no pool at all", synced: true, want: "no SpiderIPPool exists"},
		// A full pool fails the ADDs that need it; it must not make the runtime mark the
		// node's network not ready (and Kubernetes evict its pods).
		{name: "every pool full is still ready", synced: true, pools: []v2beta1.SpiderIPPool{full}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Service{cluster: poolsOnly{pools: tt.pools}, synced: func() bool { return tt.synced }}
			got := s.NotReady(context.Background())
			switch {
			case tt.want == "" && len(got) != 0:
				t.Fatalf("want ready, got %v", got)
			case tt.want != "" && (len(got) != 1 || !strings.Contains(got[0], tt.want)):
				t.Fatalf("want one reason with %q, got %v", tt.want, got)
			}
		})
	}
}
