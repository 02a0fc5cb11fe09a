package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"time"
)

// Peer is one IPAM implementation under test. For each scenario the harness calls Setup,
// then execs Binary() once per CNI ADD or DEL with NetConf(node, pool) on stdin, the way a
// container runtime calls an IPAM plugin through libcni; after the peer's last scenario it
// calls Teardown.
type Peer interface {
	// Name is the name -peers selects the peer by.
	Name() string
	// Binary is the path of the CNI plugin the harness execs.
	Binary() string
	// Setup prepares the peer for a scenario (CRDs, pools, agents...). sc.Nodes are the
	// simulated node names (their Node objects exist); sc.Pools are the address ranges
	// that NetConf's pool argument indexes. Setup runs once per scenario, before timing
	// starts. When sc.Reused is set, the pools are the previous scenario's, still holding
	// that scenario's allocations, and must keep them.
	Setup(ctx context.Context, h *Harness, sc Scenario) error
	// NetConf returns the CNI network config (JSON bytes, a plain single-plugin config of
	// the IPAM type, cniVersion 1.0.0) the given node uses for the given pool index.
	NetConf(node string, pool int) []byte
	// Teardown stops and removes what Setup made. All peers of a run share one API
	// server, so a peer should leave it as it found it.
	Teardown(ctx context.Context) error
}

// Inspector is implemented by a peer that can tell what its own side measured during a
// scenario, such as its agents' view of ADD latency, to set beside the harness's view
// (which includes exec'ing the plugin). The harness calls Begin when timing starts and
// prints End's lines under the table.
type Inspector interface {
	Begin()
	End() []string
}

// Caller is implemented by a peer that is not a plugin to exec (the floor): the harness
// calls Call for each ADD and DEL instead, and an ADD returns the pod's address.
type Caller interface {
	Call(ctx context.Context, command string, pod *Pod) (netip.Addr, error)
}

// Recorder is implemented by a peer that can tell, from its own records in the API
// server, which of the given pods still hold an address: after their successful DELs,
// those are leaks.
type Recorder interface {
	StillRecorded(ctx context.Context, pods []*Pod) ([]*Pod, error)
}

// MemoryReporter is implemented by a peer with node agents: their memory per node now,
// and how it was measured.
type MemoryReporter interface {
	AgentMemory() (bytesPerNode float64, how string)
}

// NetNSer is implemented by a peer whose plugin enters the sandbox's network namespace
// (SpiderPool's announces the address there): NetNS is the one to pass as CNI_NETNS.
type NetNSer interface {
	NetNS() string
}

// Scaler is implemented by a peer that cannot run at every node count on this machine:
// Supports returns why not, or nil.
type Scaler interface {
	Supports(nodes int) error
}

// PeerParams is what a peer's constructor gets.
type PeerParams struct {
	// BinDir is the repository's bin/, where tools/ensure.sh links the tools.
	BinDir string
	// ReserveSize and RebindDelay, when not zero, set orbweaver's agent.Config fields of
	// the same names (to measure their effect).
	ReserveSize int
	RebindDelay time.Duration
	// EIP gives orbweaver's pools an EIP attribute and runs the EIP controller.
	EIP bool
	// Records keeps orbweaver's pools on the records protocol (no grant controller):
	// what orbweaver did before node grants, to measure beside it.
	Records bool
	// IPv6 turns on SpiderPool's IPv6 (its conf.yml's enableIPv6), which it needs to
	// allocate from IPv6 pools; the bench's pools are IPv4 and leave it off.
	IPv6 bool
}

// peerConstructors maps each name -peers accepts to the peer's constructor. Constructors
// run before any server starts and fail when the peer's binary is missing, naming the
// tools/ensure.sh command that builds it.
func peerConstructors() map[string]func(PeerParams) (Peer, error) {
	return map[string]func(PeerParams) (Peer, error){
		"orbweaver": newOrbweaverPeer,
		// orbweaver-records is orbweaver before node grants (docs/design/node-grants.md),
		// to measure the two protocols side by side.
		"orbweaver-records": func(p PeerParams) (Peer, error) {
			p.Records = true
			return newOrbweaverPeer(p)
		},
		"spiderpool":  newSpiderpoolPeer,
		"whereabouts": newWhereaboutsPeer,
		"floor":       newFloorPeer,
		// grants-proto is the quick measurement of docs/design/node-grants.md.
		"grants-proto": newGrantsPeer,
	}
}

// Scenario is what a peer must serve in one measured phase.
type Scenario struct {
	// Name is the scenario's flag name, e.g. "one-pool".
	Name string
	// Nodes are the simulated node names; every node's Node object exists.
	Nodes []string
	// Pools are the address ranges, indexed by NetConf's pool argument.
	Pools []Pool
	// Reused is set when Pools were set up by the previous scenario and still hold its
	// allocations (recreate reuses one-pool's full pool).
	Reused bool
}

// Pool is one address range: exactly Size addresses from First to Last inside Prefix.
type Pool struct {
	// Name is unique within a run; the same name means the same pool across scenarios.
	Name        string
	Prefix      netip.Prefix
	First, Last netip.Addr
	Size        int
}

// Contains reports whether a is in the pool's range.
func (p Pool) Contains(a netip.Addr) bool {
	return a.Is4() == p.First.Is4() && a.Compare(p.First) >= 0 && a.Compare(p.Last) <= 0
}

// Range is the pool as "first-last".
func (p Pool) Range() string { return p.First.String() + "-" + p.Last.String() }

// requireExecutable returns an error naming the ensure.sh command when path is not an
// executable file.
func requireExecutable(peer, path, ensure string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s peer: %s is missing: run `%s` first: %w", peer, path, ensure, err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s peer: %s is not an executable file: run `%s`", peer, path, ensure)
	}
	return nil
}
