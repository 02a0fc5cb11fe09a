package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

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

	// AllowPodRequests lets the pods that use this pool (those its namespaceName,
	// namespaceAffinity and other affinities admit) ask for EIPs by annotation for their
	// IPs of this pool: orbweaver.io/with-eip, orbweaver.io/eip-id, the per-pod
	// attributes and, when the controller reads them, the vendors' annotations. Without
	// it, and without the namespace label orbweaver.io/eip-requests=allowed or the
	// controller's --eip-pod-requests=open, such requests are refused
	// (docs/guides/eip.md, the security model). Default false.
	// +optional
	AllowPodRequests bool `json:"allowPodRequests,omitempty"`
}

// EIPPhase is where the binding of one pool IP to its EIP stands. The controller writes
// the phase before each cloud call and the result after it, so that a controller that
// restarts mid-operation resumes the call (Allocate is idempotent by token) instead of
// repeating it.
// +kubebuilder:validation:Enum=Allocating;Allocated;Associating;Bound;Unbinding;Releasing
type EIPPhase string

// The phases, in the order a binding goes through them.
const (
	// EIPAllocating: Allocate was (or is about to be) called with the binding's token;
	// the EIP's ID is not known yet.
	EIPAllocating EIPPhase = "Allocating"
	// EIPAllocated: the EIP exists and is not associated.
	EIPAllocated EIPPhase = "Allocated"
	// EIPAssociating: Associate was called for networkInterface; waiting for the cloud
	// to report the EIP in use.
	EIPAssociating EIPPhase = "Associating"
	// EIPBound: the cloud reports the EIP in use on the pod's IP.
	EIPBound EIPPhase = "Bound"
	// EIPUnbinding: Disassociate was called; waiting for the EIP to be available.
	EIPUnbinding EIPPhase = "Unbinding"
	// EIPReleasing: Release was called; the binding goes once the EIP is gone.
	EIPReleasing EIPPhase = "Releasing"
)

