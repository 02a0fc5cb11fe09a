package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/orbweaver-ipam/orbweaver/pkg/inspect"
)

// whyFlags are the flags of `pool why`, parsed.
type whyFlags struct {
	*ipamFlags
	opts inspect.WhyOptions
	// namespaceGiven tells whether -n/--namespace was given; else the kubeconfig
	// context's namespace applies.
	namespaceGiven bool
}

// parseWhy parses `pool why` arguments: one pod name, and flags before or after it (as
// kubectl takes them).
func parseWhy(args []string) (*whyFlags, error) {
	f := &whyFlags{ipamFlags: newIPAMFlags("pool why", "table", "json", "yaml"),
		opts: inspect.WhyOptions{EnableIPv4: true, EnableIPv6: true}}
	fs := f.fs
	ns := func(v string) error { f.opts.Namespace, f.namespaceGiven = v, true; return nil }
	fs.Func("n", "the pod's namespace (default: the kubeconfig context's)", ns)
	fs.Func("namespace", "the pod's namespace (default: the kubeconfig context's)", ns)
	var ifaces multi
	fs.Var(&ifaces, "interface", "an interface of the pod (repeatable; default: eth0 and every interface its annotations or SpiderEndpoint name)")
	pools := func(into *[]string) func(string) error {
		return func(v string) error {
			f.opts.CNIDefaultsGiven = true
			*into = nil
			for _, name := range strings.Split(v, ",") {
				if name = strings.TrimSpace(name); name != "" {
					*into = append(*into, name)
				}
			}
			return nil
		}
	}
	fs.Func("default-ipv4-ippool", "the CNI config's default_ipv4_ippool on the pod's node, comma-separated (default: unknown, taken as empty)", pools(&f.opts.CNIDefaultIPv4))
	fs.Func("default-ipv6-ippool", "the CNI config's default_ipv6_ippool on the pod's node, comma-separated (default: unknown, taken as empty)", pools(&f.opts.CNIDefaultIPv6))
	fs.BoolVar(&f.opts.EnableIPv4, "enable-ipv4", true, "the agents serve IPv4 (their --enable-ipv4)")
	fs.BoolVar(&f.opts.EnableIPv6, "enable-ipv6", true, "the agents serve IPv6 (their --enable-ipv6)")
	fs.StringVar(&f.opts.MultusClusterNetwork, "multus-cluster-network", "", "the agents' --multus-cluster-network (ns/name), matched against spec.multusName for eth0")

	var pods []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, withCode(2, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pods = append(pods, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch {
	case len(pods) == 0:
		return nil, withCode(2, errors.New("pool why: name the pod: pool why POD [-n NAMESPACE]"))
	case len(pods) > 1:
		return nil, withCode(2, fmt.Errorf("pool why: one pod at a time, got %s", strings.Join(pods, ", ")))
	}
	f.opts.Pod = pods[0]
	f.opts.Interfaces = ifaces
	if !f.opts.EnableIPv4 && !f.opts.EnableIPv6 {
		return nil, withCode(2, errors.New("pool why: --enable-ipv4 and --enable-ipv6 are both false; the agents serve at least one"))
	}
	if err := f.parse(nil); err != nil { // checks -o
		return nil, err
	}
	return f, nil
}

// contextNamespace is the namespace of the kubeconfig's current context, "default"
// when it names none.
func contextNamespace(kubeconfig string) string {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	ns, _, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).Namespace()
	if err != nil || ns == "" {
		return "default"
	}
	return ns
}

// poolWhy is `pool why POD`.
func poolWhy(ctx context.Context, args []string, stdout io.Writer) error {
	f, err := parseWhy(args)
	if err != nil {
		return err
	}
	if !f.namespaceGiven {
		f.opts.Namespace = contextNamespace(*f.kubeconfig)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := newClient(*f.kubeconfig)
	if err != nil {
		return withCode(2, err)
	}
	why, err := inspect.Why(ctx, c, f.opts)
	if apierrors.IsNotFound(err) {
		return withCode(2, fmt.Errorf("pod %s/%s does not exist (-n names its namespace)", f.opts.Namespace, f.opts.Pod))
	}
	if err != nil {
		return withCode(2, err)
	}
	if done, err := f.encode(stdout, why); done && err != nil {
		return withCode(2, err)
	} else if !done {
		if err := printWhy(stdout, why); err != nil {
			return withCode(2, err)
		}
	}
	var none []string
	for _, w := range why.Interfaces {
		if !w.Taken() {
			none = append(none, w.Interface)
		}
	}
	if len(none) > 0 {
		return withCode(1, fmt.Errorf("pod %s/%s: no pool would give interface %s an address now", why.Namespace, why.Pod, strings.Join(none, ", ")))
	}
	return nil
}

// printWhy prints the table form: one section per interface, then the assumptions.
func printWhy(w io.Writer, why inspect.PodWhy) error {
	head := fmt.Sprintf("Pod %s/%s", why.Namespace, why.Pod)
	if why.Node != "" {
		head += " on node " + why.Node
	} else {
		head += " (not scheduled)"
	}
	if why.TopController != "" {
		head += ", controller " + why.TopController
	}
	fmt.Fprintln(w, head)
	for _, iw := range why.Interfaces {
		fmt.Fprintln(w)
		rule := iw.Rule
		if rule == "" {
			rule = "no pool (see the error)"
		}
		line := fmt.Sprintf("%s: pools named by %s", iw.Interface, rule)
		if iw.MultusNetwork != "" {
			line += "; Multus network " + iw.MultusNetwork
		}
		fmt.Fprintln(w, line)
		for _, h := range iw.Holds {
			fmt.Fprintf(w, "  holds %s\n", h)
		}
		if len(iw.Pools) > 0 {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  FAMILY\tPOOL\tVERDICT\tREADY\tWHY")
			for _, p := range iw.Pools {
				fmt.Fprintf(tw, "  IPv%d\t%s\t%s\t%s\t%s\n", p.Family, p.Pool, p.Verdict, dash(p.Ready), p.Reason)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		for _, n := range iw.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		if iw.Error != "" {
			fmt.Fprintf(w, "  error (the agent's ADD fails with it): %s\n", iw.Error)
		}
	}
	if len(why.Assumptions) > 0 {
		fmt.Fprintln(w, "\nAssumed (not in the cluster):")
		for _, a := range why.Assumptions {
			fmt.Fprintf(w, "  - %s\n", a)
		}
	}
	return nil
}
