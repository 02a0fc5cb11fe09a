// Package cni is the orbweaver CNI IPAM plugin: it parses the network config and
// CNI_ARGS, asks orbweaver-agent on this node over its unix socket, and answers the
// runtime with a CNI result or a CNI error code. Allocation itself happens in the
// agent; the plugin never talks to the Kubernetes API.
package cni

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/go-logr/logr"

	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/wire"
)

// Plugin runs the CNI commands. Its methods have the signature of skel.CNIFuncs.
type Plugin struct {
	// Stdout receives the CNI result and must be set; cmd/orbweaver passes
	// os.Stdout.
	Stdout io.Writer
	// Stderr, if set, is told when the log file cannot be opened, and when STATUS
	// finds the agent at another version than Version. Nothing else is written there.
	Stderr io.Writer
	// Version is this plugin's release version (cmd/orbweaver passes pkg/version's);
	// STATUS warns when the agent reports another one. Empty or "dev" never warns.
	Version string
	// Now is the clock for log rotation; nil means time.Now.
	Now func() time.Time
}

// invocation is one run of a command: the parsed config, its logger and the agent.
type invocation struct {
	args  *skel.CmdArgs
	cfg   *Config
	agent *agent
	log   logr.Logger
}

// run parses the config, opens the log and calls fn with a context that carries
// ipam.timeout as its deadline. Errors are *types.Error, logged before they are
// returned.
func (p Plugin) run(cmd string, args *skel.CmdArgs, fn func(context.Context, *invocation) error) error {
	cfg, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	log, closeLog, err := openLog(cfg.IPAM.Log, now())
	if err != nil && p.Stderr != nil {
		_, _ = fmt.Fprintf(p.Stderr, "orbweaver: cannot open log file %s, logging off: %v\n", cfg.IPAM.Log.FilePath, err)
	}
	defer closeLog()
	log = log.WithValues("cmd", cmd, "network", cfg.Name)
	if args.ContainerID != "" {
		log = log.WithValues("containerID", args.ContainerID, "ifName", args.IfName)
	}

	ctx, cancel := context.WithTimeout(context.Background(), cfg.IPAM.Timeout)
	defer cancel()
	start := time.Now()
	log.V(1).Info("start", "netns", args.Netns, "cniArgs", args.Args, "socket", cfg.IPAM.SocketPath)
	inv := &invocation{args: args, cfg: cfg, agent: newAgent(cfg.IPAM.SocketPath, cfg.IPAM.Timeout), log: log}
	if err := fn(ctx, inv); err != nil {
		code := uint(types.ErrInternal)
		if e := (*types.Error)(nil); errors.As(err, &e) {
			code = e.Code
		}
		log.Error(err, "failed", "code", code, "duration", time.Since(start).String())
		return err
	}
	log.V(1).Info("done", "duration", time.Since(start).String())
	return nil
}

// Add allocates the IPs of the interface (CNI ADD) and prints the result in the
// config's cniVersion.
func (p Plugin) Add(args *skel.CmdArgs) error {
	return p.run("ADD", args, func(ctx context.Context, inv *invocation) error {
		pod, err := ParseArgs(args.Args)
		if err != nil {
			return err
		}
		ans, err := inv.agent.add(ctx, &wire.AddArgs{
			Attachment:        attachment(inv, pod),
			DefaultIPv4IPPool: inv.cfg.IPAM.DefaultIPv4IPPool,
			DefaultIPv6IPPool: inv.cfg.IPAM.DefaultIPv6IPPool,
			CleanGateway:      inv.cfg.IPAM.CleanGateway,
		})
		if err != nil {
			return err
		}
		res, err := buildResult(args.IfName, ans, inv.cfg.IPAM.CleanGateway)
		if err != nil {
			// The runtime calls DEL after a failed ADD, which releases what the agent
			// allocated.
			return types.NewError(types.ErrInternal, "orbweaver-agent's answer to add is unusable: "+err.Error(), "")
		}
		inv.log.Info("allocated", "Pod", pod.Namespace+"/"+pod.Name, "ips", addrStrings(res))
		return printResult(p.Stdout, res, inv.cfg.CNIVersion)
	})
}

// Del releases the IPs of the interface (CNI DEL).
func (p Plugin) Del(args *skel.CmdArgs) error {
	return p.run("DEL", args, func(ctx context.Context, inv *invocation) error {
		pod, err := parseArgs(args.Args)
		if err != nil {
			return err
		}
		if pod.Namespace == "" || pod.Name == "" {
			// ADD fails without the pod args, so nothing was allocated for this
			// attachment; DEL succeeds as the spec asks for what is already gone.
			inv.log.Info("no Kubernetes pod args in CNI_ARGS, nothing to release", "cniArgs", args.Args)
			return nil
		}
		// An unreachable agent fails DEL with code 11 rather than succeeding: the
		// runtime retries DEL until it succeeds, so the IPs are released once the
		// agent is back instead of leaking.
		if err := inv.agent.del(ctx, attachment(inv, pod)); err != nil {
			return err
		}
		inv.log.Info("released", "Pod", pod.Namespace+"/"+pod.Name)
		return nil
	})
}

