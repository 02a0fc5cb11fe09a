package agent

import (
	"testing"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
)

func TestWorthWriting(t *testing.T) {
	line := func(need, want int32) []ipamv1.PoolDemand {
		return []ipamv1.PoolDemand{{Pool: "p", Need: need, Want: want}}
	}
	tests := []struct {
		name          string
		next, written []ipamv1.PoolDemand
		held, coming  int // addresses the node has; its need plus its pods forecast
		pass          refreshPass
		want          bool
	}{
		{name: "a new pool", next: line(0, 2), want: true},
		{name: "nothing changed", next: line(1, 2), written: line(1, 2), held: 2, coming: 1, pass: refreshPass{lowerNeed: true, lowerWant: true}},
		{name: "a pod waits: need above what the node holds", next: line(3, 6), written: line(2, 4), held: 2, coming: 3, want: true},
		{name: "an ADD covered by the node's grants is not written", next: line(2, 4), written: line(1, 4), held: 4, coming: 2, pass: refreshPass{lowerNeed: true}},
		{name: "... not even by the lower-want pass", next: line(2, 4), written: line(1, 4), held: 4, coming: 2, pass: refreshPass{lowerNeed: true, lowerWant: true}},
		{name: "the buffer ran low and pods are coming: top it up", next: line(5, 10), written: line(3, 6), held: 6, coming: 8, want: true},
		{name: "the buffer ran low but no pod is coming: nothing to ask for yet", next: line(5, 10), written: line(3, 6), held: 6, coming: 5},
		{name: "... not even by the lower-want pass (on an exactly sized pool every such write was futile)", next: line(5, 10), written: line(3, 6), held: 6, coming: 5, pass: refreshPass{lowerNeed: true, lowerWant: true}},
		{name: "the buffer still holds half and covers the pods coming", next: line(4, 8), written: line(3, 6), held: 6, coming: 6},
		{name: "pods coming beyond what the node has, half a buffer of them", next: line(4, 8), written: line(3, 6), held: 6, coming: 8, want: true},
		{name: "a quiet node: one more pod bound", next: line(0, 2), written: line(0, 1), held: 1, coming: 2, want: true},
		{name: "... and a third", next: line(0, 3), written: line(0, 2), held: 2, coming: 3, want: true},
		{name: "a busy node's stream: one more pod within the half buffer", next: line(1, 65), written: line(0, 64), held: 64, coming: 100},
		{name: "... and half a buffer later", next: line(33, 97), written: line(0, 64), held: 64, coming: 100, want: true},
		{name: "the grant for the last want has not come yet", next: line(0, 3), written: line(0, 2), held: 1, coming: 3},
		{name: "the last want was not met: the pool has none to spare", next: line(5, 10), written: line(4, 8), held: 6, coming: 9},
		{name: "... but a waiting pod is told at once", next: line(7, 14), written: line(6, 12), held: 6, coming: 7, want: true},
		{name: "a lower need goes out with the next tick", next: line(1, 2), written: line(3, 6), held: 6, coming: 1, pass: refreshPass{lowerNeed: true}, want: true},
		{name: "a lower want waits for the lower-want pass", next: line(3, 4), written: line(3, 6), held: 6, coming: 3, pass: refreshPass{lowerNeed: true}},
		{name: "... and goes out with it", next: line(3, 4), written: line(3, 6), held: 6, coming: 3, pass: refreshPass{lowerNeed: true, lowerWant: true}, want: true},
		{name: "specific addresses", next: []ipamv1.PoolDemand{{Pool: "p", Need: 1, Want: 2, IPs: []string{"10.0.0.5"}}}, written: line(1, 2), held: 2, coming: 1, want: true},
		{name: "a new answer", next: []ipamv1.PoolDemand{{Pool: "p", Need: 1, Want: 2, GiveBack: []ipamv1.GiveBack{{Token: "t", IPs: []string{"10.0.0.7"}}}}}, written: line(1, 2), held: 2, coming: 1, want: true},
		{name: "answers the controller used leave with the next write", next: line(1, 2), written: []ipamv1.PoolDemand{{Pool: "p", Need: 1, Want: 2, GiveBack: []ipamv1.GiveBack{{Token: "t", IPs: []string{"10.0.0.7"}}}}}, held: 2, coming: 1},
	}
	for _, tt := range tests {
		if got := worthWriting(tt.next, tt.written, map[string]poolHold{"p": {have: tt.held, coming: tt.coming}}, tt.pass); got != tt.want {
			t.Errorf("%s: worthWriting = %v, want %v", tt.name, got, tt.want)
		}
	}
}
