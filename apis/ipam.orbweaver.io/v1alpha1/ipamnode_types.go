package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPAMNode is what one node's agent asks of the pools, named after the node and owned by
// its Node. Only that agent writes it; the controller grants from it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=ipn,categories=orbweaver
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="PROTOCOL",type=integer,JSONPath=`.status.protocol`
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`
type IPAMNode struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPAMNodeSpec `json:"spec,omitempty"`
	// +optional
	Status IPAMNodeStatus `json:"status,omitempty"`
}

// IPAMNodeSpec is the node's demand, per pool.
type IPAMNodeSpec struct {
	// Pools lists the pools the node uses or is about to use.
	// +optional
	// +listType=map
	// +listMapKey=pool
	// +kubebuilder:validation:MaxItems=4096
	Pools []PoolDemand `json:"pools,omitempty"`
}

// PoolDemand is what a node asks of one pool.
type PoolDemand struct {
	// Pool is the SpiderIPPool's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Pool string `json:"pool"`

	// Need counts the addresses the node's pods hold, are being given or wait for. The
	// agent writes a higher need only when its grants do not cover it (the controller
	// asks back only addresses no endpoint holds), a lower one within a second.
	// +required
	// +kubebuilder:validation:Minimum=0
	Need int32 `json:"need"`

	// Want is Need plus the buffer the node would like to hold, so that its next pods
	// do not wait for a grant. Buffers come only from addresses no node needs. The agent
	// writes a higher want when pods bound to the node will ask for more than it holds.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Want int32 `json:"want,omitempty"`

	// IPs are specific addresses a pod of the node waits for and the node is not
	// granted yet (a StatefulSet pod rescheduled here keeps its address); Need does not
	// count them. The controller grants a free one, asks its node to give back a
	// granted one (the node does once its own pod holding it is gone), and moves one of
	// a deleted node.
	// +optional
	// +kubebuilder:validation:MaxItems=1024
	// +kubebuilder:validation:items:MaxLength=39
	IPs []string `json:"ips,omitempty"`

	// GiveBack answers the controller's requests (an IPBlock's spec.reclaim) by token:
	// the addresses the node gives back, which it hands out no more, and those it keeps
	// because a pod of its own holds them.
	// +optional
	// +listType=map
	// +listMapKey=token
	// +kubebuilder:validation:MaxItems=256
	GiveBack []GiveBack `json:"giveBack,omitempty"`
}

// GiveBack is a node's answer to one reclaim request.
type GiveBack struct {
	// Token is the request's (IPBlock spec.reclaim[].token).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	Token string `json:"token"`

	// IPs are the addresses given back.
	// +optional
	// +kubebuilder:validation:MaxItems=1024
	// +kubebuilder:validation:items:MaxLength=39
	IPs []string `json:"ips,omitempty"`

	// Kept are the addresses asked for that a pod of the node holds.
	// +optional
	// +kubebuilder:validation:MaxItems=1024
	// +kubebuilder:validation:items:MaxLength=39
	Kept []string `json:"kept,omitempty"`
}

// IPAMNodeStatus is the agent's own state.
type IPAMNodeStatus struct {
	// Protocol is the allocation protocol the node's agent speaks: 2 for node grants.
	// An old agent (records in the pool, protocol 1) writes no IPAMNode.
	// +optional
	Protocol int32 `json:"protocol,omitempty"`

	// CleanStop is set when the agent stopped after giving back or handing over
	// everything, and cleared when it starts serving. An agent that starts and finds it
	// cleared waits out the quarantine before it hands out an address.
	// +optional
	CleanStop bool `json:"cleanStop,omitempty"`
}

// IPAMNodeList is a list of IPAMNodes.
//
// +kubebuilder:object:root=true
type IPAMNodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAMNode `json:"items"`
}
