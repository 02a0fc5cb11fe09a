package main

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/eipbinding"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
)

// startEIPController runs the EIP controller in this process until ctx ends, against an
// in-memory cloud that answers at once: what it costs allocation is its API-server load
// and its status writes on the agents' pools, not a cloud's latency.
func (o *orbweaver) startEIPController(ctx context.Context, h *Harness) error {
	mgr, err := ctrl.NewManager(h.ClientConfig(), ctrl.Options{
		Scheme: h.Env.Scheme, Logger: logr.Discard(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	})
	if err != nil {
		return fmt.Errorf("orbweaver peer: EIP controller: %w", err)
	}
	// The in-memory cloud models no ENIs: each node names its interface, as a cluster
	// whose pod IPs are not on ENIs would (docs/guides/eip.md).
	for _, node := range h.Nodes {
		n := &corev1.Node{}
		if err := h.Env.Client.Get(ctx, client.ObjectKey{Name: node}, n); err != nil {
			return fmt.Errorf("orbweaver peer: EIP controller: %w", err)
		}
		patch := client.MergeFrom(n.DeepCopy())
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		n.Annotations[v2beta1.AnnoNodeEIPInterface] = "eni-" + node
		if err := h.Env.Client.Patch(ctx, n, patch); err != nil {
			return fmt.Errorf("orbweaver peer: EIP controller: %w", err)
		}
	}
	cloud := eiptest.NewCloud()
	err = eipbinding.SetupWithManager(ctx, mgr, eipbinding.Params{
		Providers: map[string]eip.Provider{"aws": eip.Retrying(cloud, eip.DefaultBackoff)}, ClusterID: "bench",
		Direct: h.Env.Client, Recorder: mgr.GetEventRecorderFor("orbweaver-eip"), OrphanInterval: -1,
	})
	if err != nil {
		return fmt.Errorf("orbweaver peer: EIP controller: %w", err)
	}
	o.running++
	go func() { o.done <- mgr.Start(ctx) }()
	return nil
}

// eipLine says how many of the scenario's pool IPs held by pods had their EIP bound when
// timing ended, and after a further 10 s at most.
func (o *orbweaver) eipLine() string {
	count := func() (bound, held int) {
		var pools v2beta1.SpiderIPPoolList
		if err := o.client.List(context.Background(), &pools); err != nil {
			return 0, 0
		}
		for _, sp := range pools.Items {
			if sp.Status.AllocatedIPCount != nil {
				held += int(*sp.Status.AllocatedIPCount)
			}
			if sp.Status.Orbweaver != nil {
				for _, b := range sp.Status.Orbweaver.EIPs {
					if b.Phase == v2beta1.EIPBound {
						bound++
					}
				}
			}
		}
		return bound, held
	}
	atEnd, held := count()
	start := time.Now()
	later := atEnd
	for time.Since(start) < 10*time.Second && later < held {
		time.Sleep(250 * time.Millisecond)
		later, held = count()
	}
	return fmt.Sprintf("EIPs bound (in-memory cloud): %d when timing ended, %d after %.1fs more; %d addresses held (node reserves included)",
		atEnd, later, time.Since(start).Seconds(), held)
}