// Check asks the agent whether its record matches the addresses of the interface in
// prevResult (CNI CHECK).
func (p Plugin) Check(args *skel.CmdArgs) error {
	return p.run("CHECK", args, func(ctx context.Context, inv *invocation) error {
		pod, err := ParseArgs(args.Args)
		if err != nil {
			return err
		}
		addrs, err := prevResultAddrs(inv.cfg.CNIVersion, inv.cfg.RawPrevResult, args.IfName)
		if err != nil {
			return err
		}
		return inv.agent.check(ctx, &wire.CheckArgs{Attachment: attachment(inv, pod), Ips: addrs})
	})
}

// GC releases this node's allocations of the network that are not among
// cni.dev/valid-attachments (CNI GC, spec 1.1).
func (p Plugin) GC(args *skel.CmdArgs) error {
	return p.run("GC", args, func(ctx context.Context, inv *invocation) error {
		valid := make([]*wire.GCAttachment, 0, len(inv.cfg.ValidAttachments))
		for _, a := range inv.cfg.ValidAttachments {
			valid = append(valid, &wire.GCAttachment{ContainerID: &a.ContainerID, IfName: &a.IfName})
		}
		name := inv.cfg.Name
		res, err := inv.agent.gc(ctx, &wire.GCArgs{NetworkName: &name, ValidAttachments: valid})
		if err != nil {
			return err
		}
		inv.log.Info("collected", "valid", len(valid), "released", res.Released)
		return nil
	})
}

// Status reports whether the agent can allocate (CNI STATUS, spec 1.1). Every
// failure, an unreachable agent included, is code 50 (plugin not available).
func (p Plugin) Status(args *skel.CmdArgs) error {
	return p.run("STATUS", args, func(ctx context.Context, inv *invocation) error {
		st, err := inv.agent.status(ctx)
		if err != nil {
			e := types.NewError(types.ErrInternal, err.Error(), "")
			errors.As(err, &e)
			return types.NewError(types.ErrPluginNotAvailable, "orbweaver-agent is not available: "+e.Msg, e.Details)
		}
		if !*st.Ready {
			reasons := "no reason given"
			if len(st.Reasons) > 0 {
				reasons = strings.Join(st.Reasons, "; ")
			}
			return types.NewError(types.ErrPluginNotAvailable, "orbweaver-agent is not ready: "+reasons, "")
		}
		p.warnSkew(inv, st)
		return nil
	})
}

// warnSkew logs, and tells Stderr, when the agent is at another release than the
// plugin: a node upgraded halfway (the DaemonSet rolled, the plugin binary on the host
// not copied, or the other way round). It is only a warning; the API is versioned and
// only ever gains fields.
func (p Plugin) warnSkew(inv *invocation, st *wire.Status) {
	if !versionSkew(p.Version, st.Version) {
		return
	}
	// logr has no warning level, and log_level warn keeps only errors: logged as an
	// error line so that every level shows it, though STATUS succeeds.
	inv.log.Error(fmt.Errorf("plugin version %s, agent version %s", p.Version, st.Version),
		"warning: orbweaver plugin and agent versions differ; install the same release of both",
		"pluginVersion", p.Version, "agentVersion", st.Version, "agentCommit", st.Commit, "socket", inv.cfg.IPAM.SocketPath)
	if p.Stderr != nil {
		_, _ = fmt.Fprintf(p.Stderr, "orbweaver: warning: this plugin is version %s but orbweaver-agent on unix socket %s is version %s; install the same release of both (the plugin binary is copied to the host by the agent DaemonSet's init container)\n",
			p.Version, inv.cfg.IPAM.SocketPath, st.Version)
	}
}

// versionSkew tells whether the plugin's and the agent's versions differ. A build that
// was not stamped ("dev", or nothing) has no version to compare, and an agent older
// than the version field reports none: neither warns. A leading "v" is ignored
// (v1.2.0 and 1.2.0 are the same release).
func versionSkew(plugin, agent string) bool {
	norm := func(v string) string { return strings.TrimPrefix(strings.TrimSpace(v), "v") }
	plugin, agent = norm(plugin), norm(agent)
	if plugin == "" || agent == "" || plugin == "dev" || agent == "dev" {
		return false
	}
	return plugin != agent
}

func attachment(inv *invocation, pod PodArgs) *wire.Attachment {
	containerID, ifName := inv.args.ContainerID, inv.args.IfName
	ns, name := pod.Namespace, pod.Name
	return &wire.Attachment{
		ContainerID:  &containerID,
		IfName:       &ifName,
		NetNamespace: inv.args.Netns,
		PodNamespace: &ns,
		PodName:      &name,
		PodUID:       pod.UID,
		NetworkName:  inv.cfg.Name,
	}
}

func addrStrings(res *current.Result) []string {
	s := make([]string, 0, len(res.IPs))
	for _, c := range res.IPs {
		s = append(s, c.Address.String())
	}
	return s
}
