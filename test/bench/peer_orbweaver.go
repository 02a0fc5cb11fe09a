package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent"
)

// orbweaver is this repository's IPAM: one real node agent per simulated node, running in
// this process against the shared API server, each serving its own unix socket, and the
// real `orbweaver` CNI plugin (bin/orbweaver, `make build`) exec'd per ADD and DEL.
type orbweaver struct {
	binary string

	client  client.Client
	dir     string            // the agents' sockets
	sockets map[string]string // node -> agent socket
	pools   []Pool
	stop    context.CancelFunc
	done    chan error
	running int
}

func newOrbweaverPeer(p PeerParams) (Peer, error) {
	o := &orbweaver{binary: filepath.Join(p.BinDir, "orbweaver")}
	if err := requireExecutable("orbweaver", o.binary, "make build"); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *orbweaver) Name() string   { return "orbweaver" }
func (o *orbweaver) Binary() string { return o.binary }

// Setup creates a SpiderIPPool per scenario pool and, on first use, starts the agents.
func (o *orbweaver) Setup(ctx context.Context, h *Harness, sc Scenario) error {
	o.client = h.Env.Client
	o.pools = sc.Pools
	if !sc.Reused {
		for _, p := range sc.Pools {
			sp := &v2beta1.SpiderIPPool{
				ObjectMeta: metav1.ObjectMeta{Name: p.Name},
				Spec: v2beta1.IPPoolSpec{
					Subnet: v2beta1.CIDR(p.Prefix.Masked().String()),
					IPs:    []v2beta1.IPOrRange{v2beta1.IPOrRange(p.Range())},
				},
			}
			if err := o.client.Create(ctx, sp); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("orbweaver peer: create SpiderIPPool %s: %w", p.Name, err)
			}
		}
	}
	if o.sockets != nil {
		return o.waitPools(ctx, h)
	}
	// unix socket paths are limited to 108 bytes; h.Dir may be deep.
	dir, err := os.MkdirTemp("", "ow-bench")
	if err != nil {
		return fmt.Errorf("orbweaver peer: %w", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	o.dir, o.stop, o.done, o.sockets = dir, stop, make(chan error, len(sc.Nodes)), map[string]string{}
	ready := make(chan string, len(sc.Nodes))
	for i, node := range sc.Nodes {
		socket := filepath.Join(dir, fmt.Sprintf("%d.sock", i))
		o.sockets[node] = socket
		cfg := agent.Config{
			NodeName: node, RESTConfig: h.Env.Config, SocketPath: socket, Log: logr.Discard(),
			Ready: func() { ready <- node },
		}
		o.running++
		go func() { o.done <- agent.Run(runCtx, cfg) }()
	}
	deadline := time.After(2 * time.Minute)
	for range sc.Nodes {
		select {
		case <-ready:
		case err := <-o.done:
			o.running--
			return fmt.Errorf("orbweaver peer: an agent stopped before it was ready: %w", err)
		case <-deadline:
			return errors.New("orbweaver peer: agents not ready within 2 minutes")
		}
	}
	return o.waitPools(ctx, h)
}

// waitPools waits until the scenario's pools exist, then gives the agents' watches a
// moment to deliver them: an agent chooses pools from its cache, and timing must not
// start while a pool created a moment ago is still on its way.
func (o *orbweaver) waitPools(ctx context.Context, h *Harness) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		var list v2beta1.SpiderIPPoolList
		if err := o.client.List(ctx, &list); err != nil {
			return fmt.Errorf("orbweaver peer: list pools: %w", err)
		}
		have := map[string]bool{}
		for _, p := range list.Items {
			have[p.Name] = true
		}
		missing := 0
		for _, p := range o.pools {
			if !have[p.Name] {
				missing++
			}
		}
		if missing == 0 {
			// The agents' watches lag the API server by milliseconds here; give them a
			// moment rather than probing each one.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("orbweaver peer: %d pools missing: %w", missing, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// NetConf names the node's agent socket and the pool as the CNI default pool.
func (o *orbweaver) NetConf(node string, pool int) []byte {
	conf, _ := json.Marshal(map[string]any{
		"cniVersion": "1.0.0",
		"name":       "bench",
		"type":       "orbweaver",
		"ipam": map[string]any{
			"type":                  "orbweaver",
			"ipam_unix_socket_path": o.sockets[node],
			"default_ipv4_ippool":   []string{o.pools[pool].Name},
			"log_file_path":         "-",
		},
	})
	return conf
}

// Teardown stops the agents and deletes the pools and endpoints it made.
func (o *orbweaver) Teardown(ctx context.Context) error {
	var errs []error
	if o.stop != nil {
		o.stop()
		for ; o.running > 0; o.running-- {
			if err := <-o.done; err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, os.RemoveAll(o.dir))
	}
	if o.client != nil {
		errs = append(errs, o.client.DeleteAllOf(ctx, &v2beta1.SpiderIPPool{}))
		var eps v2beta1.SpiderEndpointList
		if err := o.client.List(ctx, &eps); err != nil {
			errs = append(errs, err)
		}
		for i := range eps.Items {
			if err := o.client.Delete(ctx, &eps.Items[i]); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
