package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// down stops what up started, by pid, and removes what it made: mounts, the bridge,
// cgroups, CNI cache entries and state. It works after a crash too (nothing is assumed
// to be alive) and running it twice is harmless.
func (c *cluster) down() error {
	if os.Geteuid() != 0 {
		return errors.New("down needs root")
	}
	var errs []error
	note := func(err error) {
		if err != nil {
			fmt.Println("  warning:", err)
			errs = append(errs, err)
		}
	}
	fmt.Println("== stopping the node and the control plane")
	for _, name := range []string{"cloudemu", "kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		note(c.procs.stop(name, 20*time.Second))
	}
	// kube-proxy's rules: its --cleanup exits non-zero on this kind of VM (no modprobe
	// for IPVS) and leaves some chains, so they are removed here.
	note(removeKubeChains())
	fmt.Println("== stopping the containers and containerd")
	if _, alive := c.procs.alive("containerd"); alive {
		if out, err := c.ctr("tasks", "ls", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				_, _ = c.ctr("tasks", "kill", "-s", "KILL", id)
			}
		}
	}
	note(c.procs.stop("containerd", 20*time.Second))
	note(c.killShims())
	fmt.Println("== removing mounts, the bridge, cgroups and files")
	note(c.unmountAll())
	if _, err := net.InterfaceByName(bridgeName); err == nil {
		_, err := run("ip", "link", "del", bridgeName)
		note(err)
	}
	c.removeCgroups()
	note(c.removeHostFiles())
	if err := os.RemoveAll(c.path("state")); err != nil {
		note(err)
	}
	for _, d := range []string{c.path("run"), c.path("etc", "cni")} {
		note(os.RemoveAll(d))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d problems while tearing down (above)", len(errs))
	}
	fmt.Println("the local cluster is down")
	return nil
}

// killShims kills, by pid, the containerd shims that serve our containerd.
func (c *cluster) killShims() error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 0 && strings.Contains(args[0], "containerd-shim") && slices.Contains(args, c.containerdSock()) {
			var pid int
			if _, err := fmt.Sscan(e.Name(), &pid); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	return nil
}

// unmountAll unmounts every mount under the cluster's folder, deepest first.
func (c *cluster) unmountAll() error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (strings.HasPrefix(f[4], c.dir+"/") || strings.HasPrefix(f[4], "/run/containerd/")) {
			points = append(points, f[4])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
	return nil
}

// removeCgroups removes the kubelet's cgroup trees (kubepods), deepest first.
func (c *cluster) removeCgroups() {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	if more, _ := filepath.Glob("/sys/fs/cgroup/kubepods"); len(more) > 0 {
		roots = append(roots, more...)
	}
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) })
		for _, d := range dirs {
			_ = os.Remove(d)
		}
	}
}

// removeHostFiles removes what the kubelet, containerd's CNI and the orbweaver agent
// write outside the cluster's folder, and only ours.
func (c *cluster) removeHostFiles() error {
	results, _ := filepath.Glob("/var/lib/cni/results/" + netName + "-*")
	loopback, _ := filepath.Glob("/var/lib/cni/results/cni-loopback-*")
	for _, f := range append(results, loopback...) {
		_ = os.Remove(f)
	}
	_ = os.Remove("/var/lib/cni/results")
	_ = os.Remove("/var/lib/kubelet/device-plugins/kubelet.sock")
	links, _ := filepath.Glob("/var/log/containers/*.log")
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, c.dir+"/") {
			_ = os.Remove(l)
		}
	}
	return os.RemoveAll("/var/run/orbweaver")
}

// removeKubeChains removes the KUBE-* iptables chains kube-proxy made (and the jumps to
// them from the built-in chains), in the filter, nat and mangle tables, IPv4 and IPv6.
// Only a cluster made by up runs kube-proxy on this machine.
func removeKubeChains() error {
	var errs []error
	for _, bin := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(bin); err != nil {
			continue
		}
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, err := run(bin, "-t", table, "-S")
			if err != nil {
				continue
			}
			var chains []string
			for _, line := range strings.Split(out, "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) == 2 && f[0] == "-N" && strings.HasPrefix(f[1], "KUBE-"):
					chains = append(chains, f[1])
				case len(f) > 2 && f[0] == "-A" && !strings.HasPrefix(f[1], "KUBE-") && strings.Contains(line, "-j KUBE-"):
					// A jump from a built-in chain: delete that exact rule.
					args := append([]string{"-t", table, "-D"}, splitRule(line)[1:]...)
					if _, err := run(bin, args...); err != nil {
						errs = append(errs, err)
					}
				}
			}
			for _, op := range []string{"-F", "-X"} {
				for _, ch := range chains {
					if _, err := run(bin, "-t", table, op, ch); err != nil {
						errs = append(errs, err)
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

// splitRule splits a line of iptables -S into words, a double-quoted comment being one.
func splitRule(line string) []string {
	var out []string
	var cur strings.Builder
	quoted, inWord := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}
