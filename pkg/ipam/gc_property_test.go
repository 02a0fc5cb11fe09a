package ipam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

type gcWorld struct {
	in  GCInput
	now time.Time
}

// randomGCWorld builds a random snapshot: nodes that exist or not, pods in every phase
// and stage of deletion, StatefulSet identities wanted or not, endpoints current or
// stale (retained or not, with every kind of policy), and records held by those pods,
// by old and unknown UIDs, and by node reserves, some named by endpoints.
func randomGCWorld(t testing.TB, rng *rand.Rand) gcWorld {
	now := gcT0
	pick := func(n int) int { return rng.IntN(n) }
	chance := func(p float64) bool { return rng.Float64() < p }

	cfg := GCConfig{
		ReleaseTerminatingOnReadyNode:    chance(0.7),
		ReleaseTerminatingOnNotReadyNode: chance(0.7),
		AdditionalGraceDelay:             []time.Duration{0, 10 * time.Second}[pick(2)],
		DefaultReclaimPolicy:             []v2beta1.ReclaimPolicy{"", "Follow", "Never", "5m"}[pick(4)],
		GoneDelay:                        []time.Duration{0, 30 * time.Second}[pick(2)],
	}
	w := gcWorld{now: now, in: GCInput{Config: cfg, EndedSince: map[uint64]time.Time{}}}
	nodeNames := []string{"n0", "n1", "n2", "n3", "n4"}
	for _, n := range nodeNames[:4] {
		if chance(0.75) {
			w.in.Nodes = append(w.in.Nodes, GCNode{Name: n, Ready: chance(0.6)})
		}
	}
	var uids []string // every UID a record or endpoint may name
	type identity struct {
		name     string
		member   *StatefulSetMember
		cur, old string
	}
	var ids []identity
	for i := range 12 {
		id := identity{name: fmt.Sprintf("p%d", i), old: fmt.Sprintf("p%d-old", i)}
		if i < 5 {
			id.member = &StatefulSetMember{Name: "db", Ordinal: i, Exists: chance(0.7), InRange: chance(0.6)}
		}
		uids = append(uids, id.old)
		if chance(0.7) {
			id.cur = fmt.Sprintf("p%d-cur", i)
			uids = append(uids, id.cur)
			p := GCPod{
				Namespace: "ns", Name: id.name, UID: id.cur, Node: nodeNames[pick(5)],
				Phase: []PodPhase{PodPending, PodRunning, PodRunning, PodSucceeded, PodFailed, PodUnknown}[pick(6)],
			}
			if chance(0.35) {
				p.DeletionTimestamp = now.Add(time.Duration(pick(210)-120) * time.Second)
			}
			if id.member != nil {
				m := *id.member
				p.StatefulSet = &m
			}
			w.in.Pods = append(w.in.Pods, p)
		}
		ids = append(ids, id)
	}
	uids = append(uids, "junk-1", "junk-2")

	pools := []struct{ name, subnet, ips string }{{"a", "10.0.0.0/24", "10.0.0.1-10.0.0.40"}, {"b", "fd00::/120", "fd00::1-fd00::28"}}
	recs := map[string][]records.Record{}
	held := map[string]map[netip.Addr]bool{"a": {}, "b": {}}
	freeAddr := func(pool string) (netip.Addr, bool) {
		base := netip.MustParseAddr("10.0.0.1")
		if pool == "b" {
			base = netip.MustParseAddr("fd00::1")
		}
		for range 100 {
			a := base
			for range pick(40) {
				a = a.Next()
			}
			if !held[pool][a] {
				held[pool][a] = true
				return a, true
			}
		}
		return netip.Addr{}, false
	}
	randomOwner := func() records.Owner {
		if chance(0.3) {
			return records.ReserveOwner(nodeNames[pick(5)])
		}
		uid := uids[pick(len(uids))]
		return records.OwnerOf(uid, "ctr-"+uid, []string{"eth0", "net1"}[pick(2)])
	}
	policies := []*v2beta1.ReclaimPolicy{nil, ptrTo(v2beta1.ReclaimFollow), ptrTo(v2beta1.ReclaimNever), ptrTo(v2beta1.ReclaimPolicy("1m")), ptrTo(v2beta1.ReclaimPolicy("10m")), ptrTo(v2beta1.ReclaimPolicy("0s"))}
	var named []GCAddress
	for _, id := range ids {
		if !chance(0.7) {
			continue
		}
		uid := id.old
		if id.cur != "" && chance(0.7) {
			uid = id.cur
		}
		e := GCEndpoint{Namespace: "ns", Name: id.name, ObjectUID: "se-" + id.name, ResourceVersion: fmt.Sprint(pick(9) + 1), PodUID: uid, Node: nodeNames[pick(5)]}
		if id.member != nil && chance(0.8) {
			m := *id.member
			e.StatefulSet = &m
		}
		if chance(0.2) {
			e.ReclaimPolicy = policies[pick(len(policies))]
		}
		for n, nic := range []string{"eth0", "net1"}[:1+pick(2)] {
			pool := pools[n%2].name
			var a netip.Addr
			if len(named) > 0 && chance(0.1) {
				stale := named[pick(len(named))] // another endpoint's address
				a, pool = stale.Addr, stale.Pool
				if (pool == "a") != a.Is4() {
					continue
				}
			} else {
				var ok bool
				if a, ok = freeAddr(pool); !ok {
					continue
				}
				owner := records.OwnerOf(uid, "ctr-"+uid, nic)
				switch {
				case chance(0.15):
					owner = records.ReserveOwner(nodeNames[pick(5)]) // handed out, not rebound
				case chance(0.1):
					owner = randomOwner()
				}
				if chance(0.9) {
					recs[pool] = append(recs[pool], records.Record{IP: a, Owner: owner})
				}
			}
			ga := GCAddress{NIC: nic, Pool: pool, Addr: a, Owner: records.OwnerOf(uid, "ctr-"+uid, nic)}
			e.Addresses = append(e.Addresses, ga)
			named = append(named, ga)
		}
		w.in.Endpoints = append(w.in.Endpoints, e)
	}
	for range 15 {
		pool := pools[pick(2)].name
		if a, ok := freeAddr(pool); ok {
			recs[pool] = append(recs[pool], records.Record{IP: a, Owner: randomOwner()})
		}
	}
	for _, p := range pools {
		var policy v2beta1.ReclaimPolicy
		if chance(0.5) {
			policy = []v2beta1.ReclaimPolicy{"Follow", "Never", "2m", "1h"}[pick(4)]
		}
		w.in.Pools = append(w.in.Pools, gcPool(t, p.name, p.subnet, p.ips, recs[p.name], policy))
	}
	for _, uid := range uids {
		if chance(0.5) {
			w.in.EndedSince[records.PodKey(uid)] = now.Add(time.Duration(pick(7200)-7140) * time.Second)
		}
	}
	for _, n := range nodeNames {
		if chance(0.5) {
			w.in.EndedSince[records.ReserveOwner(n).Pod] = now.Add(-time.Duration(pick(120)) * time.Second)
		}
	}
	return w
}

