// Command kubectl-orbweaver is orbweaver's kubectl plugin (`kubectl orbweaver ...` once
// it is on the PATH); docs/reference/kubectl-orbweaver.md. Its commands:
//
//	ipam show [--pool NAME]... [-o table|wide|json|yaml]
//
// adds up every pool: addresses pods use, nodes hold spare, SpiderPool's records not
// imported yet, free; with -o wide per node.
//
//	ipam show --ip ADDRESS [--pool NAME]... [-o table|json|yaml]
//
// says who holds an address in every pool whose subnet has it: the pod (its node,
// interface, sandbox, since when, EIP), a node's spare, SpiderPool's record not imported
// yet, free or excluded, with what is odd (two holders, a record without endpoint).
//
//	ipam check [--pool NAME]... [-o table|json|yaml]
//
// cross-checks records, SpiderEndpoints, grants and pods and lists what is wrong, with
// what to do; exit code 1 when anything is.
//
//	ipam release --ip ADDRESS [--pool NAME] [--force] [--dry-run] [-o table|json|yaml]
//
// frees an address whose pod is gone, by a compare-and-swap of the objects that hold it
// (the pool's records, the pod's SpiderEndpoint), as DEL and GC do.
//
//	pool why POD [-n NAMESPACE] [--interface NAME]... [--default-ipv4-ippool A,B]
//	    [--default-ipv6-ippool A,B] [--enable-ipv4=BOOL] [--enable-ipv6=BOOL]
//	    [--multus-cluster-network NS/NAME] [-o table|json|yaml]
//
// says which pools were candidates for each interface of a pod and why each was taken or
// refused, by the agent's own selection code (pkg/ipam.ExplainSelection); what only the
// node knows (the CNI config's default pools, the agent's flags) comes from flags.
//
//	spiderpool export [--write] [--pool NAME]... [-o table|json]
//
// writes orbweaver's allocations back in SpiderPool's format (status.allocatedIPs), for
// a return to SpiderPool with every pod keeping its address; without --write it prints
// what it would write, which is also the view of status.allocatedIPs that tools written
// for SpiderPool expect (docs/guides/migrate-from-spiderpool.md).
//
// The logic is in pkg/inspect and pkg/migrate; this file parses flags and prints.
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
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/inspect"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/migrate"
	"github.com/orbweaver-ipam/orbweaver/pkg/version"
)

const usage = `kubectl orbweaver: look inside and move orbweaver's IP allocations.

Commands:
  ipam show [--pool NAME]... [-o table|wide|json|yaml] [--kubeconfig FILE]
      One row per pool: addresses pods use, nodes hold spare, SpiderPool's records
      not imported yet, free; -o wide adds each node's used/spare.
  ipam show --ip ADDRESS [--pool NAME]... [-o table|json|yaml] [--kubeconfig FILE]
      Who holds the address, in every pool whose subnet has it: the pod (node,
      interface, sandbox, since when, EIP), a node's spare, SpiderPool's record not
      imported yet, free, or excluded; and what is odd about it.
  ipam check [--pool NAME]... [-o table|json|yaml] [--kubeconfig FILE]
      What is wrong: two holders of one address, addresses of pods that are gone,
      endpoints no pool backs, addresses held outside the pool or granted to another
      node; and what to do. Exit code 0 when nothing is, 1 when something is.
  ipam release --ip ADDRESS [--pool NAME] [--force] [--dry-run] [-o table|json|yaml] [--kubeconfig FILE]
      Free an address whose pod is gone: remove the pool's record and the
      SpiderEndpoint's entry of it, each by a compare-and-swap. Refuses a pod that
      still exists unless --force.
  pool why POD [-n NAMESPACE] [--interface NAME]... [-o table|json|yaml] [--kubeconfig FILE]
           [--default-ipv4-ippool A,B] [--default-ipv6-ippool A,B]
           [--enable-ipv4=BOOL] [--enable-ipv6=BOOL] [--multus-cluster-network NS/NAME]
      Which pools were candidates for each interface of the pod, and why each was
      taken, passed over (full, not Ready) or refused (affinity, family, disabled,
      terminating), decided by the agent's own selection code. The CNI config's
      default pools and the agent's flags are not in the cluster: give them with the
      flags of the same names, or the answer says what it assumed.
  spiderpool export [--write] [--pool NAME]... [-o table|json] [--kubeconfig FILE]
      Write every pool's allocations back in SpiderPool's format (status.allocatedIPs,
      from the pods' SpiderEndpoints), for a return to SpiderPool with no pod changing
      its address. Stop orbweaver first (its controller would import them again).
      Without --write, print what would be written.

  version
      Which build this is (the release's version and commit).

Exit codes of the ipam and pool commands: 0 done (check: nothing wrong); 1 the answer
is no (show --ip: in no pool; check: problems found; release: refused; pool why: an
interface gets no address); 2 an error (bad flags or address, unknown pool or pod, no
access to the cluster).
`

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout)
	code := exitCode(err)
	switch {
	case err == nil:
	case code == 1:
		fmt.Fprintln(os.Stderr, err)
	default:
		fmt.Fprintln(os.Stderr, "error:", err)
	}
	os.Exit(code)
}

