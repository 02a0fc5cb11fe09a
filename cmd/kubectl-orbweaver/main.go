// Command kubectl-orbweaver is orbweaver's kubectl plugin (`kubectl orbweaver ...` once
// it is on the PATH); docs/reference/kubectl-orbweaver.md. Its commands:
//
//	ipam show --ip ADDRESS [-o table|json]
//
// says who holds an address in every pool whose subnet has it: the pod (its node,
// interface, sandbox, since when, EIP), a node's spare, SpiderPool's record not imported
// yet, free or excluded, with what is odd (two holders, a record without endpoint).
//
//	spiderpool export [--write] [--pool NAME]... [-o table|json]
//
// writes orbweaver's allocations back in SpiderPool's format (status.allocatedIPs), for
// a return to SpiderPool with every pod keeping its address; without --write it prints
// what it would write, which is also the view of status.allocatedIPs that tools written
// for SpiderPool expect (docs/guides/migrate-from-spiderpool.md).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/inspect"
	"github.com/orbweaver-ipam/orbweaver/pkg/migrate"
)

const usage = `kubectl orbweaver: look inside and move orbweaver's IP allocations.

Commands:
  ipam show --ip ADDRESS [-o table|json] [--kubeconfig FILE]
      Who holds the address, in every pool whose subnet has it: the pod (node,
      interface, sandbox, since when, EIP), a node's spare, SpiderPool's record not
      imported yet, free, or excluded; and what is odd about it.
  spiderpool export [--write] [--pool NAME]... [-o table|json] [--kubeconfig FILE]
      Write every pool's allocations back in SpiderPool's format (status.allocatedIPs,
      from the pods' SpiderEndpoints), for a return to SpiderPool with no pod changing
      its address. Stop orbweaver first (its controller would import them again).
      Without --write, print what would be written.
`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	switch {
	case len(args) >= 2 && args[0] == "spiderpool" && args[1] == "export":
		return export(ctx, args[2:], stdout)
	case len(args) >= 2 && args[0] == "ipam" && args[1] == "show":
		return show(ctx, args[2:], stdout)
	}
	fmt.Fprint(os.Stderr, usage)
	return errors.New("unknown command: " + strings.Join(args, " "))
}

// newClient reads the kubeconfig (--kubeconfig, else the usual places).
func newClient(kubeconfig string) (client.Client, error) {
	if kubeconfig != "" {
		os.Setenv("KUBECONFIG", kubeconfig)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v2beta1.AddToScheme, ipamv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// show is `ipam show --ip ADDRESS`.
func show(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ipam show", flag.ContinueOnError)
	addr := fs.String("ip", "", "the address (required)")
	output := fs.String("o", "table", "output format: table or json")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config or in-cluster)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := netip.ParseAddr(*addr)
	if err != nil {
		return fmt.Errorf("--ip %q: not an IP address", *addr)
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("-o %s: want table or json", *output)
	}
	c, err := newClient(*kubeconfig)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	snap, err := inspect.Read(ctx, c)
	if err != nil {
		return err
	}
	hs := inspect.WhoHolds(a, snap)
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if hs == nil {
			hs = []inspect.Holding{}
		}
		if err := enc.Encode(hs); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "POOL\tMODE\tSTATE\tPOD\tNODE\tINTERFACE\tCONTAINER\tSINCE\tEIP\tNOTES")
		for _, h := range hs {
			pod, since, eip := "-", "-", "-"
			if h.Pod != "" {
				pod = h.Namespace + "/" + h.Pod
			}
			if h.Since != nil {
				since = h.Since.UTC().Format(time.RFC3339)
			}
			if h.EIP != "" {
				eip = h.EIP + " (" + h.EIPPhase + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Pool, h.Mode, h.State, pod, dash(h.Node), dash(h.Interface),
				dash(shortID(h.ContainerID)), since, eip, strings.Join(h.Notes, "; "))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(hs) == 0 {
		return fmt.Errorf("%s is in no pool's spec.ips, and no pool holds it", a)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortID(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// export is `spiderpool export`.
func export(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("spiderpool export", flag.ContinueOnError)
	write := fs.Bool("write", false, "write the pools' status (default: print what would be written)")
	output := fs.String("o", "table", "output format: table or json")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config or in-cluster)")
	var pools multi
	fs.Var(&pools, "pool", "a pool to export (repeatable; default: every pool)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("-o %s: want table or json", *output)
	}
	c, err := newClient(*kubeconfig)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	res, err := migrate.Export(ctx, c, migrate.ExportOptions{Pools: pools, Write: *write})
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if e := enc.Encode(res); e != nil && err == nil {
			err = e
		}
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tADDRESSES\tUNEXPORTED\tWRITTEN\tIPBLOCKS DELETED\tNOTE")
	for _, pe := range res {
		note := pe.Skipped
		if len(pe.Unexported) > 0 {
			note = "held by no pod any more: " + strings.Join(pe.Unexported, ", ")
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%t\t%d\t%s\n", pe.Pool, pe.Addresses, len(pe.Unexported), pe.Written, pe.BlocksDeleted, note)
	}
	if e := tw.Flush(); e != nil && err == nil {
		err = e
	}
	if err == nil && !*write {
		fmt.Fprintln(stdout, "\nNothing written: add --write, with orbweaver stopped, to write it.")
	}
	return err
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }
