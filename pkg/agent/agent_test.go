package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/client/operations"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/crdstore"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
	"github.com/orbweaver-ipam/orbweaver/pkg/version"
)

func poolAnnotation(v4, v6 string) map[string]string {
	var parts []string
	if v4 != "" {
		parts = append(parts, fmt.Sprintf(`"ipv4":[%q]`, v4))
	}
	if v6 != "" {
		parts = append(parts, fmt.Sprintf(`"ipv6":[%q]`, v6))
	}
	return map[string]string{"ipam.spidernet.io/ippool": "{" + strings.Join(parts, ",") + "}"}
}

// readPool decodes a pool from the API server and checks that its counts equal its records.
func readPool(t *testing.T, e *testenv.Env, name string) ipam.Pool {
	t.Helper()
	obj := &v2beta1.SpiderIPPool{}
	if err := e.Client.Get(context.Background(), types.NamespacedName{Name: name}, obj); err != nil {
		t.Fatal(err)
	}
	p, err := ipam.NewPool(obj, ip.Set{})
	if err != nil {
		t.Fatal(err)
	}
	var spare int64
	if obj.Status.Orbweaver != nil {
		spare = ptr.Deref(obj.Status.Orbweaver.SpareIPCount, 0)
	}
	if got := ptr.Deref(obj.Status.AllocatedIPCount, 0); got != p.PodCount() || spare != p.SpareCount() {
		t.Fatalf("pool %s: status.allocatedIPCount %d, spareIPCount %d; %d pods' and %d reserves' records", name, got, spare, p.PodCount(), p.SpareCount())
	}
	return p
}

// podHolders returns who holds each address of a pool, as the design defines it: the
// pool's record, or for an address the pool records as a node's reserve, the pod whose
// SpiderEndpoint names it (handed out, not yet rebound). Spares are not in the map.
func podHolders(t *testing.T, e *testenv.Env, name string) map[netip.Addr]records.Owner {
	t.Helper()
	p := readPool(t, e, name)
	var ses v2beta1.SpiderEndpointList
	if err := e.Client.List(context.Background(), &ses); err != nil {
		t.Fatal(err)
	}
	named := map[netip.Addr]records.Owner{}
	for i := range ses.Items {
		se := &ses.Items[i]
		for j := range se.Status.Current.IPs {
			nic := &se.Status.Current.IPs[j]
			for _, a := range nicAddrs(nic) {
				if a.pool == name {
					named[a.addr] = records.OwnerOf(se.Status.Current.UID, containerOf(se), nic.NIC)
				}
			}
		}
	}
	out := map[netip.Addr]records.Owner{}
	for _, o := range p.Owners() {
		for _, a := range p.AllHeldBy(o) {
			switch {
			case !o.IsReserve():
				out[a] = o
			case named[a] != records.Owner{}:
				out[a] = named[a]
			}
		}
	}
	return out
}

// podsHold is the number of a pool's addresses that pods hold (see podHolders).
func podsHold(t *testing.T, e *testenv.Env, name string) int {
	t.Helper()
	return len(podHolders(t, e, name))
}

func wantAgentError(t *testing.T, err error, code int32, reason string, msgParts ...string) {
	t.Helper()
	var ae *agentError
	if !errors.As(err, &ae) {
		t.Fatalf("want an agent error %d %s, got %v", code, reason, err)
	}
	if ptr.Deref(ae.model.Code, 0) != code || ae.model.Reason != reason || !containsAll(ptr.Deref(ae.model.Message, ""), msgParts...) {
		t.Fatalf("want code %d reason %s message with %q, got %v", code, reason, msgParts, ae)
	}
}

