package ipam

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func nodeAddrs(s string) []netip.Addr {
	if s == "" {
		return nil
	}
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		out = append(out, netip.MustParseAddr(f))
	}
	return out
}

func setOfAddrs(s string) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, a := range nodeAddrs(s) {
		out[a] = true
	}
	return out
}

func share(granted, asked, busy, unusable string) NodeShare {
	b, u := setOfAddrs(busy), setOfAddrs(unusable)
	g := nodeAddrs(granted)
	slices.SortFunc(g, netip.Addr.Compare)
	return NodeShare{Granted: g, Asked: setOfAddrs(asked),
		Busy: func(a netip.Addr) bool { return b[a] }, Usable: func(a netip.Addr) bool { return !u[a] }}
}

func TestNodeSharePick(t *testing.T) {
	tests := []struct {
		name                           string
		granted, asked, busy, unusable string
		last                           string
		want                           string // "" for none
		free                           int
	}{
		{name: "first after the last one handed out", granted: "10.0.0.1,10.0.0.2,10.0.0.3", last: "10.0.0.1", want: "10.0.0.2", free: 3},
		{name: "wraps around", granted: "10.0.0.1,10.0.0.2,10.0.0.3", last: "10.0.0.3", want: "10.0.0.1", free: 3},
		{name: "no last yet", granted: "10.0.0.1,10.0.0.2", want: "10.0.0.1", free: 2},
		{name: "last no longer granted", granted: "10.0.0.1,10.0.0.5", last: "10.0.0.3", want: "10.0.0.5", free: 2},
		{name: "skips busy, asked back and unusable", granted: "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4", busy: "10.0.0.2", asked: "10.0.0.3", unusable: "10.0.0.4", last: "10.0.0.1", want: "10.0.0.1", free: 1},
		{name: "nothing free", granted: "10.0.0.1,10.0.0.2", busy: "10.0.0.1", asked: "10.0.0.2", want: "", free: 0},
		{name: "nothing granted", want: "", free: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := share(tt.granted, tt.asked, tt.busy, tt.unusable)
			var last netip.Addr
			if tt.last != "" {
				last = netip.MustParseAddr(tt.last)
			}
			got, ok := s.Pick(last)
			if (tt.want == "") == ok || (ok && got.String() != tt.want) {
				t.Errorf("Pick(%s) = %s, %v; want %q", tt.last, got, ok, tt.want)
			}
			if n := s.Free(); n != tt.free {
				t.Errorf("Free() = %d, want %d", n, tt.free)
			}
		})
	}
}

func TestNodeShareGiveBack(t *testing.T) {
	tests := []struct {
		name                           string
		granted, asked, busy, unusable string
		surplus                        int
		back, keep                     string
	}{
		{name: "asked and unused: given back", granted: "10.0.0.1,10.0.0.2,10.0.0.3", asked: "10.0.0.2,10.0.0.3", back: "10.0.0.2,10.0.0.3"},
		{name: "asked but held by a pod: kept, the request cleared", granted: "10.0.0.1,10.0.0.2", asked: "10.0.0.1,10.0.0.2", busy: "10.0.0.1", back: "10.0.0.2", keep: "10.0.0.1"},
		{name: "no longer usable and unused: given back", granted: "10.0.0.1,10.0.0.2", unusable: "10.0.0.1,10.0.0.2", busy: "10.0.0.2", back: "10.0.0.1"},
		{name: "surplus: the highest unused first", granted: "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4", busy: "10.0.0.4", surplus: 2, back: "10.0.0.2,10.0.0.3"},
		{name: "surplus larger than what is unused", granted: "10.0.0.1,10.0.0.2", busy: "10.0.0.1", surplus: 5, back: "10.0.0.2"},
		{name: "nothing asked, no surplus", granted: "10.0.0.1,10.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			back, keep := share(tt.granted, tt.asked, tt.busy, tt.unusable).GiveBack(tt.surplus)
			if !slices.Equal(back, nodeAddrs(tt.back)) || !slices.Equal(keep, nodeAddrs(tt.keep)) {
				t.Errorf("GiveBack(%d) = back %v keep %v; want back %q keep %q", tt.surplus, back, keep, tt.back, tt.keep)
			}
		})
	}
}

func TestNodeDemand(t *testing.T) {
	tests := []struct{ busy, waiting, forecast, buffer, need, want int }{
		{3, 2, 0, 8, 5, 10},   // a buffer as large as the need
		{30, 2, 0, 8, 32, 40}, // capped at buffer
		{0, 0, 0, 8, 0, 1},    // an idle node keeps one
		{0, 1, 0, 0, 1, 1},    // no buffer
		{2, 0, 6, 8, 2, 8},    // six pods bound to the node have not asked yet
		{2, 0, 90, 64, 2, 66}, // the forecast is capped too
	}
	for _, tt := range tests {
		if need, want := NodeDemand(tt.busy, tt.waiting, tt.forecast, tt.buffer); need != tt.need || want != tt.want {
			t.Errorf("NodeDemand(%d, %d, %d, %d) = %d, %d; want %d, %d", tt.busy, tt.waiting, tt.forecast, tt.buffer, need, want, tt.need, tt.want)
		}
	}
}