// exitError is an error with the exit code it means.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode gives err an exit code (nil stays nil).
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code, err}
}

// exitCode is the process's exit code for run's error: 0 for none, the code an
// exitError carries, else 1.
func exitCode(err error) int {
	var e *exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &e):
		return e.code
	}
	return 1
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	switch {
	case len(args) >= 2 && args[0] == "spiderpool" && args[1] == "export":
		return export(ctx, args[2:], stdout)
	case len(args) >= 2 && args[0] == "ipam" && args[1] == "show":
		return show(ctx, args[2:], stdout)
	case len(args) >= 2 && args[0] == "ipam" && args[1] == "check":
		return check(ctx, args[2:], stdout)
	case len(args) >= 2 && args[0] == "ipam" && args[1] == "release":
		return release(ctx, args[2:], stdout)
	case len(args) >= 2 && args[0] == "pool" && args[1] == "why":
		return poolWhy(ctx, args[2:], stdout)
	case len(args) == 1 && (args[0] == "version" || args[0] == "--version"):
		_, err := fmt.Fprintln(stdout, version.String("kubectl-orbweaver"))
		return err
	}
	fmt.Fprint(os.Stderr, usage)
	return withCode(2, errors.New("unknown command: "+strings.Join(args, " ")))
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

// ipamFlags are the flags every ipam command has.
type ipamFlags struct {
	fs         *flag.FlagSet
	output     *string
	kubeconfig *string
	formats    []string
}

func newIPAMFlags(name string, formats ...string) *ipamFlags {
	f := &ipamFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError), formats: formats}
	f.output = f.fs.String("o", "table", "output format: "+strings.Join(formats, ", "))
	f.kubeconfig = f.fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config or in-cluster)")
	return f
}

// parse parses args; errors are usage errors (exit code 2).
func (f *ipamFlags) parse(args []string) error {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return withCode(2, err)
	}
	if f.fs.NArg() > 0 {
		return withCode(2, fmt.Errorf("%s: unexpected argument %q", f.fs.Name(), f.fs.Arg(0)))
	}
	if !slices.Contains(f.formats, *f.output) {
		return withCode(2, fmt.Errorf("-o %s: want %s", *f.output, strings.Join(f.formats, ", ")))
	}
	return nil
}

// snapshot reads what pkg/inspect answers from (exit code 2 when it cannot).
func (f *ipamFlags) snapshot(ctx context.Context) (client.Client, inspect.Snapshot, error) {
	c, err := newClient(*f.kubeconfig)
	if err != nil {
		return nil, inspect.Snapshot{}, withCode(2, err)
	}
	snap, err := inspect.Read(ctx, c)
	return c, snap, withCode(2, err)
}

