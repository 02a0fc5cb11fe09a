package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPBlock says which node each granted address of a 64-address slice of a pool belongs
// to. Its name is the pool's name, a dot and the block's first address (":" written
// "-"). It exists while some address of it is granted, and its owner is the pool.
//
// The controller grants addresses and asks for them back (spec.reclaim); a node's agent
// gives back its own addresses. Every write is a compare-and-swap on the block's
// resourceVersion, so one address is never granted to two nodes.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=ipb,categories=orbweaver
// +kubebuilder:printcolumn:name="POOL",type=string,JSONPath=`.spec.pool`
// +kubebuilder:printcolumn:name="START",type=string,JSONPath=`.spec.start`
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`
type IPBlock struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPBlockSpec `json:"spec"`
}

// IPBlockSpec is a block's grants.
type IPBlockSpec struct {
	// Pool is the SpiderIPPool the block is a slice of.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Pool string `json:"pool"`

	// Start is the block's first address: the pool's subnet address plus a multiple of
	// 64 (the subnet's address when the subnet has fewer than 64 addresses).
	// +required
	// +kubebuilder:validation:MaxLength=39
	Start string `json:"start"`

	// Grants lists, per node, the addresses of the block granted to it. An address is
	// in at most one entry.
	// +optional
	// +listType=map
	// +listMapKey=node
	// +kubebuilder:validation:MaxItems=64
	Grants []NodeAddresses `json:"grants,omitempty"`

	// Reclaim lists granted addresses the controller asks their node to give back
	// because another node needs them, each request with a token of its own. The node
	// answers in its IPAMNode (spec.pools[].giveBack) with the token: the addresses no
	// pod of its own holds are given back, the others kept. A token matches one request
	// only, so an answer that arrives late never takes an address granted again since.
	// +optional
	// +listType=map
	// +listMapKey=node
	// +listMapKey=token
	// +kubebuilder:validation:MaxItems=128
	Reclaim []ReclaimRequest `json:"reclaim,omitempty"`
}

// ReclaimRequest asks a node to give back some of its addresses.
type ReclaimRequest struct {
	// Node is the node's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node"`

	// Token identifies the request; the node's answer names it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	Token string `json:"token"`

	// IPs are the addresses asked back.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=79
	IPs []string `json:"ips"`
}

// NodeAddresses is a node and some addresses, as single addresses and ranges
// ("10.0.0.64-10.0.0.70").
type NodeAddresses struct {
	// Node is the node's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node"`

	// IPs are the addresses.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=79
	IPs []string `json:"ips"`
}

// IPBlockList is a list of IPBlocks.
//
// +kubebuilder:object:root=true
type IPBlockList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPBlock `json:"items"`
}
