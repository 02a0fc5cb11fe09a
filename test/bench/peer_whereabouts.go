package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// whereaboutsNamespace is where whereabouts keeps its IPPools, reservations and its Lease:
// the namespace of the kubeconfig's context, and kube-system when (as with testenv's
// kubeconfig) the context names none.
const whereaboutsNamespace = "kube-system"

// whereabouts is github.com/k8snetworkplumbingwg/whereabouts v0.9.4, built by
// `tools/ensure.sh whereabouts`, run as a plain IPAM plugin: every ADD and DEL takes the
// cluster-wide Lease "whereabouts" by leader election, then patches the IPPool of its
// range and creates (or deletes) an OverlappingRangeIPReservation.
type whereabouts struct {
	binary, crds string

	client   client.Client
	dir      string   // whereabouts.conf lives here
	netConfs [][]byte // per pool index; whereabouts' config is the same on every node
	// installed is set once the CRDs are in the API server.
	installed bool
}

func newWhereaboutsPeer(p PeerParams) (Peer, error) {
	w := &whereabouts{
		binary: filepath.Join(p.BinDir, "whereabouts"),
		crds:   filepath.Join(p.BinDir, "whereabouts-crds"),
	}
	if err := requireExecutable("whereabouts", w.binary, "tools/ensure.sh whereabouts"); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(w.crds, "whereabouts.cni.cncf.io_ippools.yaml")); err != nil {
		return nil, fmt.Errorf("whereabouts peer: CRDs missing in %s: run `tools/ensure.sh whereabouts` first: %w", w.crds, err)
	}
	return w, nil
}

func (w *whereabouts) Name() string   { return "whereabouts" }
func (w *whereabouts) Binary() string { return w.binary }

// Setup installs the CRDs (once) and writes the flat whereabouts.conf that v0.9.4
// requires ("config file not found" without it, even with an inline kubeconfig).
func (w *whereabouts) Setup(ctx context.Context, h *Harness, sc Scenario) error {
	if !w.installed {
		if _, err := envtest.InstallCRDs(h.Env.Config, envtest.CRDInstallOptions{
			Paths: []string{w.crds}, ErrorIfPathMissing: true,
		}); err != nil {
			return fmt.Errorf("whereabouts peer: install CRDs from %s: %w", w.crds, err)
		}
		w.client = h.Env.Client
		w.dir = filepath.Join(h.Dir, "whereabouts")
		if err := os.MkdirAll(w.dir, 0o700); err != nil {
			return fmt.Errorf("whereabouts peer: %w", err)
		}
		flat, err := json.Marshal(map[string]any{
			"kubernetes": map[string]string{"kubeconfig": h.Kubeconfig},
			"log_level":  "error",
		})
		if err != nil {
			return err
		}
		if err := os.WriteFile(w.confPath(), flat, 0o600); err != nil {
			return fmt.Errorf("whereabouts peer: %w", err)
		}
		w.installed = true
	}
	w.netConfs = w.netConfs[:0]
	for _, pool := range sc.Pools {
		conf, err := w.netConf(pool, h.Kubeconfig)
		if err != nil {
			return fmt.Errorf("whereabouts peer: config for pool %s: %w", pool.Name, err)
		}
		w.netConfs = append(w.netConfs, conf)
	}
	return nil
}

func (w *whereabouts) confPath() string { return filepath.Join(w.dir, "whereabouts.conf") }

// whereaboutsIPAM is the ipam section of whereabouts' network config.
type whereaboutsIPAM struct {
	Type              string `json:"type"`
	Range             string `json:"range"`
	RangeStart        string `json:"range_start"`
	RangeEnd          string `json:"range_end"`
	LogLevel          string `json:"log_level"`
	ConfigurationPath string `json:"configuration_path"`
	Kubernetes        struct {
		Kubeconfig string `json:"kubeconfig"`
	} `json:"kubernetes"`
}

// netConf is a single-plugin config whose type is whereabouts itself, as libcni would
// hand it to the IPAM plugin: the range is the pool's subnet, narrowed by range_start and
// range_end to exactly the pool's addresses.
func (w *whereabouts) netConf(pool Pool, kubeconfig string) ([]byte, error) {
	ipam := whereaboutsIPAM{
		Type: "whereabouts", Range: pool.Prefix.String(),
		RangeStart: pool.First.String(), RangeEnd: pool.Last.String(),
		LogLevel: "error", ConfigurationPath: w.confPath(),
	}
	ipam.Kubernetes.Kubeconfig = kubeconfig
	return json.Marshal(struct {
		CNIVersion string          `json:"cniVersion"`
		Name       string          `json:"name"`
		Type       string          `json:"type"`
		IPAM       whereaboutsIPAM `json:"ipam"`
	}{"1.0.0", "bench", "whereabouts", ipam})
}

func (w *whereabouts) NetConf(_ string, pool int) []byte { return w.netConfs[pool] }

// Teardown deletes the IPPools, reservations and the Lease whereabouts created, so a
// later peer finds the API server as it was.
func (w *whereabouts) Teardown(ctx context.Context) error {
	if w.client == nil {
		return nil
	}
	var errs []error
	for _, kind := range []string{"IPPool", "OverlappingRangeIPReservation"} {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(schema.GroupVersionKind{Group: "whereabouts.cni.cncf.io", Version: "v1alpha1", Kind: kind})
		if err := w.client.DeleteAllOf(ctx, u, client.InNamespace(whereaboutsNamespace)); err != nil {
			errs = append(errs, fmt.Errorf("whereabouts peer: delete %ss: %w", kind, err))
		}
	}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: whereaboutsNamespace, Name: "whereabouts"}}
	if err := w.client.Delete(ctx, lease); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("whereabouts peer: delete Lease: %w", err))
	}
	return errors.Join(errs...)
}

// StillRecorded returns the pods an IPPool allocation or an OverlappingRangeIPReservation
// still names (by podref, namespace/name).
func (w *whereabouts) StillRecorded(ctx context.Context, pods []*Pod) ([]*Pod, error) {
	named := map[string]bool{}
	pools := &unstructured.UnstructuredList{}
	pools.SetGroupVersionKind(schema.GroupVersionKind{Group: "whereabouts.cni.cncf.io", Version: "v1alpha1", Kind: "IPPoolList"})
	if err := w.client.List(ctx, pools, client.InNamespace(whereaboutsNamespace)); err != nil {
		return nil, fmt.Errorf("list IPPools: %w", err)
	}
	for _, p := range pools.Items {
		allocs, _, _ := unstructured.NestedMap(p.Object, "spec", "allocations")
		for _, a := range allocs {
			if m, ok := a.(map[string]any); ok {
				if ref, ok := m["podref"].(string); ok {
					named[ref] = true
				}
			}
		}
	}
	res := &unstructured.UnstructuredList{}
	res.SetGroupVersionKind(schema.GroupVersionKind{Group: "whereabouts.cni.cncf.io", Version: "v1alpha1", Kind: "OverlappingRangeIPReservationList"})
	if err := w.client.List(ctx, res, client.InNamespace(whereaboutsNamespace)); err != nil {
		return nil, fmt.Errorf("list OverlappingRangeIPReservations: %w", err)
	}
	for _, r := range res.Items {
		if ref, ok, _ := unstructured.NestedString(r.Object, "spec", "podref"); ok {
			named[ref] = true
		}
	}
	var out []*Pod
	for _, p := range pods {
		if named[p.String()] {
			out = append(out, p)
		}
	}
	return out, nil
}

var _ Recorder = (*whereabouts)(nil)
