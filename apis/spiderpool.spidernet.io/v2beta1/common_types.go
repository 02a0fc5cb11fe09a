package v2beta1

// IPVersion values of spec.ipVersion.
const (
	IPv4 int64 = 4
	IPv6 int64 = 6
)

// Finalizer is the finalizer SpiderPool puts on pools, subnets and endpoints; orbweaver
// uses the same one so objects move between the two without surprises.
const Finalizer = GroupName

// IPOrRange is one IP address ("10.244.120.10") or an inclusive range of addresses of one
// family written "first-last" ("10.244.120.10-10.244.120.20", "fd00::10-fd00::1f").
// The schema checks the form; that first <= last and that the addresses lie inside the
// subnet are checked by the admission webhook.
// +kubebuilder:validation:MinLength=2
// +kubebuilder:validation:MaxLength=91
// +kubebuilder:validation:XValidation:rule="self.indexOf('-') < 0 ? isIP(self) : isIP(self.substring(0, self.indexOf('-'))) && isIP(self.substring(self.indexOf('-') + 1))",message="must be an IP address or a range 'first-last' of two IP addresses, e.g. 10.244.120.10-10.244.120.20"
// +kubebuilder:validation:XValidation:rule="self.indexOf('-') < 0 || !isIP(self.substring(0, self.indexOf('-'))) || !isIP(self.substring(self.indexOf('-') + 1)) || ip(self.substring(0, self.indexOf('-'))).family() == ip(self.substring(self.indexOf('-') + 1)).family()",message="both ends of a range must be of the same IP family"
type IPOrRange string

// CIDR is a subnet in canonical CIDR form: "10.244.0.0/16", "fd00:10:244::/64".
// +kubebuilder:validation:MinLength=9
// +kubebuilder:validation:MaxLength=43
// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="must be a CIDR such as 10.244.0.0/16 or fd00::/64"
// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self) == cidr(self).masked()",message="must be canonical: no address bits may be set after the prefix length"
type CIDR string

// IPAddress is a single IP address.
// +kubebuilder:validation:MinLength=2
// +kubebuilder:validation:MaxLength=45
// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IP address"
type IPAddress string

// Route is a route handed to the pod with its IP.
type Route struct {
	// Dst is the destination as a CIDR. Use the gateway field, not a route, for the
	// default route.
	// +required
	// +kubebuilder:validation:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="must be a CIDR such as 10.0.0.0/16"
	Dst string `json:"dst"`

	// Gw is the next hop.
	// +required
	Gw IPAddress `json:"gw"`
}
