// Package grants is the node-grant controller (docs/design/node-grants.md). For each
// SpiderIPPool it reads what the nodes ask for (IPAMNodes), the pool's IPBlocks and the
// addresses SpiderEndpoints hold, decides a round with ipam.PlanGrants, and writes each
// block the round changed once: a Create for a new block, an Update with the
// resourceVersion the round planned from otherwise, so two controllers (a leader and a
// deposed one) can never grant one address twice. Blocks that grant nothing any more
// are deleted the same way.
//
// The controller never takes an address from a node: it asks (spec.reclaim), and the
// node's agent gives back what no pod of its own holds.
package grants
