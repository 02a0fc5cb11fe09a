package v2beta1

// EIPMode says where a pool's EIPs come from.
// +kubebuilder:validation:Enum=Auto;Static
type EIPMode string

// The EIP modes.
const (
	// EIPAuto allocates one EIP per pool IP in use, with the spec's attributes.
	EIPAuto EIPMode = "Auto"
	// EIPStatic binds existing EIPs (spec.static, by ID) to the pool's IPs in order;
	// orbweaver never releases them.
	EIPStatic EIPMode = "Static"
)

// EIPSpec gives every IP of a pool its own elastic public IP (orbweaver addition; see
// docs/design/eip.md). The EIP belongs to the pool IP, not to a pod: a StatefulSet pod
// keeps its IP and so its EIP, a Deployment's pods float over the pool's EIPs.
type EIPSpec struct {
	// Provider is the cloud: alibaba, aws or tencent.
	// +kubebuilder:validation:Enum=alibaba;aws;tencent
	Provider string `json:"provider"`

	// Mode is Auto (allocate) or Static (the EIPs listed in static).
	Mode EIPMode `json:"mode"`

	// Static lists existing EIP allocation IDs, mapped to the pool's IPs in ascending
	// order (Static only). An EIP may be listed by one pool only.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=4096
	// +kubebuilder:validation:items:MaxLength=128
	Static []string `json:"static,omitempty"`

	// Bandwidth is the peak bandwidth of each EIP in Mbit/s (Auto only).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	Bandwidth *int32 `json:"bandwidth,omitempty"`

	// ISP is the line, e.g. BGP or BGP_PRO (Auto only).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ISP string `json:"isp,omitempty"`

	// InternetChargeType, e.g. PayByTraffic or PayByBandwidth (Auto only).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	InternetChargeType string `json:"internetChargeType,omitempty"`

	// InstanceChargeType, e.g. PostPaid (Auto only).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	InstanceChargeType string `json:"instanceChargeType,omitempty"`

	// PublicIPPool allocates from a pool of public addresses the account owns (Auto only).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	PublicIPPool string `json:"publicIPPool,omitempty"`

	// BandwidthPackage adds each EIP to a shared bandwidth package (Auto only).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	BandwidthPackage string `json:"bandwidthPackage,omitempty"`

	// ResourceGroup of the EIPs (Auto only).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	ResourceGroup string `json:"resourceGroup,omitempty"`

	// Name and Description of the EIPs (Auto only).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Name string `json:"name,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Description string `json:"description,omitempty"`

	// Tags are added to the EIPs orbweaver allocates, beside its own (Auto only).
	// +optional
	// +kubebuilder:validation:MaxProperties=20
	Tags map[string]string `json:"tags,omitempty"`

	// ReleaseStrategy says when an Auto EIP goes back to the cloud once its pool IP is
	// released: Follow (then), Never, or a duration such as 10m. Static EIPs are never
	// released. Default Follow.
	// +optional
	ReleaseStrategy *ReclaimPolicy `json:"releaseStrategy,omitempty"`
}
