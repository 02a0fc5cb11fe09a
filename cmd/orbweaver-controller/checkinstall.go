package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/orbweaver-ipam/orbweaver/pkg/installcheck"
)

// checkInstall is `orbweaver-controller check-install`, the chart's `helm test`: every
// agent ready, and the webhooks admitting a valid pool and refusing an invalid one (dry
// run). It prints what it found and fails with what is wrong.
func checkInstall(args []string) error {
	fs := flag.NewFlagSet("check-install", flag.ContinueOnError)
	p := installcheck.Params{}
	fs.StringVar(&p.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "namespace of the agents' DaemonSet (default $POD_NAMESPACE)")
	fs.StringVar(&p.DaemonSet, "agent-daemonset", "orbweaver-agent", "the agents' DaemonSet")
	fs.BoolVar(&p.EnableIPv4, "enable-ipv4", true, "the webhooks admit IPv4 pools (the probe pool is IPv4 when on)")
	fs.BoolVar(&p.EnableIPv6, "enable-ipv6", true, "the webhooks admit IPv6 pools")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long the check may take")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if p.Namespace == "" {
		return fmt.Errorf("no namespace: set --namespace or POD_NAMESPACE")
	}
	cfg, err := config.GetConfig()
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	p.Client = c
	res, err := installcheck.Run(ctx, p)
	if err != nil {
		return err
	}
	fmt.Printf("%d agents of DaemonSet %s/%s ready\n", res.Agents, p.Namespace, p.DaemonSet)
	fmt.Println("the webhooks admit a valid pool (dry run) and refuse an invalid one:", res.Refused)
	return nil
}
