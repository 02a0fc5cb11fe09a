package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

// Harness is the shared state of one run: the API server, the simulated nodes and the
// limits every peer runs under. Peers get it in Setup.
type Harness struct {
	// Env is the one kube-apiserver + etcd of the run.
	Env *testenv.Env
	// Nodes are the simulated node names; their Node objects exist.
	Nodes []string
	// Dir is a scratch folder for peers' files (configs, sockets); removed at the end.
	Dir string
	// Parallel is how many CNI calls each node runs at once, as a kubelet starts
	// several sandboxes in parallel.
	Parallel int
	// OpTimeout bounds each plugin exec.
	OpTimeout time.Duration
	// Progress receives a line every few seconds while a scenario runs.
	Progress io.Writer
	// CPUProfile, when set, is a file name prefix: this process is profiled while each
	// scenario is timed, into <prefix>-<peer>-<nodes>-<scenario>.pprof.
	CPUProfile string
	// APIServerProfile, when set, is a file name prefix: each scenario's first
	// APIServerProfileFor of timing is profiled in the API server (its /debug/pprof) and
	// written to <prefix>-<peer>-<scenario>.pprof.
	APIServerProfile    string
	APIServerProfileFor time.Duration
	// ScenarioTimeout bounds each scenario, its prefill included.
	ScenarioTimeout time.Duration
	// Settle is how long the pods exist, bound to their nodes, before their ADDs are
	// timed (the kubelet's lead over its CNI calls, and what a peer may do with it).
	Settle time.Duration
	// Proxy stands between every peer's API clients and the API server and counts what
	// they receive; peers reach the API server through ClientConfig and Kubeconfig,
	// which go through it. nil with -count-watch-bytes=false: the clients go straight
	// to the API server and nothing counts their bytes.
	Proxy *countingProxy
	// Kubeconfig reaches the API server (through Proxy), for peers' processes.
	Kubeconfig string
	// slots bounds the plugin execs (and floor calls) in flight across all nodes: the
	// machine's limit, not a kubelet's (-max-inflight).
	slots chan struct{}
	// etcdPID is etcd's process, whose CPU time is read from /proc (0: not found).
	etcdPID int
}

// ClientConfig reaches the API server (through Proxy) for peers' clients in this
// process, as the admin, without client-side rate limits.
func (h *Harness) ClientConfig() *rest.Config {
	if h.Proxy == nil {
		return rest.CopyConfig(h.Env.Config)
	}
	return h.Proxy.Config()
}

// profileAPIServer fetches a CPU profile of the API server over the next d and writes it
// to file; it returns when done.
func (h *Harness) profileAPIServer(ctx context.Context, file string, d time.Duration) error {
	cs, err := kubernetes.NewForConfig(h.Env.Config)
	if err != nil {
		return err
	}
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/debug/pprof/profile").
		Param("seconds", strconv.Itoa(max(int(d.Seconds()), 1))).Timeout(d + time.Minute).DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("API server profile: %w", err)
	}
	return os.WriteFile(file, body, 0o644)
}

// createNodes creates the Node objects (no kubelet runs them).
func (h *Harness) createNodes(ctx context.Context) error {
	for _, name := range h.Nodes {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:   name,
			Labels: map[string]string{"kubernetes.io/hostname": name, "orbweaver.io/bench": "true"},
		}}
		if err := h.Env.Client.Create(ctx, node); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create Node %s: %w", name, err)
		}
	}
	return nil
}

// ensureNamespace creates a namespace if it is missing.
func (h *Harness) ensureNamespace(ctx context.Context, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := h.Env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Namespace %s: %w", name, err)
	}
	return nil
}

