package main

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/grants"
)

// startGrantController runs the node-grant controller in-process. The run's other
// Nodes (the run creates them all at once) run no agent in this scenario, of either protocol: they are registered as
// speaking node grants, which is what lets the controller switch the pools.
func (o *orbweaver) startGrantController(ctx context.Context, h *Harness, serving []string) error {
	mgr, err := ctrl.NewManager(h.ClientConfig(), ctrl.Options{
		Scheme: h.Env.Scheme, Logger: logr.Discard(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr(true)},
	})
	if err != nil {
		return fmt.Errorf("orbweaver peer: grant controller: %w", err)
	}
	o.controllerMetrics = prometheus.NewRegistry()
	if err := grants.SetupWithManager(ctx, mgr, grants.Params{Direct: h.Env.Client, Recorder: mgr.GetEventRecorderFor("orbweaver-grants"), Registerer: o.controllerMetrics}); err != nil {
		return fmt.Errorf("orbweaver peer: grant controller: %w", err)
	}
	var all corev1.NodeList
	if err := h.Env.Client.List(ctx, &all); err != nil {
		return fmt.Errorf("orbweaver peer: list Nodes: %w", err)
	}
	idle := map[string]bool{}
	for _, n := range all.Items {
		idle[n.Name] = true
	}
	for _, n := range serving {
		delete(idle, n)
	}
	for n := range idle {
		ipn := &ipamv1.IPAMNode{ObjectMeta: metav1.ObjectMeta{Name: n}}
		if err := h.Env.Client.Create(ctx, ipn); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("orbweaver peer: IPAMNode %s: %w", n, err)
		}
		ipn.Status.Protocol = 2
		if err := h.Env.Client.Status().Update(ctx, ipn); err != nil {
			return fmt.Errorf("orbweaver peer: IPAMNode %s: %w", n, err)
		}
	}
	o.running++
	go func() { o.done <- mgr.Start(ctx) }()
	return nil
}