// encode prints v as JSON or YAML, per -o; false for a table.
func (f *ipamFlags) encode(w io.Writer, v any) (bool, error) {
	switch *f.output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return true, enc.Encode(v)
	case "yaml":
		data, err := yaml.Marshal(v)
		if err == nil {
			_, err = w.Write(data)
		}
		return true, err
	}
	return false, nil
}

func parseIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, withCode(2, fmt.Errorf("--ip %q: not an IP address", s))
	}
	return a, nil
}

// show is `ipam show`: every pool's counts, or with --ip who holds an address.
func show(ctx context.Context, args []string, stdout io.Writer) error {
	f := newIPAMFlags("ipam show", "table", "wide", "json", "yaml")
	addr := f.fs.String("ip", "", "the address (default: every pool's counts)")
	var pools multi
	f.fs.Var(&pools, "pool", "a pool (repeatable; default: every pool)")
	if err := f.parse(args); err != nil {
		return err
	}
	var a netip.Addr
	if *addr != "" {
		var err error
		if a, err = parseIP(*addr); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_, snap, err := f.snapshot(ctx)
	if err != nil {
		return err
	}
	if a.IsValid() {
		return showIP(f, a, pools, snap, stdout)
	}
	sums, err := inspect.Summarize(snap, pools)
	if err != nil {
		return withCode(2, err)
	}
	if sums == nil {
		sums = []inspect.PoolSummary{}
	}
	if done, err := f.encode(stdout, sums); done {
		return withCode(2, err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	head := "POOL\tMODE\tSUBNET\tTOTAL\tUSED\tSPARE\tSPIDERPOOL\tFREE"
	if *f.output == "wide" {
		head += "\tNODES (USED/SPARE)"
	}
	fmt.Fprintln(tw, head)
	var notes []string
	for _, s := range sums {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d", s.Pool, s.Mode, s.Subnet, s.Total, s.Used, s.Spare, s.SpiderPool, s.Free)
		if *f.output == "wide" {
			var per []string
			for _, n := range s.Nodes {
				name := n.Node
				if name == "" {
					name = "?"
				}
				per = append(per, fmt.Sprintf("%s: %d/%d", name, n.Used, n.Spare))
			}
			fmt.Fprintf(tw, "\t%s", dash(strings.Join(per, ", ")))
		}
		fmt.Fprintln(tw)
		for _, n := range s.Notes {
			notes = append(notes, s.Pool+": "+n)
		}
	}
	if err := tw.Flush(); err != nil {
		return withCode(2, err)
	}
	if len(notes) > 0 {
		fmt.Fprintln(stdout, "\nNotes:\n  "+strings.Join(notes, "\n  "))
	}
	return nil
}

// showIP is `ipam show --ip ADDRESS`.
func showIP(f *ipamFlags, a netip.Addr, pools []string, snap inspect.Snapshot, stdout io.Writer) error {
	all := inspect.WhoHolds(a, snap)
	var hs []inspect.Holding
	for _, h := range all {
		if len(pools) == 0 || slices.Contains(pools, h.Pool) {
			hs = append(hs, h)
		}
	}
	// An unknown pool is an error, not an empty answer.
	for _, name := range pools {
		if !slices.ContainsFunc(snap.Pools, func(sp v2beta1.SpiderIPPool) bool { return sp.Name == name }) &&
			!slices.ContainsFunc(hs, func(h inspect.Holding) bool { return h.Pool == name }) {
			return withCode(2, fmt.Errorf("SpiderIPPool %q: %w", name, ipam.ErrPoolNotFound))
		}
	}
	if hs == nil {
		hs = []inspect.Holding{}
	}
	if done, err := f.encode(stdout, hs); done && err != nil {
		return withCode(2, err)
	} else if !done {
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
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Pool, dash(h.Mode), h.State, pod, dash(h.Node), dash(h.Interface),
				dash(shortID(h.ContainerID)), since, eip, strings.Join(h.Notes, "; "))
		}
		if err := tw.Flush(); err != nil {
			return withCode(2, err)
		}
	}
	if len(hs) == 0 {
		return withCode(1, fmt.Errorf("%s is in no pool's spec.ips, and no pool holds it", a))
	}
	return nil
}

// check is `ipam check`.
func check(ctx context.Context, args []string, stdout io.Writer) error {
	f := newIPAMFlags("ipam check", "table", "json", "yaml")
	var pools multi
	f.fs.Var(&pools, "pool", "a pool to check (repeatable; default: every pool)")
	if err := f.parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_, snap, err := f.snapshot(ctx)
	if err != nil {
		return err
	}
	ps, err := inspect.Check(snap, pools)
	if err != nil {
		return withCode(2, err)
	}
	if ps == nil {
		ps = []inspect.Problem{}
	}
	if done, err := f.encode(stdout, ps); done && err != nil {
		return withCode(2, err)
	} else if !done && len(ps) == 0 {
		fmt.Fprintln(stdout, "No problems found.")
	} else if !done {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tPOOL\tADDRESS\tHOLDERS\tWHAT TO DO")
		for _, p := range ps {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Kind, p.Pool, dash(p.Address), dash(strings.Join(p.Holders, "; ")), p.Fix)
		}
		if err := tw.Flush(); err != nil {
			return withCode(2, err)
		}
	}
	if len(ps) > 0 {
		return withCode(1, fmt.Errorf("%d problems found", len(ps)))
	}
	return nil
}