// Pod is one simulated pod sandbox: a Pod object bound to a node (nothing runs it) and
// the container ID its CNI calls carry.
type Pod struct {
	Namespace, Name string
	UID             string // the API server's UID, set by createPods
	ContainerID     string
	Node            string
	Pool            int
	// Owner, when set, is the Pod's controller (a ReplicaSet, a StatefulSet); the
	// object it names must exist for SpiderPool's agent, which reads it. Labels are
	// added to the Pod's; Annotations are the Pod's.
	Owner       *metav1.OwnerReference
	Labels      map[string]string
	Annotations map[string]string
}

func (p *Pod) String() string { return p.Namespace + "/" + p.Name }

// newContainerID returns a random 64-hex-digit ID, like containerd's.
func newContainerID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// createPods creates the Pod objects, bound to their nodes with spec.nodeName, 8 at a
// time, and fills in their UIDs.
func (h *Harness) createPods(ctx context.Context, pods []*Pod) error {
	const workers = 8
	work := make(chan *Pod)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				obj := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: map[string]string{"orbweaver.io/bench": "true"},
						Annotations: maps.Clone(p.Annotations)},
					Spec: corev1.PodSpec{
						NodeName:   p.Node,
						Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/pause:bench"}},
					},
				}
				maps.Copy(obj.Labels, p.Labels)
				if p.Owner != nil {
					obj.OwnerReferences = []metav1.OwnerReference{*p.Owner}
				}
				if err := h.Env.Client.Create(ctx, obj); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("create Pod %s: %w", p, err))
					mu.Unlock()
					continue
				}
				p.UID = string(obj.UID)
			}
		}()
	}
	for _, p := range pods {
		if ctx.Err() != nil {
			break
		}
		work <- p
	}
	close(work)
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

// deletePods deletes Pod objects with the given grace period, ignoring ones already gone.
// With no kubelet, a grace period above 0 leaves a pod Terminating (deletionTimestamp set),
// as a pod whose sandbox a kubelet is about to stop and DEL; 0 removes it at once.
func (h *Harness) deletePods(ctx context.Context, pods []*Pod, grace int64) error {
	var errs []error
	for _, p := range pods {
		obj := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name}}
		if err := h.Env.Client.Delete(ctx, obj, client.GracePeriodSeconds(grace)); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete Pod %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// call is one timed plugin exec.
type call struct {
	start, end time.Time
	ip         netip.Addr     // ADD only: the first address of the result
	ips        []netip.Prefix // ADD only: every address of the result, in its order
	err        error
	// cut is set when the call failed because the scenario's (or the run's) deadline
	// stopped it: not the peer's failure.
	cut bool
}

func (c call) latency() time.Duration { return c.end.Sub(c.start) }

// terminating is the grace period that leaves a deleted pod Terminating for the run.
const terminating = 3600

// deleteAllPods deletes every Pod in the namespace (grace period 0) and waits until none
// is left. A collection of thousands outlasts one request's time limit, so it asks again
// until the namespace is empty or ctx ends.
func (h *Harness) deleteAllPods(ctx context.Context, ns string) error {
	for {
		err := h.Env.Client.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(ns), client.GracePeriodSeconds(0))
		var left corev1.PodList
		if lerr := h.Env.Client.List(ctx, &left, client.InNamespace(ns), client.Limit(1)); lerr == nil && len(left.Items) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("delete the Pods of %s: %w", ns, errors.Join(err, ctx.Err()))
		}
		if err := sleep(ctx, time.Second); err != nil {
			return fmt.Errorf("delete the Pods of %s: %w", ns, err)
		}
	}
}

// cni execs the peer's plugin for one pod the way libcni does for a single-plugin
// config: CNI_* in the environment, the config on stdin, the result (or a CNI error) on
// stdout. The netns path is a dummy, which IPAM plugins never enter, unless the peer
// names a real one (NetNSer). The interface is eth0.
func (h *Harness) cni(ctx context.Context, p Peer, command string, pod *Pod) call {
	return h.cniIf(ctx, p, command, pod, "eth0")
}

