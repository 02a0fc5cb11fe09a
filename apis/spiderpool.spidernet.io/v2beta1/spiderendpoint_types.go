package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WorkloadEndpointStatus is what a pod (or, for StatefulSets, the pod's identity) holds.
type WorkloadEndpointStatus struct {
	// Current is the allocation of the pod instance that holds the IPs now.
	// +optional
	Current PodIPAllocation `json:"current,omitempty"`

	// OwnerControllerType is the kind of the pod's top controller (Deployment,
	// StatefulSet, Job, ..., or Pod for a bare pod).
	// +optional
	OwnerControllerType string `json:"ownerControllerType,omitempty"`

	// OwnerControllerName is the name of the pod's top controller.
	// +optional
	OwnerControllerName string `json:"ownerControllerName,omitempty"`
}

// PodIPAllocation is one pod instance's IPs, one entry per interface.
type PodIPAllocation struct {
	// UID is the UID of the pod that holds the IPs.
	// +required
	UID string `json:"uid"`

	// Node is the node the pod runs on.
	// +optional
	Node string `json:"node,omitempty"`

	// IPs has one entry per interface.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	IPs []IPAllocationDetail `json:"ips,omitempty"`

	// Orbweaver holds orbweaver's additions to the record (not part of SpiderPool).
	// +optional
	Orbweaver *PodAllocationOrbweaver `json:"orbweaver,omitempty"`
}

// PodAllocationOrbweaver is orbweaver's part of a pod's allocation record.
type PodAllocationOrbweaver struct {
	// ContainerID is the pod sandbox whose interfaces hold the IPs. A CNI DEL from any
	// other container (an old sandbox of the same pod) releases nothing.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	ContainerID string `json:"containerID,omitempty"`

	// Networks maps each interface to the CNI network that attached it, so that CNI GC
	// of one network never releases another network's interfaces.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Networks map[string]string `json:"networks,omitempty"`

	// EIPs are the pod's elastic public IPs, written by the EIP controller.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	EIPs []PodEIP `json:"eips,omitempty"`
}

// IPAllocationDetail is the addressing of one interface of a pod.
type IPAllocationDetail struct {
	// NIC is the interface name inside the pod, e.g. eth0.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=15
	NIC string `json:"interface"`

	// IPv4 is the address in CIDR form, e.g. 172.31.199.193/20.
	// +optional
	IPv4 *string `json:"ipv4,omitempty"`

	// IPv6 is the address in CIDR form.
	// +optional
	IPv6 *string `json:"ipv6,omitempty"`

	// IPv4Pool is the pool the IPv4 address came from.
	// +optional
	IPv4Pool *string `json:"ipv4Pool,omitempty"`

	// IPv6Pool is the pool the IPv6 address came from.
	// +optional
	IPv6Pool *string `json:"ipv6Pool,omitempty"`

	// Vlan is the VLAN ID of the interface, 0 for none.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	Vlan *int64 `json:"vlan,omitempty"`

	// IPv4Gateway is the IPv4 default route's next hop.
	// +optional
	IPv4Gateway *string `json:"ipv4Gateway,omitempty"`

	// IPv6Gateway is the IPv6 default route's next hop.
	// +optional
	IPv6Gateway *string `json:"ipv6Gateway,omitempty"`

	// CleanGateway is true when no default route was handed out for this interface.
	// +optional
	CleanGateway *bool `json:"cleanGateway,omitempty"`

	// Routes are the routes handed out for this interface.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	Routes []Route `json:"routes,omitempty"`

	// MAC is a MAC address handed out by an IaaS provider, if any.
	// +optional
	MAC *string `json:"mac,omitempty"`
}

// SpiderEndpoint records the IPs of one pod; it has the pod's namespace and name. For a
// StatefulSet pod it outlives the pod, which is how the pod keeps its IPs.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=se,categories=spiderpool
// The node is a selectable field so that each node agent watches only its own node's
// endpoints (`--field-selector status.current.node=<node>`), not every pod's.
// +kubebuilder:selectablefield:JSONPath=`.status.current.node`
// +kubebuilder:printcolumn:name="INTERFACE",type=string,JSONPath=`.status.current.ips[0].interface`,description="first interface"
// +kubebuilder:printcolumn:name="IPV4POOL",type=string,JSONPath=`.status.current.ips[0].ipv4Pool`,description="pool of the first interface's IPv4"
// +kubebuilder:printcolumn:name="IPV4",type=string,JSONPath=`.status.current.ips[0].ipv4`,description="first interface's IPv4"
// +kubebuilder:printcolumn:name="IPV6POOL",type=string,JSONPath=`.status.current.ips[0].ipv6Pool`,description="pool of the first interface's IPv6"
// +kubebuilder:printcolumn:name="IPV6",type=string,JSONPath=`.status.current.ips[0].ipv6`,description="first interface's IPv6"
// +kubebuilder:printcolumn:name="NODE",type=string,JSONPath=`.status.current.node`,description="node of the pod"
// +kubebuilder:printcolumn:name="EIP",type=string,JSONPath=`.status.current.orbweaver.eips[0].publicIP`,description="elastic public IP of the first EIP interface"
// +kubebuilder:printcolumn:name="EIP-STATE",type=string,JSONPath=`.status.current.orbweaver.eips[0].phase`,description="phase of that EIP's binding",priority=10
type SpiderEndpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Status is written as a whole by the node agent; as in SpiderPool the kind has no
	// status subresource.
	Status WorkloadEndpointStatus `json:"status,omitempty"`
}

// SpiderEndpointList is a list of SpiderEndpoint.
// +kubebuilder:object:root=true
type SpiderEndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []SpiderEndpoint `json:"items"`
}
