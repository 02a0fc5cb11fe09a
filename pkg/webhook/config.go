package webhook

import (
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// Labels the defaulting functions set. They are SpiderPool's, so tools written for
// SpiderPool (kubectl get sp -l ipam.spidernet.io/ippool-cidr=10-6-0-0-16) keep working.
const (
	// LabelIPPoolCIDR is a pool's subnet written as a label value (see CIDRLabelValue).
	LabelIPPoolCIDR = "ipam.spidernet.io/ippool-cidr"
	// LabelSubnetCIDR is a SpiderSubnet's subnet written as a label value.
	LabelSubnetCIDR = "ipam.spidernet.io/subnet-cidr"
	// LabelOwnerSpiderSubnet names the SpiderSubnet whose subnet equals the pool's.
	LabelOwnerSpiderSubnet = ipam.LabelOwnerSpiderSubnet
)

// Config is what admission needs to know about the cluster's IPAM settings. The zero
// Config enables neither family; SpiderPool's defaults are both enabled.
type Config struct {
	// EnableIPv4 and EnableIPv6 say which families the cluster hands out, as SpiderPool's
	// enableIPv4 and enableIPv6. Pools, subnets and reserved IPs of a disabled family are
	// refused: nothing would ever allocate from them.
	EnableIPv4, EnableIPv6 bool
}

// enabled reports whether the family is enabled, and its config key for messages.
func (c Config) enabled(is4 bool) (bool, string) {
	if is4 {
		return c.EnableIPv4, "enableIPv4"
	}
	return c.EnableIPv6, "enableIPv6"
}

// Existing is what the caller read from the API server before checking one object:
// every SpiderIPPool and SpiderSubnet. The object under review may be among them (on
// update it always is); it is recognised by name and skipped. Objects of the list that
// are themselves malformed (admitted before these rules) are skipped by the rules that
// would need their addresses, so an old mistake is never blamed on a new object.
type Existing struct {
	IPPools []v2beta1.SpiderIPPool
	Subnets []v2beta1.SpiderSubnet
	// Endpoints are the SpiderEndpoints that name the pool under review, read only for
	// an update that changes the addresses of a pool in Grants mode: such a pool has no
	// records, and its endpoints say which addresses pods hold.
	Endpoints []v2beta1.SpiderEndpoint
}

// CIDRLabelValue writes a subnet as SpiderPool's CIDR labels do, with '.', ':' and '/'
// replaced by '-' (10.6.0.0/16 is 10-6-0-0-16, fd00:10::/64 is fd00-10---64). ok is
// false when the result is not a valid label value, as for subnets that begin with "::":
// SpiderPool writes those anyway and the API server then refuses the whole object, so
// orbweaver leaves the label out instead.
func CIDRLabelValue(p netip.Prefix) (value string, ok bool) {
	value = strings.NewReplacer(".", "-", ":", "-", "/", "-").Replace(p.String())
	return value, p.IsValid() && len(validation.IsValidLabelValue(value)) == 0
}

func familyName(is4 bool) string {
	if is4 {
		return "IPv4"
	}
	return "IPv6"
}
