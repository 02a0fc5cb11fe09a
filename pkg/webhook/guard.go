package webhook

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// A webhook that lists the stored pools and then admits a new one is a read-then-admit
// race: two overlapping pools created at once both pass, each checked against a list
// without the other (SpiderPool has this race). Admission decisions for pools and subnets
// are therefore made one at a time through a Serializer, and each admitted object is
// remembered as a Claim until the API server has had time to store it, so the next
// decision sees it even before it is listed.

// Claim is a pool or subnet that was admitted and may not be stored yet.
type Claim struct {
	Kind    string   `json:"kind"` // SpiderIPPool or SpiderSubnet
	Name    string   `json:"name"`
	Subnet  string   `json:"subnet"`
	IPs     []string `json:"ips,omitempty"`
	Exclude []string `json:"excludeIPs,omitempty"`
	// Until is when the claim lapses: by then the object is stored (and listed) or its
	// create failed after admission (another webhook refused it, say).
	Until time.Time `json:"until"`
	// Update is true for a change of an object that was stored already: once it is no
	// longer listed it was deleted, and its claim no longer holds addresses (a create's
	// claim must hold until Until: its object may not be stored yet).
	Update bool `json:"update,omitempty"`
	// EIPs are a pool's Static EIP IDs: racing pools must not list one EIP twice.
	EIPs []string `json:"eips,omitempty"`
}

// Serializer runs admission decisions one at a time, across webhook replicas.
type Serializer interface {
	// Admit calls decide with the claims admitted before and not lapsed, and, when decide
	// finds no problem, records claim; no other decision may run in between. A decision
	// that lost a race is made again.
	Admit(ctx context.Context, claim Claim, decide func(pending []Claim) (field.ErrorList, error)) (field.ErrorList, error)
}

// ClaimTTL is how long a claim outlives its admission: far longer than the API server
// takes from the webhook's answer to storing the object.
const ClaimTTL = 30 * time.Second

func claimOfPool(p *v2beta1.SpiderIPPool, now time.Time, update bool) Claim {
	c := Claim{Kind: "SpiderIPPool", Name: p.Name, Subnet: string(p.Spec.Subnet), IPs: rangeStrings(p.Spec.IPs), Exclude: rangeStrings(p.Spec.ExcludeIPs), Until: now.Add(ClaimTTL), Update: update}
	if e := eipOf(p); e != nil {
		c.EIPs = e.Static
	}
	return c
}

func claimOfSubnet(s *v2beta1.SpiderSubnet, now time.Time, update bool) Claim {
	return Claim{Kind: "SpiderSubnet", Name: s.Name, Subnet: string(s.Spec.Subnet), IPs: rangeStrings(s.Spec.IPs), Exclude: rangeStrings(s.Spec.ExcludeIPs), Until: now.Add(ClaimTTL), Update: update}
}

func rangeStrings(rs []v2beta1.IPOrRange) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

func claimRanges(ss []string) []v2beta1.IPOrRange {
	out := make([]v2beta1.IPOrRange, len(ss))
	for i, s := range ss {
		out[i] = v2beta1.IPOrRange(s)
	}
	return out
}

// withPending adds the pending claims to what the rules compare against, as objects,
// except the claims of the object under review (self) and:
//   - a create's claim of an object that is listed: the stored object is at least as new;
//   - an update's claim of an object that is not listed: it was deleted since (an auto
//     pool deleted with its application gives its addresses to the next one at once).
//
// An update's claim of a listed object stays beside it: the listed version may be the one
// before the update, which the update may grow.
func withPending(e Existing, pending []Claim, selfKind, self string) Existing {
	listed := map[[2]string]bool{}
	for _, p := range e.IPPools {
		listed[[2]string{"SpiderIPPool", p.Name}] = true
	}
	for _, s := range e.Subnets {
		listed[[2]string{"SpiderSubnet", s.Name}] = true
	}
	for _, c := range pending {
		if c.Kind == selfKind && c.Name == self || listed[[2]string{c.Kind, c.Name}] != c.Update {
			continue
		}
		meta := metav1.ObjectMeta{Name: c.Name}
		switch c.Kind {
		case "SpiderIPPool":
			spec := v2beta1.IPPoolSpec{Subnet: v2beta1.CIDR(c.Subnet), IPs: claimRanges(c.IPs), ExcludeIPs: claimRanges(c.Exclude)}
			if len(c.EIPs) > 0 {
				spec.Orbweaver = &v2beta1.IPPoolOrbweaverSpec{EIP: &v2beta1.EIPSpec{Mode: v2beta1.EIPStatic, Static: c.EIPs}}
			}
			e.IPPools = append(e.IPPools, v2beta1.SpiderIPPool{ObjectMeta: meta, Spec: spec})
		case "SpiderSubnet":
			e.Subnets = append(e.Subnets, v2beta1.SpiderSubnet{ObjectMeta: meta, Spec: v2beta1.SubnetSpec{
				Subnet: v2beta1.CIDR(c.Subnet), IPs: claimRanges(c.IPs), ExcludeIPs: claimRanges(c.Exclude)}})
		}
	}
	return e
}
