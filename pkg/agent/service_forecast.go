package agent

import (
	"context"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/orbweaver-ipam/orbweaver/pkg/cni"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// confDirRefresh is how long the default pools read from the node's CNI config folder
// are trusted before the folder is read again.
const confDirRefresh = 30 * time.Second

// nodeDefaults are the default pools of the node's network config (default_ipv4_ippool,
// default_ipv6_ippool): what its pods that name no pool get. They come from the last
// ADD of eth0 that carried any and, before the first, from the node's CNI config
// folder, so that a node that has never allocated can ask for addresses before its
// first pod does.
type nodeDefaults struct {
	confDir string

	mu      sync.Mutex
	learned bool
	v4, v6  []string
	readAt  time.Time
	log     func(msg string, kv ...any)
}

// learn records the defaults an ADD of eth0 carried.
func (d *nodeDefaults) learn(ifName string, v4, v6 []string) {
	if ifName != "eth0" || (len(v4) == 0 && len(v6) == 0) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.learned && slices.Equal(d.v4, v4) && slices.Equal(d.v6, v6) {
		return
	}
	d.learned, d.v4, d.v6 = true, slices.Clone(v4), slices.Clone(v6)
}

// get returns the node's default pools.
func (d *nodeDefaults) get() (v4, v6 []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.learned && d.confDir != "" && time.Since(d.readAt) > confDirRefresh {
		d.readAt = time.Now()
		found, err := cni.DefaultsInConfDir(d.confDir)
		switch {
		case err != nil && d.log != nil:
			d.log("cannot read the node's CNI config folder: pods are forecast from their first ADD's config", "dir", d.confDir, "error", err.Error())
		case err == nil:
			d.v4, d.v6 = found.IPv4, found.IPv6
		}
	}
	return d.v4, d.v6
}

// forecast counts, by pool, the node's pods that have not asked for an address yet
// and will most likely ask that pool first: the pool the rules of ipam.SelectPools
// choose for their eth0, with the node's default pools as the CNI config's. Only
// pools in Grants mode count. A pod the rules cannot place yet (an auto pool not
// created, an unknown pool) counts nowhere.
func (s *Service) forecast(ctx context.Context) (map[string]int, error) {
	pods, err := s.cluster.PendingPods(ctx)
	if err != nil || len(pods) == 0 {
		return nil, err
	}
	node, err := s.cluster.Node(ctx)
	if err != nil {
		return nil, err
	}
	pools, err := s.cluster.Pools(ctx)
	if err != nil {
		return nil, err
	}
	v4, v6 := s.defaults.get()
	namespaces := map[string]*corev1.Namespace{}
	out := map[string]int{}
	for _, pod := range pods {
		ns, ok := namespaces[pod.Namespace]
		if !ok {
			if ns, err = s.cluster.Namespace(ctx, pod.Namespace); err != nil {
				ns = nil // counted nowhere; the ADD will say why
			}
			namespaces[pod.Namespace] = ns
		}
		if ns == nil {
			continue
		}
		sel, err := ipam.SelectPools(ipam.SelectionInput{
			Pod: pod, Namespace: ns, Node: node,
			TopController:  topControllerOf(pod),
			IfName:         "eth0",
			MultusNetwork:  ipam.MultusNetworkOf(pod, "eth0", s.multusClusterNetwork),
			CNIDefaultIPv4: v4, CNIDefaultIPv6: v6,
			Pools:      pools,
			EnableIPv4: s.enableIPv4, EnableIPv6: s.enableIPv6,
		})
		if err != nil {
			continue
		}
		for _, family := range [][]string{sel.IPv4, sel.IPv6} {
			if len(family) > 0 && s.writers.grantsMode(family[0]) {
				out[family[0]]++
			}
		}
	}
	return out, nil
}