// TestAgentAddCheckDel walks one pod through ADD, a repeated ADD, CHECK, a stale DEL
// and DEL, checking the pool and the SpiderEndpoint after each step.
func TestAgentAddCheckDel(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ta := startAgent(t, e)
	newPool(t, e, "acd", "10.30.0.0/24", func(sp *v2beta1.SpiderIPPool) {
		sp.Spec.Gateway = ptr.To(v2beta1.IPAddress("10.30.0.1"))
		sp.Spec.Routes = []v2beta1.Route{{Dst: "10.31.0.0/16", Gw: "10.30.0.2"}}
	}, "10.30.0.10-10.30.0.12")
	waitForPools(t, ta)
	ns := newNamespace(t, e, nil)
	pod := newPod(t, e, ns, "web", ta.node, poolAnnotation("acd", ""))
	att := attachment{pod: pod, containerID: "ctr-1", ifName: "eth0", network: "net-a"}

	res, err := ta.add(ctx, att)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Ips) != 1 {
		t.Fatalf("want one IP, got %+v", res.Ips)
	}
	got := *res.Ips[0].Address
	prefix := netip.MustParsePrefix(got)
	if r := netip.MustParseAddr("10.30.0.10"); prefix.Bits() != 24 || prefix.Addr().Less(r) || netip.MustParseAddr("10.30.0.12").Less(prefix.Addr()) {
		t.Fatalf("IP %s is not in the pool's range with the subnet's prefix", got)
	}
	if res.Ips[0].Gateway != "10.30.0.1" || *res.Ips[0].Pool != "acd" {
		t.Fatalf("want gateway 10.30.0.1 from pool acd, got %+v", res.Ips[0])
	}
	if len(res.Routes) != 1 || *res.Routes[0].Dst != "10.31.0.0/16" || res.Routes[0].Gw != "10.30.0.2" {
		t.Fatalf("want the pool's route, got %+v", res.Routes)
	}

	again, err := ta.add(ctx, att)
	if err != nil || *again.Ips[0].Address != got {
		t.Fatalf("repeated ADD: want %s, got %+v, %v", got, again, err)
	}
	if n := podsHold(t, e, "acd"); n != 1 {
		t.Fatalf("pods hold %d addresses of the pool after two ADDs of one attachment, want 1", n)
	}
	se, err := getEndpoint(ctx, e, pod)
	if err != nil {
		t.Fatal(err)
	}
	if se.Status.Current.UID != string(pod.UID) || se.Status.Current.Node != ta.node || ptr.Deref(se.Status.Current.IPs[0].IPv4, "") != got {
		t.Fatalf("SpiderEndpoint does not record the allocation: %+v", se.Status.Current)
	}

	if err := ta.check(ctx, att, got); err != nil {
		t.Fatalf("CHECK of the allocated address: %v", err)
	}
	if err := ta.check(ctx, att, "10.30.0.99/24"); err == nil {
		t.Fatal("CHECK of an address the pod does not hold succeeded")
	}

	stale := att
	stale.containerID = "ctr-old"
	if err := ta.del(ctx, stale); err != nil {
		t.Fatalf("DEL of an unknown container: %v", err)
	}
	if podsHold(t, e, "acd") != 1 {
		t.Fatal("a DEL from another container released the pod's address")
	}

	if err := ta.del(ctx, att); err != nil {
		t.Fatal(err)
	}
	if n := podsHold(t, e, "acd"); n != 0 {
		t.Fatalf("pool holds %d addresses after DEL, want 0", n)
	}
	if _, err := getEndpoint(ctx, e, pod); err == nil {
		t.Fatal("SpiderEndpoint still exists after the pod's last interface was released")
	}
	if err := ta.del(ctx, att); err != nil {
		t.Fatalf("repeated DEL: %v", err)
	}
	if err := ta.check(ctx, att, got); err == nil {
		t.Fatal("CHECK after DEL succeeded")
	}
}

// TestAgentUserErrors covers the errors a user fixes: they name the pool, carry CNI code
// 7 or 11 as documented, and leave a Warning event on the pod.
func TestAgentUserErrors(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ta := startAgent(t, e)
	newPool(t, e, "tiny", "10.32.0.0/24", nil, "10.32.0.5")
	waitForPools(t, ta)
	ns := newNamespace(t, e, nil)

	t.Run("pool exhausted", func(t *testing.T) {
		first := newPod(t, e, ns, "first", ta.node, poolAnnotation("tiny", ""))
		if _, err := ta.add(ctx, attachment{pod: first, containerID: "c1", ifName: "eth0"}); err != nil {
			t.Fatal(err)
		}
		second := newPod(t, e, ns, "second", ta.node, poolAnnotation("tiny", ""))
		_, err := ta.add(ctx, attachment{pod: second, containerID: "c2", ifName: "eth0"})
		wantAgentError(t, err, codeTryAgainLater, ReasonPoolExhausted, `"tiny"`)
		testenv.WaitFor(t, "a Warning event on the pod", func() (bool, error) {
			w, err := podWarnings(ctx, e, second)
			return len(w) > 0 && strings.Contains(w[0], "tiny"), err
		})
	})

	t.Run("unknown pool, then created", func(t *testing.T) {
		pod := newPod(t, e, ns, "waits", ta.node, poolAnnotation("later", ""))
		att := attachment{pod: pod, containerID: "c3", ifName: "eth0"}
		_, err := ta.add(ctx, att)
		wantAgentError(t, err, codeInvalidConfig, ReasonUnknownPool, "later")
		testenv.WaitFor(t, "a Warning event naming the pool", func() (bool, error) {
			w, err := podWarnings(ctx, e, pod)
			return len(w) > 0 && strings.Contains(w[0], "later"), err
		})
		newPool(t, e, "later", "10.33.0.0/24", nil, "10.33.0.5-10.33.0.6")
		testenv.WaitFor(t, "ADD to succeed once the pool exists", func() (bool, error) {
			_, err := ta.add(ctx, att)
			return err == nil, err
		})
	})

	t.Run("malformed annotation", func(t *testing.T) {
		pod := newPod(t, e, ns, "typo", ta.node, map[string]string{"ipam.spidernet.io/ippool": `{"ipv4":["tiny"]`})
		_, err := ta.add(ctx, attachment{pod: pod, containerID: "c4", ifName: "eth0"})
		wantAgentError(t, err, codeInvalidConfig, ReasonBadAnnotation, "ipam.spidernet.io/ippool")
	})

	t.Run("malformed request", func(t *testing.T) {
		_, err := ta.api.AddContext(ctx, operations.NewAddParams().WithArgs(&models.AddArgs{}))
		if err == nil {
			t.Fatal("an ADD without an attachment succeeded")
		}
	})
}

