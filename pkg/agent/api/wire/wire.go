// Package wire is the CNI plugin's side of the agent API (../openapi.yaml): the same
// JSON bodies as the generated models, and a client for the agent's unix socket, on the
// standard library alone and without net/http.
//
// The plugin is exec'd once per CNI call, so what it imports is paid on every pod
// interface: the generated client and models bring the go-openapi runtime, validators,
// YAML and OpenTelemetry, whose start-up cost about 5 ms of CPU per exec (a quarter of the
// plugin's; docs/performance.md), and net/http brings TLS and x509, another 4 ms or so:
// the client speaks HTTP/1.0 by hand (client.go). The agent keeps the generated models and validates
// every body it receives against the spec. TestWireMatchesModels (package api) fails
// when a type here and its generated model differ in any field, type or JSON tag, so
// `make generate` after a spec change is followed by the same change here.
package wire

// Attachment is one interface of one container of a pod, as the CNI call names it.
type Attachment struct {
	ContainerID  *string `json:"containerID"`
	IfName       *string `json:"ifName"`
	NetNamespace string  `json:"netNamespace,omitempty"`
	NetworkName  string  `json:"networkName,omitempty"`
	PodName      *string `json:"podName"`
	PodNamespace *string `json:"podNamespace"`
	PodUID       string  `json:"podUID,omitempty"`
}

// AddArgs is the body of an ADD.
type AddArgs struct {
	Attachment        *Attachment `json:"attachment"`
	CleanGateway      bool        `json:"cleanGateway,omitempty"`
	DefaultIPv4IPPool []string    `json:"defaultIPv4IPPool"`
	DefaultIPv6IPPool []string    `json:"defaultIPv6IPPool"`
}

// AddResult is the agent's answer to an ADD.
type AddResult struct {
	Ips    []*IPConfig `json:"ips"`
	Routes []*Route    `json:"routes"`
}

// IPConfig is one address of an AddResult.
type IPConfig struct {
	Address *string `json:"address"`
	Gateway string  `json:"gateway,omitempty"`
	Nic     string  `json:"nic,omitempty"`
	Pool    *string `json:"pool"`
	Version *int64  `json:"version"`
}

// Route is one route of an AddResult.
type Route struct {
	Dst    *string `json:"dst"`
	Gw     string  `json:"gw,omitempty"`
	IfName string  `json:"ifName,omitempty"`
}

// CheckArgs is the body of a CHECK.
type CheckArgs struct {
	Attachment *Attachment `json:"attachment"`
	Ips        []string    `json:"ips"`
}

// GCArgs is the body of a GC.
type GCArgs struct {
	NetworkName      *string         `json:"networkName"`
	ValidAttachments []*GCAttachment `json:"validAttachments"`
}

// GCAttachment is an attachment still in use, in a GC.
type GCAttachment struct {
	ContainerID *string `json:"containerID"`
	IfName      *string `json:"ifName"`
}

// GCResult is the agent's answer to a GC.
type GCResult struct {
	Released int64 `json:"released,omitempty"`
}

// Status is the agent's answer to STATUS.
type Status struct {
	Commit  string   `json:"commit,omitempty"`
	Ready   *bool    `json:"ready"`
	Reasons []string `json:"reasons"`
	Version string   `json:"version,omitempty"`
}

// Error is the body of every answer that is not a success.
type Error struct {
	Code    *int32  `json:"code"`
	Message *string `json:"message"`
	Reason  string  `json:"reason,omitempty"`
}
