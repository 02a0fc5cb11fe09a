package eipbinding

import (
	"errors"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	auto := &v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPAuto}
	static := &v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPStatic, Static: []string{"eip-s1"}}
	follow := policy{spec: auto}
	never := policy{spec: auto, keep: true}
	ttl := policy{spec: auto, keep: true, releaseAfter: 10 * time.Minute}
	st := policy{spec: static}
	gone := policy{}
	deleting := policy{spec: auto, deleting: true}
	deletingStatic := policy{spec: static, deleting: true}
	otherCloud := policy{spec: &v2beta1.EIPSpec{Provider: "tencent", Mode: v2beta1.EIPAuto}, keep: true}
	pod := &holder{Pod: types.NamespacedName{Namespace: "ns", Name: "web-0"}, UID: "u1", Node: "n1"}
	moved := &holder{Pod: pod.Pod, UID: "u2", Node: "n2"}
	other := &holder{Pod: types.NamespacedName{Namespace: "ns", Name: "web-1"}, UID: "u3", Node: "n1"}
	b := func(phase v2beta1.EIPPhase, mods ...func(*v2beta1.EIPBinding)) *v2beta1.EIPBinding {
		x := &v2beta1.EIPBinding{IP: "10.0.0.10", Phase: phase, Provider: "aws", Token: "t", AllocationID: "eip-1", PublicIP: "203.0.113.1", Node: "n1", Pod: "ns/web-0"}
		for _, m := range mods {
			m(x)
		}
		return x
	}
	isStatic := func(x *v2beta1.EIPBinding) { x.Static, x.AllocationID = true, "eip-s1" }
	unbound := func(x *v2beta1.EIPBinding) { x.Node, x.Pod = "", "" }
	for _, tt := range []struct {
		name string
		s    ipState
		p    policy
		want op
	}{
		{"a held IP of an Auto pool gets an EIP", ipState{Held: true, Holder: pod}, follow, opAllocate},
		{"not before its endpoint is seen", ipState{Held: true}, follow, opNone},
		{"a free IP gets none", ipState{}, follow, opNone},
		{"a held IP of a Static pool adopts its EIP", ipState{Held: true, Holder: pod, StaticID: "eip-s1"}, st, opAdoptStatic},
		{"an IP past the Static list gets none", ipState{Held: true, Holder: pod}, st, opNone},
		{"an Allocate in flight is resumed", ipState{Binding: b(v2beta1.EIPAllocating), Held: true, Holder: pod}, follow, opAllocate},
		{"even when the IP was released meanwhile", ipState{Binding: b(v2beta1.EIPAllocating)}, follow, opAllocate},
		{"but not after it failed, when nobody wants it", ipState{Binding: b(v2beta1.EIPAllocating, func(x *v2beta1.EIPBinding) { x.Message = "quota" })}, follow, opForget},
		{"an allocated EIP of a held IP is associated", ipState{Binding: b(v2beta1.EIPAllocated, unbound), Held: true, Holder: pod}, follow, opAssociate},
		{"associating is checked", ipState{Binding: b(v2beta1.EIPAssociating), Held: true, Holder: pod}, follow, opCheck},
		{"bound stays", ipState{Binding: b(v2beta1.EIPBound), Held: true, Holder: pod}, follow, opNone},
		{"bound, the pod re-created on the same node: noted", ipState{Binding: b(v2beta1.EIPBound), Held: true, Holder: other}, follow, opNote},
		{"bound, the pod moved node: unbound to rebind", ipState{Binding: b(v2beta1.EIPBound), Held: true, Holder: moved}, follow, opDisassociate},
		{"bound, the IP released: unbound", ipState{Binding: b(v2beta1.EIPBound)}, follow, opDisassociate},
		{"unbinding is checked", ipState{Binding: b(v2beta1.EIPUnbinding)}, follow, opCheck},
		{"Follow: released once unbound", ipState{Binding: b(v2beta1.EIPAllocated, unbound)}, follow, opRelease},
		{"Never: kept", ipState{Binding: b(v2beta1.EIPAllocated, unbound)}, never, opNone},
		{"a duration: scheduled", ipState{Binding: b(v2beta1.EIPAllocated, unbound)}, ttl, opSchedule},
		{"a duration: kept until then", ipState{Binding: b(v2beta1.EIPAllocated, unbound, func(x *v2beta1.EIPBinding) {
			x.ReleaseAfter = &metav1.Time{Time: now.Add(time.Second)}
		})}, ttl, opNone},
		{"a duration: released after", ipState{Binding: b(v2beta1.EIPAllocated, unbound, func(x *v2beta1.EIPBinding) {
			x.ReleaseAfter = &metav1.Time{Time: now}
		})}, ttl, opRelease},
		{"a duration: taken again before it ends", ipState{Binding: b(v2beta1.EIPAllocated, unbound, func(x *v2beta1.EIPBinding) {
			x.ReleaseAfter = &metav1.Time{Time: now.Add(time.Minute)}
		}), Held: true, Holder: pod}, ttl, opAssociate},
		{"releasing resumes", ipState{Binding: b(v2beta1.EIPReleasing)}, never, opRelease},
		{"the EIP attribute removed: bound EIPs unbound", ipState{Binding: b(v2beta1.EIPBound), Held: true, Holder: pod}, gone, opDisassociate},
		{"the EIP attribute removed: released, even with Never", ipState{Binding: b(v2beta1.EIPAllocated, unbound)}, gone, opRelease},
		{"a Static EIP is never released", ipState{Binding: b(v2beta1.EIPAllocated, unbound, isStatic), StaticID: "eip-s1"}, st, opNone},
		{"a Static EIP no longer listed is forgotten, not released", ipState{Binding: b(v2beta1.EIPAllocated, unbound, isStatic)}, st, opForget},
		{"a Static EIP bound while the list changed is unbound first", ipState{Binding: b(v2beta1.EIPBound, isStatic), Held: true, Holder: pod, StaticID: "eip-s2"}, st, opDisassociate},
		{"a deleted pool: a held IP keeps its EIP", ipState{Binding: b(v2beta1.EIPBound), Held: true, Holder: pod}, deleting, opNone},
		{"a deleted pool: a free IP's EIP is released", ipState{Binding: b(v2beta1.EIPAllocated, unbound)}, deleting, opRelease},
		{"a deleted Static pool: a free IP's EIP is let go, not released", ipState{Binding: b(v2beta1.EIPAllocated, unbound, isStatic), StaticID: "eip-s1"}, deletingStatic, opForget},
		{"the pool's cloud changed: a bound EIP of the old one is unbound", ipState{Binding: b(v2beta1.EIPBound), Held: true, Holder: pod}, otherCloud, opDisassociate},
		{"the pool's cloud changed: then released in the old cloud, even with Never", ipState{Binding: b(v2beta1.EIPAllocated, unbound)}, otherCloud, opRelease},
		{"an IP no longer of the pool: its EIP is released, even with Never", ipState{Binding: b(v2beta1.EIPAllocated, unbound), Outside: true}, never, opRelease},
		{"an Auto EIP of a pool turned Static is released", ipState{Binding: b(v2beta1.EIPAllocated, unbound), Held: true, Holder: pod, StaticID: "eip-s1"}, st, opRelease},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(tt.s, tt.p, now); got != tt.want {
				t.Fatalf("decide = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestStaticMap(t *testing.T) {
	total, err := ip.ParseRanges([]string{"10.0.0.20-10.0.0.21", "10.0.0.10"})
	if err != nil {
		t.Fatal(err)
	}
	got := staticMap(total, []string{"eip-a", "eip-b", "eip-c", "eip-d"})
	want := map[netip.Addr]string{
		netip.MustParseAddr("10.0.0.10"): "eip-a", netip.MustParseAddr("10.0.0.20"): "eip-b", netip.MustParseAddr("10.0.0.21"): "eip-c",
	}
	if len(got) != len(want) {
		t.Fatalf("staticMap = %v, want %v", got, want)
	}
	for a, id := range want {
		if got[a] != id {
			t.Fatalf("staticMap[%s] = %q, want %q (all: %v)", a, got[a], id, got)
		}
	}
}

// summary is a step as the plan tests compare it: "ip op", then what else it carries.
func summary(s step) string {
	out := s.addr.String() + " " + s.op.String()
	if s.cond != "" {
		out += " cond=" + s.cond
	}
	if s.requested {
		out += " requested"
		if s.pol.spec != nil {
			out += "(" + s.pol.spec.Provider + "," + string(s.pol.spec.Mode) + ")"
		}
	}
	if s.st.StaticID != "" && s.op == opAdoptStatic {
		out += " id=" + s.st.StaticID
	}
	if !s.waitUntil.IsZero() {
		out += " waiting"
	}
	if s.err != nil {
		out += " err"
	}
	for _, e := range s.events {
		kind := "normal"
		if e.warn {
			kind = "warning"
		}
		on := "pool"
		if e.pod != nil {
			on = "pod"
		}
		out += " " + kind + ":" + e.reason + "@" + on
	}
	return out
}

func TestPlan(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	retry := 30 * time.Second
	auto := &v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPAuto}
	static := &v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPStatic, Static: []string{"eip-s1"}}
	never := v2beta1.ReclaimNever
	follow := v2beta1.ReclaimPolicy("Follow")
	pod := &holder{Pod: types.NamespacedName{Namespace: "ns", Name: "web-0"}, UID: "u1", Node: "n1"}
	a10, a11 := netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.11")
	held := ipState{Held: true, Holder: pod}
	bound := func(mods ...func(*v2beta1.EIPBinding)) *v2beta1.EIPBinding {
		b := &v2beta1.EIPBinding{IP: "10.0.0.10", Phase: v2beta1.EIPBound, Provider: "aws", AllocationID: "eip-1", PublicIP: "203.0.113.1", Node: "n1", Pod: "ns/web-0"}
		for _, m := range mods {
			m(b)
		}
		return b
	}
	unbound := func(b *v2beta1.EIPBinding) { b.Phase, b.Node, b.Pod = v2beta1.EIPAllocated, "", "" }
	requested := func(rs *v2beta1.ReclaimPolicy) func(*v2beta1.EIPBinding) {
		return func(b *v2beta1.EIPBinding) { b.Requested, b.ReleaseStrategy = true, rs }
	}
	withEIP := &podRequest{withEIP: true}
	byID := &podRequest{id: "eip-named"}
	refusedNS := &refusalEntry{refusal: refusal{reason: RefusedNamespaceNotAllowed, msg: "label the namespace"}}
	for _, tt := range []struct {
		name        string
		pool        *v2beta1.EIPSpec
		deleting    bool
		ips         []observedIP
		want        []string
		wantRefused []string
	}{
		{
			name: "a held IP of an Auto pool gets an EIP by the pool's policy",
			pool: auto, ips: []observedIP{{addr: a10, st: held}},
			want: []string{"10.0.0.10 allocate"},
		},
		{
			name: "nothing to do is no step",
			pool: auto, ips: []observedIP{{addr: a10, st: ipState{Binding: bound(), Held: true, Holder: pod}}},
		},
		{
			name: "bad annotations: a warning on the pod, and the pool's EIP all the same",
			pool: auto, ips: []observedIP{{addr: a10, st: held, badRequest: errors.New("pod annotations: bad")}},
			want: []string{"10.0.0.10 none cond=" + v2beta1.EIPInvalidRequestReason + " warning:" + ReasonFailed + "@pod", "10.0.0.10 allocate"},
		},
		{
			name: "a pod's request in a pool without EIPs: the default cloud, Auto",
			ips:  []observedIP{{addr: a10, st: held, req: withEIP}},
			want: []string{"10.0.0.10 allocate requested(aws,Auto)"},
		},
		{
			name: "a pod's EIP by ID is adopted as its Static EIP",
			pool: auto, ips: []observedIP{{addr: a10, st: held, req: byID}},
			want: []string{"10.0.0.10 adoptStatic requested(aws,Static) id=eip-named"},
		},
		{
			name: "a refused request: a note, nothing allocated, the refusal returned",
			ips:  []observedIP{{addr: a10, st: held, req: withEIP, refused: refusedNS}},
			want: []string{"10.0.0.10 none cond=" + v2beta1.EIPRequestRefusedReason}, wantRefused: []string{"ns/web-0"},
		},
		{
			name: "a refused request in an EIP pool: not even the pool's EIP",
			pool: auto, ips: []observedIP{{addr: a10, st: held, req: withEIP, refused: refusedNS}},
			want: []string{"10.0.0.10 none cond=" + v2beta1.EIPRequestRefusedReason}, wantRefused: []string{"ns/web-0"},
		},
		{
			name: "a refused request: what is under way goes on",
			ips: []observedIP{{addr: a10, st: ipState{Binding: bound(requested(&never), func(b *v2beta1.EIPBinding) { b.Phase = v2beta1.EIPUnbinding }), Held: true, Holder: pod},
				req: withEIP, refused: refusedNS}},
			want: []string{"10.0.0.10 none cond=" + v2beta1.EIPRequestRefusedReason, "10.0.0.10 check"}, wantRefused: []string{"ns/web-0"},
		},
		{
			name: "authorizing failed: the error, and no step for the binding",
			pool: auto, ips: []observedIP{{addr: a10, st: held, req: byID, authErr: errors.New("describe: throttled")}, {addr: a11, st: held}},
			want: []string{"10.0.0.10 none err", "10.0.0.11 allocate"},
		},
		{
			name: "a requested EIP whose pod is gone follows its own Never",
			ips:  []observedIP{{addr: a10, st: ipState{Binding: bound(unbound, requested(&never))}}},
		},
		{
			name: "a requested EIP whose pod is gone follows its own Follow",
			pool: auto, ips: []observedIP{{addr: a10, st: ipState{Binding: bound(unbound, requested(&follow))}}},
			want: []string{"10.0.0.10 release"},
		},
		{
			name: "a requested EIP whose pod no longer asks is unbound, even in an EIP pool",
			pool: auto, ips: []observedIP{{addr: a10, st: ipState{Binding: bound(requested(&never)), Held: true, Holder: pod}}},
			want: []string{"10.0.0.10 disassociate"},
		},
		{
			name: "a deleted pool: a requested EIP is released whatever its strategy",
			pool: auto, deleting: true, ips: []observedIP{{addr: a10, st: ipState{Binding: bound(unbound, requested(&never))}}},
			want: []string{"10.0.0.10 release"},
		},
		{
			name: "a cloud step that failed lately waits, with its error",
			pool: auto, ips: []observedIP{{addr: a10, st: held, lastFailure: &failure{at: now.Add(-time.Second), err: errors.New("quota")}}},
			want: []string{"10.0.0.10 allocate waiting err"},
		},
		{
			name: "a cloud step that failed long ago runs",
			pool: auto, ips: []observedIP{{addr: a10, st: held, lastFailure: &failure{at: now.Add(-retry), err: errors.New("quota")}}},
			want: []string{"10.0.0.10 allocate"},
		},
		{
			name: "a step without cloud calls does not wait for an earlier failure",
			pool: auto, ips: []observedIP{{addr: a10, st: ipState{Binding: bound(), Held: true, Holder: &holder{Pod: types.NamespacedName{Namespace: "ns", Name: "web-1"}, Node: "n1"}},
				lastFailure: &failure{at: now, err: errors.New("quota")}}},
			want: []string{"10.0.0.10 note"},
		},
		{
			name: "an IP past the Static list: a note and a warning on the pod",
			pool: static, ips: []observedIP{{addr: a10, st: ipState{Held: true, Holder: pod, StaticID: "eip-s1"}}, {addr: a11, st: held}},
			want: []string{"10.0.0.10 adoptStatic id=eip-s1", "10.0.0.11 none cond=" + v2beta1.EIPStaticExhaustedReason + " warning:" + ReasonNoStaticEIP + "@pod"},
		},
		{
			name: "past the Static list, but the pod's own EIP by ID",
			pool: static, ips: []observedIP{{addr: a11, st: held, req: byID}},
			want: []string{"10.0.0.11 adoptStatic requested(aws,Static) id=eip-named"},
		},
		{
			name: "an IP held by no known pod waits for its endpoint",
			pool: auto, ips: []observedIP{{addr: a10, st: ipState{Held: true}, req: withEIP}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			steps, refused := plan(planInput{pool: "p", pol: policyOf(tt.pool, tt.deleting), deleting: tt.deleting, defaultProvider: "aws",
				ips: tt.ips, now: now, retryInterval: retry})
			var got []string
			for _, s := range steps {
				got = append(got, summary(s))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("steps:\n  got  %q\n  want %q", got, tt.want)
			}
			if keys := slices.Sorted(maps.Keys(refused)); !slices.Equal(keys, tt.wantRefused) {
				t.Errorf("refused %q, want %q", keys, tt.wantRefused)
			}
		})
	}
}

func TestRequeueAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	iv := intervals{poll: 500 * time.Millisecond, retry: 30 * time.Second, verify: 5 * time.Minute}
	b := func(phase v2beta1.EIPPhase, releaseAfter time.Duration) v2beta1.EIPBinding {
		x := v2beta1.EIPBinding{IP: "10.0.0.10", Phase: phase}
		if releaseAfter != 0 {
			x.ReleaseAfter = &metav1.Time{Time: now.Add(releaseAfter)}
		}
		return x
	}
	a := netip.MustParseAddr("10.0.0.10")
	for _, tt := range []struct {
		name     string
		bindings []v2beta1.EIPBinding
		steps    []step
		iv       intervals
		want     time.Duration
	}{
		{"nothing awaited", nil, nil, iv, 0},
		{"an allocated EIP awaits nothing", []v2beta1.EIPBinding{b(v2beta1.EIPAllocated, 0)}, nil, iv, 0},
		{"a bound EIP is verified", []v2beta1.EIPBinding{b(v2beta1.EIPBound, 0)}, nil, iv, iv.verify},
		{"unless verification is off", []v2beta1.EIPBinding{b(v2beta1.EIPBound, 0)}, nil, intervals{poll: iv.poll, retry: iv.retry, verify: -1}, 0},
		{"the cloud settling is polled", []v2beta1.EIPBinding{b(v2beta1.EIPBound, 0), b(v2beta1.EIPAssociating, 0)}, nil, iv, iv.poll},
		{"a release soon is waited for", []v2beta1.EIPBinding{b(v2beta1.EIPAllocated, 5*time.Second)}, nil, iv, 5 * time.Second},
		{"a release far off: at most the retry interval", []v2beta1.EIPBinding{b(v2beta1.EIPAllocated, time.Hour)}, nil, iv, iv.retry},
		{"a release overdue: a second", []v2beta1.EIPBinding{b(v2beta1.EIPAllocated, -time.Hour)}, nil, iv, time.Second},
		{"a failed step is retried", nil, []step{{op: opAllocate, addr: a, err: errors.New("x")}}, iv, iv.retry},
		{"a waiting step runs when its wait ends", nil, []step{{op: opAllocate, addr: a, err: errors.New("x"), waitUntil: now.Add(2 * time.Second)}}, iv, 2 * time.Second},
		{"a wait already over: at once", nil, []step{{op: opAllocate, addr: a, err: errors.New("x"), waitUntil: now.Add(-time.Second)}}, iv, time.Millisecond},
		{"an EIP named by ID and refused is looked at again", nil, []step{{addr: a, refused: &refusalEntry{id: "eip-1"}}}, iv, iv.retry},
		{"a refusal by namespace waits for the namespace", nil, []step{{addr: a, refused: &refusalEntry{}}}, iv, 0},
		{"the soonest wins", []v2beta1.EIPBinding{b(v2beta1.EIPBound, 0), b(v2beta1.EIPAllocated, 3*time.Second)},
			[]step{{op: opAllocate, addr: a, err: errors.New("x")}}, iv, 3 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := requeueAfter(tt.bindings, tt.steps, now, tt.iv); got != tt.want {
				t.Fatalf("requeueAfter = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestLocalAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 500, time.UTC)
	b := &v2beta1.EIPBinding{IP: "10.0.0.10", Phase: v2beta1.EIPBound, AllocationID: "eip-1", Node: "n1", Pod: "ns/web-0"}
	next := &holder{Pod: types.NamespacedName{Namespace: "ns", Name: "web-1"}, Node: "n1"}
	ttl := policy{spec: &v2beta1.EIPSpec{Provider: "aws"}, keep: true, releaseAfter: 10 * time.Minute}
	for _, tt := range []struct {
		name string
		s    step
		want func(*v2beta1.EIPBinding) // nil: the binding goes
	}{
		{"schedule: released after the strategy's duration, to the second", step{op: opSchedule, st: ipState{Binding: b}, pol: ttl},
			func(x *v2beta1.EIPBinding) {
				x.ReleaseAfter = &metav1.Time{Time: now.Add(10 * time.Minute).Truncate(time.Second)}
			}},
		{"note: the new pod on the IP", step{op: opNote, st: ipState{Binding: b, Held: true, Holder: next}},
			func(x *v2beta1.EIPBinding) { x.Pod = "ns/web-1" }},
		{"forget: the binding goes", step{op: opForget, st: ipState{Binding: b}}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := localAfter(tt.s, now)
			if tt.want == nil {
				if got != nil {
					t.Fatalf("localAfter = %+v, want nil", got)
				}
				return
			}
			want := b.DeepCopy()
			tt.want(want)
			if !equality.Semantic.DeepEqual(got, want) {
				t.Fatalf("localAfter = %+v, want %+v", got, want)
			}
			if got == b {
				t.Fatal("localAfter changed the observed binding in place")
			}
		})
	}
}