// cniIf is cni for one interface of the pod (CNI_IFNAME), as Multus calls the plugin
// once per network of a pod with several: eth0, then net1, ...
func (h *Harness) cniIf(ctx context.Context, p Peer, command string, pod *Pod, ifName string) call {
	c := h.exec(ctx, p, command, pod, ifName)
	c.cut = c.err != nil && ctx.Err() != nil
	return c
}

// exec runs one CNI call, bounded by h.OpTimeout.
func (h *Harness) exec(ctx context.Context, p Peer, command string, pod *Pod, ifName string) call {
	if h.slots != nil {
		select {
		case h.slots <- struct{}{}:
			defer func() { <-h.slots }()
		case <-ctx.Done():
			now := time.Now()
			return call{start: now, end: now, err: fmt.Errorf("%s %s on %s: not started: %w", command, pod, pod.Node, context.Cause(ctx))}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, h.OpTimeout)
	defer cancel()
	if d, ok := p.(Caller); ok {
		c := call{start: time.Now()}
		ip, err := d.Call(ctx, command, pod)
		c.end, c.ip = time.Now(), ip
		if err != nil {
			c.err = fmt.Errorf("%s %s on %s: %w", command, pod, pod.Node, err)
		}
		return c
	}
	netns := "/var/run/netns/cni-bench-" + pod.ContainerID[:12]
	if n, ok := p.(NetNSer); ok {
		netns = n.NetNS()
	}
	cmd := exec.CommandContext(ctx, p.Binary())
	cmd.Env = append(os.Environ(),
		"CNI_COMMAND="+command,
		"CNI_CONTAINERID="+pod.ContainerID,
		"CNI_NETNS="+netns,
		"CNI_IFNAME="+ifName,
		"CNI_PATH="+filepath.Dir(p.Binary()),
		"CNI_ARGS="+strings.Join([]string{
			"IgnoreUnknown=1",
			"K8S_POD_NAMESPACE=" + pod.Namespace,
			"K8S_POD_NAME=" + pod.Name,
			"K8S_POD_INFRA_CONTAINER_ID=" + pod.ContainerID,
			"K8S_POD_UID=" + pod.UID,
		}, ";"),
	)
	cmd.Stdin = bytes.NewReader(p.NetConf(pod.Node, pod.Pool))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// After the plugin exits, its output pipes close once every process holding them
	// did: another plugin forked at the same moment holds them until its own exec,
	// which on a loaded machine took over 5 s (the ADD had answered: "WaitDelay
	// expired before I/O complete" with its result on stdout).
	cmd.WaitDelay = 30 * time.Second
	c := call{start: time.Now()}
	err := cmd.Run()
	c.end = time.Now()
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			// Killed (or never started) because -timeout or -op-timeout ran out.
			err = fmt.Errorf("%w: %w", cerr, err)
		}
		c.err = fmt.Errorf("%s %s on %s: %w%s", command, pod, pod.Node, err, pluginOutput(stdout.Bytes(), stderr.Bytes()))
		return c
	}
	if command == "ADD" {
		if c.ips, err = resultIPs(stdout.Bytes()); err != nil {
			c.err = fmt.Errorf("ADD %s %s on %s: %w", pod, ifName, pod.Node, err)
		} else {
			c.ip = c.ips[0].Addr()
		}
	}
	return c
}

// resultIPs returns the addresses of a CNI result, at least one.
func resultIPs(stdout []byte) ([]netip.Prefix, error) {
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(stdout, &res); err != nil {
		return nil, fmt.Errorf("parse CNI result %q: %w", clip(string(stdout), 200), err)
	}
	if len(res.IPs) == 0 {
		return nil, fmt.Errorf("CNI result without ips: %s", clip(string(stdout), 200))
	}
	out := make([]netip.Prefix, len(res.IPs))
	for i, c := range res.IPs {
		prefix, err := netip.ParsePrefix(c.Address)
		if err != nil {
			return nil, fmt.Errorf("CNI result address: %w", err)
		}
		out[i] = prefix
	}
	return out, nil
}

