package ipam

import "errors"

// Errors of pool selection (SelectPools and the annotation parsers). A caller classifies
// them with errors.Is; the wrapping message names the annotation, pool or interface
// involved and says what to change. None of them goes away by retrying at once.
var (
	// ErrBadAnnotation: a pod or namespace annotation of orbweaver (SpiderPool's
	// ipam.spidernet.io/...) cannot be read. The pod's or namespace's owner must fix the
	// annotation; the message names the key, the offending part and what to write instead.
	ErrBadAnnotation = errors.New("bad annotation")

	// ErrBadCNIConfig: the CNI network config's default_ipv4_ippool or
	// default_ipv6_ippool list is malformed (an empty or repeated name, a broken
	// wildcard). The cluster admin must fix the CNI network config.
	ErrBadCNIConfig = errors.New("bad CNI network config")

	// ErrUnknownPool: a selection rule names a pool that does not exist (or a wildcard
	// that matches no pool). The user must fix the name, or an admin create the pool;
	// the pod's sandbox is retried by the kubelet and succeeds once the pool exists.
	ErrUnknownPool = errors.New("unknown pool")

	// ErrPoolRefused: every candidate pool of an IP family refuses the pod (terminating,
	// disabled, wrong family, or a node, namespace, pod or Multus affinity that does not
	// match). The message lists each pool with its reason; an admin must change a pool
	// or the user the pod (its labels, namespace, node or network).
	ErrPoolRefused = errors.New("every candidate pool refuses the pod")

	// ErrNoPool: no selection rule names a pool for the interface, or the rule that
	// applies names pools only of IP families the cluster does not serve. The user must
	// name a pool, or an admin configure a default one.
	ErrNoPool = errors.New("no pool for the pod")

	// ErrAutoPoolNotReady: the pod asks for its application's auto-created pool
	// (ipam.spidernet.io/subnet or subnets) and the controller has not created it yet.
	// The agent waits on its pool watch for a while, then the runtime retries.
	ErrAutoPoolNotReady = errors.New("auto-created pool not ready")

	// ErrKeptIPNotServed: a StatefulSet pod keeps an address of a pool that does not
	// serve the node it was scheduled to (the pool's nodeName or nodeAffinity). The
	// agent refuses rather than give it another address silently; the user schedules
	// the pod on a node the pool serves, or deletes its SpiderEndpoint to let it take
	// a new address.
	ErrKeptIPNotServed = errors.New("the pod's kept address is of a pool that does not serve this node")

	// ErrOrdinalAddress: a pod that takes the address of its ordinal
	// (AnnoIPByOrdinal) cannot have it: the pool is too small for the ordinal, the
	// address is reserved, another pod holds it, or the pool is not served by node
	// grants. The agent refuses rather than give it another address; the runtime retries.
	ErrOrdinalAddress = errors.New("the address of the pod's ordinal is not available")
)
