package ipam

import (
	"net/netip"
	"slices"
)

// This file is the node agent's decision in node grants (docs/design/node-grants.md):
// which granted address a pod gets, what the node asks for, and what it gives back.
// The agent keeps the state (grants from its block watch, holds from its endpoints, the
// addresses it is handing out) and calls these functions under its lock.

// NodeShare is one node's share of one pool, as its agent sees it.
type NodeShare struct {
	// Granted are the addresses granted to the node, ascending.
	Granted []netip.Addr
	// Asked are granted addresses the controller asks the node to give back.
	Asked map[netip.Addr]bool
	// Busy reports whether a pod of the node holds an address or is being given it.
	Busy func(netip.Addr) bool
	// Usable reports whether an address may be handed out at all: in the pool's
	// spec.ips, not excluded, not reserved by a SpiderReservedIP.
	Usable func(netip.Addr) bool
}

// Pick returns the address to hand out: the first granted address after last that is
// usable, not busy and not asked back, wrapping around; false when there is none.
// Starting after the last address handed out (host-local's habit) means a pod that
// crash-loops does not get the address it just released back at once.
func (s NodeShare) Pick(last netip.Addr) (netip.Addr, bool) {
	i, _ := slices.BinarySearchFunc(s.Granted, last, netip.Addr.Compare)
	if i < len(s.Granted) && s.Granted[i] == last {
		i++
	}
	for k := range len(s.Granted) {
		a := s.Granted[(i+k)%len(s.Granted)]
		if !s.Asked[a] && s.Usable(a) && !s.Busy(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// Free counts the addresses Pick could return.
func (s NodeShare) Free() int {
	n := 0
	for _, a := range s.Granted {
		if !s.Asked[a] && s.Usable(a) && !s.Busy(a) {
			n++
		}
	}
	return n
}

// GiveBack decides what the node gives back now: every address asked back that no pod
// of the node holds, every granted address that is no longer usable and not busy, and,
// when surplus is positive (the node has held more than it wants for a while), that many
// more unused addresses, highest first. Keep lists the addresses asked back that are
// busy: the node keeps them and clears the request.
func (s NodeShare) GiveBack(surplus int) (back, keep []netip.Addr) {
	for i := len(s.Granted) - 1; i >= 0; i-- {
		a := s.Granted[i]
		busy := s.Busy(a)
		switch {
		case s.Asked[a] && busy:
			keep = append(keep, a)
		case s.Asked[a], !busy && !s.Usable(a):
			back = append(back, a)
		case !busy && surplus > 0:
			back = append(back, a)
			surplus--
		}
	}
	slices.SortFunc(back, netip.Addr.Compare)
	slices.SortFunc(keep, netip.Addr.Compare)
	return back, keep
}

// NodeDemand is what a node asks of a pool: it needs every address its pods hold or are
// being given, and one for each ADD waiting for a grant; it wants a buffer on top, so
// that its next pods find an address without waiting for a round. The buffer covers the
// pods bound to the node that have not asked yet (forecast), and otherwise grows with
// the need (a node's share doubles while its pods keep coming), up to buffer: a node
// running two pods of an exactly sized pool asks for two more, not for a full buffer
// that many such nodes would strand. The forecast is only a wish: a pod counted there
// may use another pool, so it never takes an address another node needs.
func NodeDemand(busy, waiting, forecast, buffer int) (need, want int) {
	need = busy + waiting
	return need, need + min(buffer, max(need, forecast, 1))
}