// pluginOutput formats a failed plugin's CNI error (stdout) and the end of its stderr.
func pluginOutput(stdout, stderr []byte) string {
	var out string
	var cniErr struct {
		Code    int    `json:"code"`
		Msg     string `json:"msg"`
		Details string `json:"details"`
	}
	if json.Unmarshal(stdout, &cniErr) == nil && cniErr.Msg != "" {
		out = fmt.Sprintf(": CNI error %d: %s", cniErr.Code, cniErr.Msg)
		if cniErr.Details != "" {
			out += " (" + clip(cniErr.Details, 200) + ")"
		}
	} else if s := strings.TrimSpace(string(stdout)); s != "" {
		out = ": stdout: " + clip(s, 200)
	}
	if s := strings.TrimSpace(string(stderr)); s != "" {
		// The last lines say most; start them at a line boundary.
		lines := strings.Split(s, "\n")
		out += ": stderr: " + clip(strings.Join(lines[max(0, len(lines)-2):], " | "), 300)
	}
	return out
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// job is one unit of work on a node.
type job struct {
	node string
	run  func(ctx context.Context)
}

// runAtRate starts jobs at rate per second, in order, each on its node, where at most
// parallel run at once (a job whose node is busy waits for it), and returns when all have
// run. Once ctx ends, the rest start at once (and fail fast), so every one is accounted
// for.
func runAtRate(ctx context.Context, nodes []string, parallel int, jobs []job, rate float64) {
	queues := make(map[string]chan job, len(nodes))
	for _, n := range nodes {
		queues[n] = make(chan job, len(jobs))
	}
	var wg sync.WaitGroup
	for _, q := range queues {
		for range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range q {
					j.run(ctx)
				}
			}()
		}
	}
	start := time.Now()
	for i, j := range jobs {
		at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if d := time.Until(at); d > 0 && ctx.Err() == nil {
			_ = sleep(ctx, d)
		}
		queues[j.node] <- j
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
}

// runPerNode runs jobs with at most parallel of them at once on each node, each node's
// jobs in order, and returns when all have run. Jobs still run (and fail fast) after ctx
// ends, so every one is accounted for.
func runPerNode(ctx context.Context, nodes []string, parallel int, jobs []job) {
	queues := make(map[string]chan job, len(nodes))
	for _, n := range nodes {
		queues[n] = make(chan job, len(jobs))
	}
	for _, j := range jobs {
		queues[j.node] <- j
	}
	var wg sync.WaitGroup
	for _, q := range queues {
		close(q)
		for range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range q {
					j.run(ctx)
				}
			}()
		}
	}
	wg.Wait()
}

// processCPU is a process's CPU time (user and system) in seconds, from /proc; 0 when it
// cannot be read.
// rusageCPU returns the CPU seconds of this process and of its children that exited.
func rusageCPU() (self, children float64) {
	sec := func(who int) float64 {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) != nil {
			return 0
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	return sec(syscall.RUSAGE_SELF), sec(syscall.RUSAGE_CHILDREN)
}

// machineBusy returns the seconds every core of the machine spent neither idle nor
// waiting for I/O, from /proc/stat.
func machineBusy() float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy float64
	for i, v := range f[1:8] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0
		}
		busy += n
	}
	return busy / clockTicks
}

// clockTicks is USER_HZ on Linux: the unit of /proc's CPU times.
const clockTicks = 100

func processCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return (utime + stime) / clockTicks
}

// processRSS is a process's resident memory in bytes, from /proc; 0 when it cannot be read.
func processRSS(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == "VmRSS" {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// findProcess returns the PID of a process running the program named base whose command
// line contains every one of parts, or 0.
func findProcess(base string, parts ...string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		s := string(cmdline)
		prog, _, _ := strings.Cut(s, "\x00")
		all := filepath.Base(prog) == base
		for _, p := range parts {
			all = all && strings.Contains(s, p)
		}
		if all {
			return pid
		}
	}
	return 0
}