// mustKeep reports whether the pod instance a record owner names must keep its
// addresses whatever else the snapshot says: a pod with that UID exists and is not
// finished or terminating past its grace (where the switches allow releasing it), or
// the StatefulSet still wants it (through the pod or a retained endpoint).
func mustKeep(in GCInput, now time.Time, h records.Owner) (bool, string) {
	ready := map[string]bool{}
	for _, n := range in.Nodes {
		ready[n.Name] = n.Ready
	}
	for _, p := range in.Pods {
		if records.PodKey(p.UID) != h.Pod {
			continue
		}
		if p.StatefulSet != nil && p.StatefulSet.Wanted() {
			return true, "a pod its StatefulSet wants"
		}
		if p.Phase == PodSucceeded || p.Phase == PodFailed {
			return false, ""
		}
		if p.DeletionTimestamp.IsZero() {
			return true, "a live pod"
		}
		release := in.Config.ReleaseTerminatingOnNotReadyNode
		if ready[p.Node] {
			release = in.Config.ReleaseTerminatingOnReadyNode
		}
		if !release || now.Before(p.DeletionTimestamp.Add(in.Config.AdditionalGraceDelay)) {
			return true, "a terminating pod GC may not release yet"
		}
	}
	for _, e := range in.Endpoints {
		if records.PodKey(e.PodUID) == h.Pod && e.StatefulSet != nil && e.StatefulSet.Wanted() {
			return true, "a retained endpoint its StatefulSet wants"
		}
	}
	return false, ""
}

// inTransit reports whether a released address is one a wanted StatefulSet endpoint
// names while the pool records it under a UID that no pod and no endpoint has: the
// agent has written one of the two objects of a re-created pod and not the other.
func inTransit(in GCInput, r GCRelease) bool {
	for _, p := range in.Pods {
		if records.PodKey(p.UID) == r.Owner.Pod {
			return false
		}
	}
	for _, e := range in.Endpoints {
		if records.PodKey(e.PodUID) == r.Owner.Pod {
			return false
		}
	}
	for _, e := range in.Endpoints {
		if e.StatefulSet == nil || !e.StatefulSet.Wanted() {
			continue
		}
		for _, a := range e.Addresses {
			if a.Pool == r.Pool && a.Addr == r.Addr {
				return true
			}
		}
	}
	return false
}

func TestGCProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(2024, 4))
	decisions := map[string]int{}
	for i := range 3000 {
		w := randomGCWorld(t, rng)
		in, now := w.in, w.now
		plan := PlanGC(in, now)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("world %d: %s\nplan:\n%v", i, fmt.Sprintf(format, args...), summary(plan, now))
		}
		checkPlan(t, in, now, plan)

		nodes := map[records.Owner]bool{}
		for _, n := range in.Nodes {
			nodes[records.ReserveOwner(n.Name)] = true
		}
		for _, r := range plan.Releases {
			decisions["release "+string(r.Reason)]++
			if r.Owner.IsReserve() {
				if nodes[r.Owner] {
					fail("released %s/%s from the reserve of a node that exists", r.Pool, r.Addr)
				}
				continue
			}
			if keep, why := mustKeep(in, now, r.Owner); keep {
				fail("released %s/%s (%s) held by %s", r.Pool, r.Addr, r.Reason, why)
			}
			if inTransit(in, r) {
				fail("released %s/%s (%s), moving between two instances of a StatefulSet pod", r.Pool, r.Addr, r.Reason)
			}
		}
		for _, r := range plan.Rebinds {
			decisions["rebind"]++
			if nodes[r.From] {
				fail("rebound %s/%s from the reserve of a node that exists", r.Pool, r.Addr)
			}
		}
		for _, d := range plan.EndpointDeletions {
			decisions["delete "+string(d.Reason)]++
			if keep, why := mustKeep(in, now, records.Owner{Pod: records.PodKey(d.PodUID)}); keep {
				fail("deleted endpoint %s/%s of %s", d.Namespace, d.Name, why)
			}
		}
		decisions["recheck"] += len(plan.Rechecks)

		// Fed its own clocks back, the next run at the same time agrees, and later runs
		// only add to what is released: nothing decided is taken back by waiting.
		next := in
		next.EndedSince = plan.EndedSince
		again := PlanGC(next, now)
		if !reflect.DeepEqual(again.Releases, plan.Releases) || !reflect.DeepEqual(again.Rebinds, plan.Rebinds) ||
			!reflect.DeepEqual(again.EndpointDeletions, plan.EndpointDeletions) || !reflect.DeepEqual(again.Rechecks, plan.Rechecks) {
			fail("the run fed its own EndedSince differs:\n%v", summary(again, now))
		}
		if !reflect.DeepEqual(again.EndedSince, plan.EndedSince) {
			fail("EndedSince changed on a second run: %v then %v", plan.EndedSince, again.EndedSince)
		}
		if r, ok := plan.NextRecheck(); ok {
			later := PlanGC(next, r)
			for _, rel := range plan.Releases {
				if !slices.ContainsFunc(later.Releases, func(x GCRelease) bool { return x.Pool == rel.Pool && x.Addr == rel.Addr }) {
					fail("released %s/%s at now but not at the recheck %v", rel.Pool, rel.Addr, r)
				}
			}
			// What was due at the recheck is decided then, or waits for a later one.
			for _, rc := range plan.Rechecks {
				if !rc.At.Equal(r) || rc.Pool == "" {
					continue
				}
				decided := slices.ContainsFunc(later.Releases, func(x GCRelease) bool { return x.Pool == rc.Pool && x.Addr == rc.Addr }) ||
					slices.ContainsFunc(later.Rebinds, func(x GCRebind) bool { return x.Pool == rc.Pool && x.Addr == rc.Addr }) ||
					slices.ContainsFunc(later.Rechecks, func(x GCRecheck) bool { return x.Pool == rc.Pool && x.Addr == rc.Addr && x.At.After(r) })
				if !decided {
					fail("recheck %+v led nowhere:\n%v", rc, summary(later, r))
				}
			}
		}

		// Between the scan and the write, some addresses change hands: Apply leaves
		// them with their new owners.
		for _, gp := range in.Pools {
			fresh := gp.Pool
			moved := map[netip.Addr]records.Owner{}
			for _, r := range plan.Releases {
				if r.Pool == fresh.Name() && rng.IntN(3) == 0 {
					to := records.OwnerOf(fmt.Sprintf("newcomer-%d", len(moved)), "c", "eth0")
					fresh, _ = fresh.Rebind(r.Addr, r.Owner, to)
					moved[r.Addr] = to
				}
			}
			after, freed, _ := plan.Apply(fresh)
			for a, o := range moved {
				if h, ok := after.Holder(a); !ok || h != o {
					fail("Apply took %s from its new owner", a)
				}
			}
			for _, r := range freed {
				if _, moved := moved[r.Addr]; moved {
					fail("Apply reports %s freed", r.Addr)
				}
			}
		}
	}
	// The generator must reach every kind of decision, or the properties prove little.
	for _, r := range GCReasons() {
		if decisions["release "+string(r)] == 0 {
			t.Errorf("no random world released for %s; decisions: %v", r, decisions)
		}
	}
	for _, k := range []string{"rebind", "recheck", "delete PodGone"} {
		if decisions[k] == 0 {
			t.Errorf("no random world made a %q decision; decisions: %v", k, decisions)
		}
	}
	t.Logf("decisions over the random worlds: %v", decisions)
}