// TestAgentDualStackRollback allocates one IPv4 and one IPv6 address per pod and checks
// that when one family fails, the other family's address is given back.
func TestAgentDualStackRollback(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ta := startAgent(t, e)
	newPool(t, e, "ds4", "10.34.0.0/24", nil, "10.34.0.10-10.34.0.20")
	newPool(t, e, "ds6", "fd00:34::/64", nil, "fd00:34::10")
	waitForPools(t, ta)
	ns := newNamespace(t, e, nil)

	a := newPod(t, e, ns, "a", ta.node, poolAnnotation("ds4", "ds6"))
	res, err := ta.add(ctx, attachment{pod: a, containerID: "ca", ifName: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Ips) != 2 || *res.Ips[0].Version == *res.Ips[1].Version {
		t.Fatalf("want one IPv4 and one IPv6 address, got %+v", res.Ips)
	}

	b := newPod(t, e, ns, "b", ta.node, poolAnnotation("ds4", "ds6"))
	_, err = ta.add(ctx, attachment{pod: b, containerID: "cb", ifName: "eth0"})
	wantAgentError(t, err, codeTryAgainLater, ReasonPoolExhausted, "ds6")
	if n := podsHold(t, e, "ds4"); n != 1 {
		t.Fatalf("IPv4 pool holds %d addresses after the IPv6 half failed, want 1 (rolled back)", n)
	}
}

// TestAgentRecreatedPod gives a pod re-created under the same name (a new UID) fresh
// state: the previous pod's addresses are released, not handed over.
func TestAgentRecreatedPod(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ta := startAgent(t, e)
	newPool(t, e, "re", "10.35.0.0/24", nil, "10.35.0.10-10.35.0.20")
	waitForPools(t, ta)
	ns := newNamespace(t, e, nil)

	old := newPod(t, e, ns, "job-x", ta.node, poolAnnotation("re", ""))
	if _, err := ta.add(ctx, attachment{pod: old, containerID: "c-old", ifName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	// The pod is deleted without a CNI DEL reaching us and re-created at once (a Job's
	// retry with the same name). No garbage collector runs here, so the endpoint stays.
	// No kubelet confirms a graceful deletion here: delete at once.
	if err := e.Client.Delete(ctx, old, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the old pod to be gone", func() (bool, error) {
		err := e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "job-x"}, old.DeepCopy())
		return err != nil, nil
	})
	fresh := newPod(t, e, ns, "job-x", ta.node, poolAnnotation("re", ""))
	if _, err := ta.add(ctx, attachment{pod: fresh, containerID: "c-new", ifName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	se, err := getEndpoint(ctx, e, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if se.Status.Current.UID != string(fresh.UID) {
		t.Fatalf("SpiderEndpoint still names UID %s, want the new pod's %s", se.Status.Current.UID, fresh.UID)
	}
	if n := podsHold(t, e, "re"); n != 1 {
		t.Fatalf("pool holds %d addresses, want 1: the previous pod's address must be released", n)
	}
}

// TestAgentGC releases the attachments of one network that the runtime no longer lists,
// and nothing of another network.
func TestAgentGC(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ta := startAgent(t, e)
	newPool(t, e, "gc", "10.36.0.0/24", nil, "10.36.0.10-10.36.0.20")
	waitForPools(t, ta)
	ns := newNamespace(t, e, nil)

	var atts []attachment
	for i, network := range []string{"net-a", "net-a", "net-b"} {
		pod := newPod(t, e, ns, fmt.Sprintf("p%d", i), ta.node, poolAnnotation("gc", ""))
		a := attachment{pod: pod, containerID: fmt.Sprintf("c%d", i), ifName: "eth0", network: network}
		if _, err := ta.add(ctx, a); err != nil {
			t.Fatal(err)
		}
		atts = append(atts, a)
	}
	// GC reads this node's endpoints from the agent's cache, which may lag the writes
	// above by a watch event: repeat it until the pool shrinks, counting what it freed.
	args := &models.GCArgs{NetworkName: ptr.To("net-a"), ValidAttachments: []*models.GCAttachment{{ContainerID: ptr.To("c0"), IfName: ptr.To("eth0")}}}
	var released int64
	testenv.WaitFor(t, "GC to release p1", func() (bool, error) {
		ok, err := ta.api.GcContext(ctx, operations.NewGcParams().WithArgs(args))
		if err != nil {
			return false, asAgentError(err)
		}
		released += ok.Payload.Released
		return podsHold(t, e, "gc") < 3, nil
	})
	if released != 1 {
		t.Fatalf("GC released %d attachments, want 1 (p1 of net-a)", released)
	}
	if n := podsHold(t, e, "gc"); n != 2 {
		t.Fatalf("pool holds %d addresses after GC, want 2", n)
	}
	for _, a := range []attachment{atts[0], atts[2]} {
		if _, err := getEndpoint(ctx, e, a.pod); err != nil {
			t.Fatalf("GC removed %s: %v", a.pod.Name, err)
		}
	}
}

// TestAgentStatus answers STATUS through the socket once the agent serves.
func TestAgentStatus(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ta := startAgent(t, e)
	newPool(t, e, "status", "10.40.0.0/24", nil, "10.40.0.10")
	var st *operations.StatusOK
	testenv.WaitFor(t, "STATUS ready", func() (bool, error) {
		var err error
		st, err = ta.api.StatusContext(ctx, operations.NewStatusParams())
		return err == nil, asAgentError(err)
	})
	// The plugin compares the version with its own (pkg/cni: skew warning).
	if got := st.Payload; got.Version != version.Version() || got.Commit != version.Commit() {
		t.Errorf("STATUS says version %q commit %q, want %q %q", got.Version, got.Commit, version.Version(), version.Commit())
	}
}

// TestAgentSandboxMoved re-creates a two-interface pod's sandbox: both interfaces keep
// their addresses and the pools record the new container for both, so the new sandbox's
// DELs free everything. When, before the move, one interface's address was freed and
// taken by another pod, that interface gets a fresh address instead of a shared one.
func TestAgentSandboxMoved(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ta := startAgent(t, e)
	newPool(t, e, "mv-a", "10.37.0.0/24", nil, "10.37.0.10-10.37.0.20")
	newPool(t, e, "mv-b", "10.38.0.0/24", nil, "10.38.0.10-10.38.0.20")
	waitForPools(t, ta)
	ns := newNamespace(t, e, nil)
	twoNICs := map[string]string{"ipam.spidernet.io/ippools": `[{"interface":"eth0","ipv4":["mv-a"]},{"interface":"net1","ipv4":["mv-b"]}]`}

	addBoth := func(pod attachment) (eth0, net1 string) {
		t.Helper()
		for _, ifName := range []string{"eth0", "net1"} {
			a := pod
			a.ifName = ifName
			res, err := ta.add(ctx, a)
			if err != nil {
				t.Fatalf("ADD %s %s: %v", a.containerID, ifName, err)
			}
			if ifName == "eth0" {
				eth0 = *res.Ips[0].Address
			} else {
				net1 = *res.Ips[0].Address
			}
		}
		return eth0, net1
	}

	t.Run("both interfaces move", func(t *testing.T) {
		pod := newPod(t, e, ns, "moved", ta.node, twoNICs)
		eth0, net1 := addBoth(attachment{pod: pod, containerID: "sandbox-1"})
		gotEth0, gotNet1 := addBoth(attachment{pod: pod, containerID: "sandbox-2"})
		if gotEth0 != eth0 || gotNet1 != net1 {
			t.Fatalf("new sandbox got %s, %s; want the old addresses %s, %s", gotEth0, gotNet1, eth0, net1)
		}
		for _, ifName := range []string{"eth0", "net1"} {
			a := attachment{pod: pod, containerID: "sandbox-2", ifName: ifName}
			if err := ta.check(ctx, a); err != nil {
				t.Fatalf("CHECK %s after the move: %v", ifName, err)
			}
			if err := ta.del(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		if a, b := podsHold(t, e, "mv-a"), podsHold(t, e, "mv-b"); a != 0 || b != 0 {
			t.Fatalf("pools hold %d and %d addresses after the new sandbox's DELs, want 0 and 0", a, b)
		}
	})

	t.Run("an address taken meanwhile is not reused", func(t *testing.T) {
		pod := newPod(t, e, ns, "robbed", ta.node, twoNICs)
		eth0, net1 := addBoth(attachment{pod: pod, containerID: "sandbox-1"})
		// Free net1's address behind the endpoint's back (as GC would) and give it to
		// another owner.
		taken := netip.MustParsePrefix(net1).Addr()
		// GC frees what the pool records; an address handed out from the node's reserve
		// is recorded under its pod by the agent's next write.
		sandbox1 := records.OwnerOf(string(pod.UID), "sandbox-1", "net1")
		testenv.WaitFor(t, "net1's address recorded under the pod", func() (bool, error) {
			h, _ := readPool(t, e, "mv-b").Holder(taken)
			return h == sandbox1, nil
		})
		store := crdstore.Pools{Client: e.Client}
		thief := records.OwnerOf("other-pod", "other-ctr", "eth0")
		// The agent writes the pool too (its reserve): retry on a conflict, as GC would.
		testenv.WaitFor(t, "net1's address handed to another owner", func() (bool, error) {
			obj, err := store.GetPool(ctx, "mv-b")
			if err != nil {
				return false, err
			}
			p, err := ipam.NewPool(obj, ip.Set{})
			if err != nil {
				return false, err
			}
			p, ok := p.Release(taken, sandbox1)
			if !ok {
				return false, fmt.Errorf("the pool did not record net1's address for sandbox-1")
			}
			p, addrs, err := p.Allocate([]records.Owner{thief}, taken)
			if err != nil || addrs[0] != taken {
				return false, fmt.Errorf("could not hand %s to another owner: %v %v", taken, addrs, err)
			}
			if err := p.WriteStatus(obj); err != nil {
				return false, err
			}
			err = store.UpdatePoolStatus(ctx, obj)
			if errors.Is(err, ipam.ErrConflict) {
				return false, nil
			}
			return err == nil, err
		})

		gotEth0, gotNet1 := addBoth(attachment{pod: pod, containerID: "sandbox-2"})
		if gotEth0 != eth0 {
			t.Fatalf("eth0 got %s after the move, want its address %s", gotEth0, eth0)
		}
		if gotNet1 == net1 {
			t.Fatalf("net1 got %s again, which another owner holds now", gotNet1)
		}
		if h := podHolders(t, e, "mv-b")[taken]; h != thief {
			t.Fatalf("%s is recorded for %v, want the other owner", taken, h)
		}
	})
}

// TestAgentRecreatedPodOtherNode re-creates a pod under the same name on another node:
// the new node's agent cannot see the old endpoint in its node-scoped cache, finds it
// when it records its own, and frees the previous pod's address.
func TestAgentRecreatedPodOtherNode(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first, second := startAgent(t, e), startAgent(t, e)
	newPool(t, e, "re2", "10.39.0.0/24", nil, "10.39.0.10-10.39.0.20")
	waitForPools(t, first)
	waitForPools(t, second)
	ns := newNamespace(t, e, nil)

	old := newPod(t, e, ns, "sts-0", first.node, poolAnnotation("re2", ""))
	if _, err := first.add(ctx, attachment{pod: old, containerID: "c-old", ifName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Delete(ctx, old, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the old pod to be gone", func() (bool, error) {
		err := e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "sts-0"}, old.DeepCopy())
		return err != nil, nil
	})
	fresh := newPod(t, e, ns, "sts-0", second.node, poolAnnotation("re2", ""))
	if _, err := second.add(ctx, attachment{pod: fresh, containerID: "c-new", ifName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	se, err := getEndpoint(ctx, e, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if se.Status.Current.UID != string(fresh.UID) || se.Status.Current.Node != second.node {
		t.Fatalf("SpiderEndpoint names UID %s on %s, want the new pod %s on %s", se.Status.Current.UID, se.Status.Current.Node, fresh.UID, second.node)
	}
	if n := podsHold(t, e, "re2"); n != 1 {
		t.Fatalf("pool holds %d addresses, want 1: the previous pod's address must be released", n)
	}
}