// release is `ipam release --ip ADDRESS`.
func release(ctx context.Context, args []string, stdout io.Writer) error {
	f := newIPAMFlags("ipam release", "table", "json", "yaml")
	addr := f.fs.String("ip", "", "the address (required)")
	pool := f.fs.String("pool", "", "the pool (default: the one where pods hold the address)")
	force := f.fs.Bool("force", false, "release it even from a pod that exists, or that a StatefulSet keeps it for")
	dryRun := f.fs.Bool("dry-run", false, "print what would be released; write nothing")
	if err := f.parse(args); err != nil {
		return err
	}
	if *addr == "" {
		return withCode(2, errors.New("ipam release: --ip is required"))
	}
	a, err := parseIP(*addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := newClient(*f.kubeconfig)
	if err != nil {
		return withCode(2, err)
	}
	res, err := inspect.Release(ctx, c, inspect.ReleaseOptions{Addr: a, Pool: *pool, Force: *force, DryRun: *dryRun})
	code := 2
	if errors.Is(err, inspect.ErrRefused) {
		code = 1
	}
	if err != nil && res.Pool == "" && len(res.Kept) == 0 {
		return withCode(code, err) // nothing to print: bad input, no access
	}
	if done, e := f.encode(stdout, res); done {
		if e != nil && err == nil {
			err = e
		}
		return withCode(code, err)
	}
	if len(res.Released) > 0 {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "POOL\tADDRESS\tOBJECT\tHOLDER\tACTION")
		for _, r := range res.Released {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", res.Pool, res.Address, r.Object, r.Holder, r.Action)
		}
		if e := tw.Flush(); e != nil && err == nil {
			err = e
		}
	} else if err == nil {
		state := "nothing holds it"
		if res.State != "" {
			state += " (" + res.State + ")"
		}
		where := ""
		if res.Pool != "" {
			where = " in pool " + res.Pool
		}
		fmt.Fprintf(stdout, "%s%s: %s; nothing released.\n", res.Address, where, state)
	}
	if len(res.Kept) > 0 && err == nil {
		fmt.Fprintln(stdout, "\nKept:")
		for _, k := range res.Kept {
			fmt.Fprintf(stdout, "  %s: %s\n", k.Holder, k.Why)
		}
	}
	for _, p := range res.Forced {
		fmt.Fprintf(stdout, "\nWarning: --force: %s still uses the address; delete that pod before another pod gets it.\n", p)
	}
	if res.DryRun && err == nil {
		fmt.Fprintln(stdout, "\nNothing written (--dry-run).")
	}
	return withCode(code, err)
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
