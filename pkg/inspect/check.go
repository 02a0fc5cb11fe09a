package inspect

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Problem is one thing wrong with one address of a pool (or with a whole pool, when
// Address is empty), as classify finds it.
type Problem struct {
	Kind    ProblemKind `json:"kind"`
	Pool    string      `json:"pool"`
	Address string      `json:"address,omitempty"`
	// Holders are what hold the address with this problem, in words.
	Holders []string `json:"holders,omitempty"`
	// Detail is what is wrong (the holders' notes for this problem).
	Detail string `json:"detail"`
	// Fix is what to do about it.
	Fix string `json:"whatToDo"`
}

// Check finds what is wrong in every pool, or in the named ones (an unknown name is an
// error that wraps ipam.ErrPoolNotFound): one Problem per pool, address and kind,
// sorted by pool, address and kind. The rules are classify's, address by address.
func Check(s Snapshot, pools []string) ([]Problem, error) {
	v := newView(s)
	sel, err := v.selectPools(pools)
	if err != nil {
		return nil, err
	}
	var out []Problem
	for _, pv := range sel {
		for _, e := range []struct {
			what string
			err  error
		}{{"spec", pv.subnetErr}, {"status.orbweaver.records", pv.recordsErr}, {"status.allocatedIPs", pv.foreignErr}} {
			if e.err != nil {
				out = append(out, Problem{Kind: Unreadable, Pool: pv.sp.Name, Detail: e.what + ": " + e.err.Error(),
					Fix: fmt.Sprintf("nothing is allocated from the pool until it parses: see `kubectl describe sp %s` (conditions, events) and fix or remove %s", pv.sp.Name, e.what)})
			}
		}
		if pv.subnetErr != nil {
			continue
		}
		for _, a := range pv.addrs {
			out = append(out, problems(a, v.classify(pv, a))...)
		}
	}
	for _, a := range v.strayAddrs() {
		for _, h := range v.strayHoldings(a, "") {
			if len(pools) == 0 || slices.Contains(pools, h.Pool) {
				out = append(out, problems(a, []Holding{h})...)
			}
		}
	}
	slices.SortStableFunc(out, func(x, y Problem) int {
		return cmp.Or(cmp.Compare(x.Pool, y.Pool), compareAddr(x.Address, y.Address), cmp.Compare(x.Kind, y.Kind))
	})
	return out, nil
}

// problems turns the holdings of one address into one Problem per kind.
func problems(a netip.Addr, hs []Holding) []Problem {
	var kinds []ProblemKind
	for _, h := range hs {
		if h.pool {
			continue // Check reports it once for the pool
		}
		for _, k := range h.Problems {
			if !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	var out []Problem
	for _, k := range kinds {
		p := Problem{Kind: k, Pool: hs[0].Pool, Address: a.String()}
		var with []Holding
		var details []string
		for _, h := range hs {
			if h.pool || !slices.Contains(h.Problems, k) {
				continue
			}
			with = append(with, h)
			p.Holders = append(p.Holders, describe(h))
			if d := noteOf(k, h); d != "" && !slices.Contains(details, d) {
				details = append(details, d)
			}
		}
		p.Detail = strings.Join(details, "; ")
		p.Fix = fix(k, p.Pool, a, with)
		out = append(out, p)
	}
	return out
}

// noteOf returns what h says of problem k (the note flagged with it).
func noteOf(k ProblemKind, h Holding) string {
	var notes []string
	for _, f := range h.findings {
		if f.kind == k {
			notes = append(notes, f.note)
		}
	}
	return strings.Join(notes, "; ")
}

// describe names a holder for Check and PlanRelease.
func describe(h Holding) string {
	pod := h.Namespace + "/" + h.Pod
	if h.Pod == "" {
		pod = fmt.Sprintf("a pod (UID digest %016x)", h.podKey)
	}
	state := ""
	if h.podState != "" {
		state = ", pod " + h.podState
	}
	switch h.Source {
	case SourceEndpoint:
		return fmt.Sprintf("SpiderEndpoint %s/%s (%s%s)", h.Namespace, h.Pod, dashed(h.Interface), state)
	case SourceRecords:
		return fmt.Sprintf("the pool's record of %s%s", pod, state)
	case SourceReserve:
		return "the reserve of node " + orUnknown(h.Node)
	case SourceGrant:
		return "the grant to node " + h.Node
	case SourceAllocatedIPs:
		return fmt.Sprintf("SpiderPool's record of %s%s", pod, state)
	}
	return h.State
}

func dashed(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fix says what to do about problem k of address a in pool, held by hs.
func fix(k ProblemKind, pool string, a netip.Addr, hs []Holding) string {
	release := fmt.Sprintf("`kubectl orbweaver ipam release --ip %s --pool %s`", a, pool)
	switch k {
	case DoubleOwner:
		return "see which pod really uses it (`kubectl orbweaver ipam show --ip " + a.String() + "`); " + release +
			" frees the holders whose pods are gone; when both pods live, delete the one that should not have it (it comes back with another address)"
	case Leak:
		if slices.ContainsFunc(hs, func(h Holding) bool { return !h.gcFrees }) {
			return release + " frees it (garbage collection does not)"
		}
		return "none: garbage collection frees it once the owner has been gone for its gone delay (30 s by default); if it stays, read the controller's GC logs, or " + release
	case OrphanEndpoint:
		return "if the pod is gone, " + release + " (deletes the endpoint's entry); if it runs, delete the pod so that it gets an address a pool holds"
	case RecordWithoutEndpoint:
		return "none while an ADD is in flight; if it stays the pod's CNI CHECK fails: delete the pod, and garbage collection frees the record"
	case OutsidePool:
		return "put the address back into the pool's spec.ips, or delete the pod so that it gets an address of the pool"
	case ExcludedButHeld:
		return "delete the pod so that it gets a usable address, or take the address out of spec.excludeIPs or the SpiderReservedIP"
	case GrantedToOtherNode, NotGranted:
		return "delete the pod so that it gets an address granted to its node; until then another pod may get this one"
	case Unreadable:
		return "see `kubectl describe sp " + pool + "` and fix or remove what does not parse"
	}
	return ""
}

func compareAddr(x, y string) int {
	a, errA := netip.ParseAddr(x)
	b, errB := netip.ParseAddr(y)
	if errA != nil || errB != nil {
		return cmp.Compare(x, y)
	}
	return a.Compare(b)
}
