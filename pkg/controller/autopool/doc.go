// Package autopool makes SpiderPool's auto pools: a workload whose pod template carries
// ipam.spidernet.io/subnet (or subnets) gets its own SpiderIPPool per interface and IP
// family, cut from the named SpiderSubnet, sized by ipam.spidernet.io/ippool-ip-number
// (replicas + N, or a fixed N), growing and shrinking with the replicas, and deleted with
// the workload unless ipam.spidernet.io/ippool-reclaim is "false" (docs/guides/auto-pools.md,
// sections 4 to 7).
//
// One generic reconciler runs per workload kind (Deployment, ReplicaSet, StatefulSet,
// DaemonSet, Job, CronJob and configured third-party kinds). Names, labels, the size and
// how the agent finds a pool come from pkg/ipam (autopool.go); which addresses a pool
// takes or gives back is decided by ipam.ResizeAutoPool over a fresh read of every pool,
// one application at a time (a lock shared by the kinds), and written with the
// resourceVersion. docs/guides/auto-pools.md is the user's side.
package autopool
