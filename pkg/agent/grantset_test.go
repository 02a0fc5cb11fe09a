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
		held          int
		pass          refreshPass
		want          bool
	}{
		{name: "a new pool", next: line(0, 2), want: true},
		{name: "nothing changed", next: line(1, 2), written: line(1, 2), held: 2, pass: refreshPass{lowerNeed: true, all: true}},
		{name: "a pod waits: need above what the node holds", next: line(3, 6), written: line(2, 4), held: 2, want: true},
		{name: "an ADD covered by the node's grants waits for the full pass", next: line(2, 4), written: line(1, 4), held: 4, pass: refreshPass{lowerNeed: true}},
		{name: "... and goes out with it", next: line(2, 4), written: line(1, 4), held: 4, pass: refreshPass{lowerNeed: true, all: true}, want: true},
		{name: "the buffer ran low: top it up", next: line(5, 10), written: line(3, 6), held: 6, want: true},
		{name: "the buffer still holds half", next: line(4, 8), written: line(3, 6), held: 6},
		{name: "the last want was not met: the pool has none to spare", next: line(5, 10), written: line(4, 8), held: 6},
		{name: "... but a waiting pod is told at once", next: line(7, 14), written: line(6, 12), held: 6, want: true},
		{name: "a lower need waits for a pass", next: line(1, 2), written: line(3, 6), held: 6},
		{name: "... and goes out with the next lower-need pass", next: line(1, 2), written: line(3, 6), held: 6, pass: refreshPass{lowerNeed: true}, want: true},
		{name: "specific addresses", next: []ipamv1.PoolDemand{{Pool: "p", Need: 1, Want: 2, IPs: []string{"10.0.0.5"}}}, written: line(1, 2), held: 2, want: true},
		{name: "a new answer", next: []ipamv1.PoolDemand{{Pool: "p", Need: 1, Want: 2, GiveBack: []ipamv1.GiveBack{{Token: "t", IPs: []string{"10.0.0.7"}}}}}, written: line(1, 2), held: 2, want: true},
		{name: "answers the controller used leave with the next write", next: line(1, 2), written: []ipamv1.PoolDemand{{Pool: "p", Need: 1, Want: 2, GiveBack: []ipamv1.GiveBack{{Token: "t", IPs: []string{"10.0.0.7"}}}}}, held: 2},
	}
	for _, tt := range tests {
		if got := worthWriting(tt.next, tt.written, map[string]int{"p": tt.held}, tt.pass); got != tt.want {
			t.Errorf("%s: worthWriting = %v, want %v", tt.name, got, tt.want)
		}
	}
}
