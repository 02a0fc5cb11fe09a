// Package ipam is orbweaver's allocation core: pure decisions over values, no I/O.
//
// A Pool is one SpiderIPPool's allocation state, decoded from its spec and its compact
// records (see package records). Allocate, Release and Rebind return a new Pool and
// never change the receiver, so a caller can compute a batch of changes against one
// observed version of the pool, write it with a compare-and-swap on the pool's
// resourceVersion, and on a conflict recompute from the fresh version. The node agent
// and the controller wrap these functions with the API writes.
package ipam
