package eip

import "strconv"

// The allocation attributes of an AllocateRequest, by the names of the pool fields
// (spec.orbweaver.eip) that set them.
const (
	AttrBandwidth          = "bandwidth"
	AttrInternetChargeType = "internetChargeType"
	AttrInstanceChargeType = "instanceChargeType"
	AttrISP                = "isp"
	AttrPublicIPPool       = "publicIPPool"
	AttrBandwidthPackage   = "bandwidthPackage"
	AttrResourceGroup      = "resourceGroup"
	AttrName               = "name"
	AttrDescription        = "description"
)

// Attributes returns the attributes req sets, by name, with their values.
func Attributes(req AllocateRequest) map[string]string {
	out := map[string]string{}
	if req.Bandwidth > 0 {
		out[AttrBandwidth] = strconv.Itoa(req.Bandwidth)
	}
	for name, v := range map[string]string{
		AttrInternetChargeType: req.InternetChargeType, AttrInstanceChargeType: req.InstanceChargeType, AttrISP: req.ISP,
		AttrPublicIPPool: req.PublicIPPool, AttrBandwidthPackage: req.BandwidthPackage, AttrResourceGroup: req.ResourceGroup,
		AttrName: req.Name, AttrDescription: req.Description,
	} {
		if v != "" {
			out[name] = v
		}
	}
	return out
}

// Unhonoured is implemented by adapters whose cloud has no parameter for some of an
// AllocateRequest's attributes (or for some of their values): it returns the names
// (Attr*) of those req sets that the adapter's Allocate does not send, sorted. The
// controller warns about them, so an attribute is never dropped silently.
type Unhonoured interface {
	Unhonoured(req AllocateRequest) []string
}

// UnhonouredBy returns the attributes of req that p does not honour; none when p does
// not say (the in-memory cloud honours every one).
func UnhonouredBy(p Provider, req AllocateRequest) []string {
	if u, ok := p.(Unhonoured); ok {
		return u.Unhonoured(req)
	}
	return nil
}

// SetAmong returns those of names that req sets, in the order given: what an adapter
// whose cloud has no parameter for names returns from Unhonoured.
func SetAmong(req AllocateRequest, names ...string) []string {
	set := Attributes(req)
	var out []string
	for _, n := range names {
		if _, ok := set[n]; ok {
			out = append(out, n)
		}
	}
	return out
}