// EIPBinding is one pool IP's EIP, in status.orbweaver.eips.
type EIPBinding struct {
	// IP is the pool's private IP the EIP belongs to.
	IP string `json:"ip"`
	// Phase is where the binding stands.
	Phase EIPPhase `json:"phase"`
	// Provider is the cloud the EIP is in, so it can be released even after the pool's
	// EIP attribute changed or went.
	Provider string `json:"provider"`
	// Token is the client token of the Allocate that made (or is making) the EIP.
	// +optional
	Token string `json:"token,omitempty"`
	// AllocationID is the cloud's ID of the EIP.
	// +optional
	AllocationID string `json:"allocationID,omitempty"`
	// PublicIP is the EIP's address.
	// +optional
	PublicIP string `json:"publicIP,omitempty"`
	// Static is true for an EIP of spec.orbweaver.eip.static: never released.
	// +optional
	Static bool `json:"static,omitempty"`
	// NetworkInterface is the interface the EIP is (being) associated with.
	// +optional
	NetworkInterface string `json:"networkInterface,omitempty"`
	// Pod is the namespace/name of the pod that last held the IP.
	// +optional
	Pod string `json:"pod,omitempty"`
	// Node is the node of that pod.
	// +optional
	Node string `json:"node,omitempty"`
	// ReleaseAfter is when an Auto EIP whose IP is no longer held goes back to the
	// cloud (releaseStrategy a duration); unset while the IP is held.
	// +optional
	ReleaseAfter *metav1.Time `json:"releaseAfter,omitempty"`
	// Requested is true for an EIP a pod's annotations asked for (orbweaver.io/with-eip,
	// orbweaver.io/eip-id or attributes), as opposed to the pool's attribute.
	// +optional
	Requested bool `json:"requested,omitempty"`
	// ReleaseStrategy is the pod's orbweaver.io/eip-release-strategy, which wins over
	// the pool's once the IP is released.
	// +optional
	ReleaseStrategy *ReclaimPolicy `json:"releaseStrategy,omitempty"`
	// Message is the last cloud error for this binding, if any.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// PodEIP is an EIP of a pod, in its SpiderEndpoint (status.current.orbweaver.eips).
type PodEIP struct {
	// IP is the pod's private IP.
	IP string `json:"ip"`
	// PublicIP is the EIP's address.
	PublicIP string `json:"publicIP"`
	// AllocationID is the cloud's ID of the EIP.
	AllocationID string `json:"allocationID"`
	// Phase is the binding's phase (Bound once the cloud reports it in use).
	Phase EIPPhase `json:"phase"`
}

// Conditions and annotations of the EIP feature.
const (
	// IPPoolEIPReadyCondition (status.orbweaver.conditions of a pool with
	// spec.orbweaver.eip) is True when every IP held by a pod has its EIP bound.
	IPPoolEIPReadyCondition = "EIPReady"
	// The EIPReady reasons.
	EIPAllBoundReason         = "AllBound"
	EIPBindingReason          = "Binding"
	EIPQuotaExceededReason    = "QuotaExceeded"
	EIPForbiddenReason        = "Forbidden"
	EIPProviderMissingReason  = "ProviderNotConfigured"
	EIPCloudErrorReason       = "CloudError"
	EIPStaticExhaustedReason  = "NotEnoughStaticEIPs"
	EIPInterfaceUnknownReason = "InterfaceNotFound"
	// EIPRequestRefusedReason: a pod asked for an EIP by annotation where no
	// administrator allows it (or named an EIP it may not use); nothing was done in
	// the cloud for it.
	EIPRequestRefusedReason = "PodRequestRefused"
	// EIPInvalidRequestReason: a pod's EIP annotations do not parse.
	EIPInvalidRequestReason = "InvalidPodRequest"

	// PodEIPConditionType is the readiness gate a pod declares
	// (readinessGates: [{conditionType: orbweaver.io/eip}]) to be Ready only once its
	// EIP is bound.
	PodEIPConditionType = "orbweaver.io/eip"
	// AnnoAllocatedEIP is set on a pod once its EIP is bound: the public address (a
	// comma-separated list for a pod with several EIP interfaces).
	AnnoAllocatedEIP = "orbweaver.io/allocated-eip"
	// AnnoNodeEIPInterface on a Node names the network interface to associate EIPs of
	// that node's pods with, instead of asking the cloud which interface carries the
	// pod's IP.
	AnnoNodeEIPInterface = "orbweaver.io/eip-network-interface"
)

// Pod annotations that ask for an EIP, or set its attributes, per pod. They apply to
// the pod's IPs in every pool: in a pool with spec.orbweaver.eip they override its
// attributes for EIPs allocated for the pod; in a pool without one, AnnoWithEIP (or
// AnnoEIPID) gives the pod's IPs EIPs all the same. docs/guides/eip.md.
const (
	// AnnoWithEIP "true" asks for an EIP for each of the pod's IPs.
	AnnoWithEIP = "orbweaver.io/with-eip"
	// AnnoEIPProvider is the cloud of those EIPs when the pool has no EIP attribute;
	// default the controller's --eip-default-provider.
	AnnoEIPProvider = "orbweaver.io/eip-provider"
	// AnnoEIPID binds this existing EIP (an allocation ID) instead of allocating one; it
	// is never released. For a pod with one IP.
	AnnoEIPID = "orbweaver.io/eip-id"
	// AnnoEIPIDList names existing EIPs by StatefulSet ordinal, comma-separated: the pod
	// with ordinal i binds the i-th, as AnnoEIPID (a pod of no StatefulSet takes
	// the first). A pod past the list gets no EIP and waits, its readiness gate False,
	// with a Warning naming the list, until the list grows. Not with AnnoEIPID.
	AnnoEIPIDList = "orbweaver.io/eip-id-list"
	// The Auto attributes, as the fields of EIPSpec of the same names.
	AnnoEIPBandwidth          = "orbweaver.io/eip-bandwidth"
	AnnoEIPISP                = "orbweaver.io/eip-isp"
	AnnoEIPInternetChargeType = "orbweaver.io/eip-internet-charge-type"
	AnnoEIPInstanceChargeType = "orbweaver.io/eip-instance-charge-type"
	AnnoEIPPublicIPPool       = "orbweaver.io/eip-public-ip-pool"
	AnnoEIPBandwidthPackage   = "orbweaver.io/eip-bandwidth-package"
	AnnoEIPResourceGroup      = "orbweaver.io/eip-resource-group"
	AnnoEIPName               = "orbweaver.io/eip-name"
	AnnoEIPDescription        = "orbweaver.io/eip-description"
	// AnnoEIPReleaseStrategy is Follow, Never or a duration, for EIPs allocated for the
	// pod (recorded on the binding, so it holds after the pod is gone).
	AnnoEIPReleaseStrategy = "orbweaver.io/eip-release-strategy"
)

// Who may ask for EIPs by pod annotation (docs/guides/eip.md, the security model).
// Per-pod requests are honoured only where an administrator allows them: in a namespace
// labelled LabelEIPRequests=EIPRequestsAllowed, for IPs of a pool whose EIP attribute
// sets allowPodRequests, or everywhere with the controller's --eip-pod-requests=open.
const (
	// LabelEIPRequests on a Namespace, with the value EIPRequestsAllowed, lets that
	// namespace's pods ask for EIPs by annotation. Labelling namespaces should be a
	// cluster administrator's right alone.
	LabelEIPRequests   = "orbweaver.io/eip-requests"
	EIPRequestsAllowed = "allowed"
)
