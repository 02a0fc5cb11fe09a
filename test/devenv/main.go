// Command devenv runs the local environment behind `make demo`: a real kube-apiserver and
// etcd on 127.0.0.1 with orbweaver's CRDs and a real node agent for one node, kept
// running in the background until `make demo-down`.
//
//	devenv up     start (or reuse) the servers, apply docs/examples, allocate for a few
//	              pods through the real CNI plugin, print the pools and endpoints
//	devenv down   stop the servers and remove their state
//	devenv serve  (internal) the background process that owns the servers
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/orbweaver-ipam/orbweaver/pkg/agent"
	"github.com/orbweaver-ipam/orbweaver/pkg/testenv"
)

// demoNode is the one node the demo's agent serves; no kubelet runs it.
const demoNode = "demo-node"

// demoPods are created in namespace demo, bound to demoNode, and given their addresses by
// the real CNI plugin, as a container runtime would. The last names a pool that does not
// exist, to show what a user sees then.
var demoPods = []struct{ name, pools string }{
	{"nginx-1", `{"ipv4":["nginx-v4-ippool"]}`},
	{"nginx-2", `{"ipv4":["nginx-v4-ippool"]}`},
	{"dual-1", `{"ipv4":["dual-v4"],"ipv6":["dual-v6"]}`},
	{"typo-1", `{"ipv4":["nginx-v4-ipool"]}`},
}

const usage = "usage: devenv up|down"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		fail(err)
	}
	d := demo{root: root, dir: filepath.Join(root, ".demo")}
	switch os.Args[1] {
	case "up":
		err = d.up()
	case "down":
		err = d.down()
	case "serve":
		err = d.serve()
	default:
		err = errors.New(usage)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "demo:", err)
	os.Exit(1)
}

type demo struct{ root, dir string }

func (d demo) path(name string) string { return filepath.Join(d.dir, name) }

// running returns the PID of a live serve process, or 0.
func (d demo) running() int {
	data, err := os.ReadFile(d.path("devenv.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

func (d demo) up() error {
	if d.running() == 0 {
		if err := d.start(); err != nil {
			return err
		}
	} else {
		fmt.Println(">> the demo API server is already running; reusing it")
	}
	kubeconfig := d.path("kubeconfig")
	kubectl := func(args ...string) error {
		fmt.Printf("$ kubectl %s\n", strings.Join(args, " "))
		cmd := exec.Command(filepath.Join(d.root, "bin", "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		return cmd.Run()
	}
	if err := kubectl("apply", "-f", filepath.Join(d.root, "docs", "examples")); err != nil {
		return fmt.Errorf("kubectl apply: %w", err)
	}
	if err := d.podsGetAddresses(kubectl); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"get", "ss,sp", "-o", "wide"},
		{"get", "se", "-n", "demo"},
		{"get", "sr"},
	} {
		if err := kubectl(args...); err != nil {
			return fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
		}
	}
	fmt.Printf(`
The API server keeps running on 127.0.0.1 with orbweaver's CRDs, and a node agent serves
node %s on %s. Try:
  export KUBECONFIG=%s
  %s get spiderpool
  %s get se -n demo -o yaml
  %s explain sp.spec.orbweaver
  curl -s --unix-socket %s http://agent/v1/status
A real kubelet node with the Helm chart comes with a later milestone of the demo.
Stop it with:  make demo-down
`, demoNode, d.path("agent.sock"), kubeconfig, filepath.Join("bin", "kubectl"), filepath.Join("bin", "kubectl"), filepath.Join("bin", "kubectl"), d.path("agent.sock"))
	return nil
}

// podsGetAddresses creates the demo pods and runs the real orbweaver plugin's ADD for each,
// the way a container runtime calls an IPAM plugin, printing what it answered.
func (d demo) podsGetAddresses(kubectl func(args ...string) error) error {
	var manifest strings.Builder
	manifest.WriteString("apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default, namespace: demo}\n")
	for _, p := range demoPods {
		fmt.Fprintf(&manifest, "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: demo\n  annotations:\n    ipam.spidernet.io/ippool: '%s'\nspec:\n  nodeName: %s\n  automountServiceAccountToken: false\n  containers: [{name: app, image: registry.invalid/nginx:demo}]\n", p.name, p.pools, demoNode)
	}
	manifestPath := d.path("pods.yaml")
	if err := os.WriteFile(manifestPath, []byte(manifest.String()), 0o644); err != nil {
		return err
	}
	if err := kubectl("apply", "-f", manifestPath); err != nil {
		return fmt.Errorf("kubectl apply: %w", err)
	}
	conf, _ := json.Marshal(map[string]any{
		"cniVersion": "1.0.0", "name": "demo", "type": "orbweaver",
		"ipam": map[string]any{"type": "orbweaver", "ipam_unix_socket_path": d.path("agent.sock"), "log_file_path": d.path("orbweaver.log")},
	})
	fmt.Println("$ orbweaver (CNI ADD, as the container runtime calls it) for each pod on", demoNode)
	for _, p := range demoPods {
		cmd := exec.Command(filepath.Join(d.root, "bin", "orbweaver"))
		cmd.Env = append(os.Environ(), "CNI_COMMAND=ADD", "CNI_CONTAINERID=demo-"+p.name, "CNI_NETNS=/var/run/netns/demo-"+p.name,
			"CNI_IFNAME=eth0", "CNI_PATH="+filepath.Join(d.root, "bin"),
			"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME="+p.name+";K8S_POD_INFRA_CONTAINER_ID=demo-"+p.name)
		cmd.Stdin = bytes.NewReader(conf)
		var stdout bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
		err := cmd.Run()
		var result struct {
			IPs []struct{ Address, Gateway string } `json:"ips"`
			Msg string                              `json:"msg"`
		}
		_ = json.Unmarshal(stdout.Bytes(), &result)
		switch {
		case err != nil && result.Msg != "":
			fmt.Printf("  demo/%-8s failed, as it should (the pool name has a typo): %s\n", p.name, result.Msg)
		case err != nil:
			return fmt.Errorf("orbweaver ADD for demo/%s: %w: %s", p.name, err, stdout.String())
		default:
			var got []string
			for _, ip := range result.IPs {
				if ip.Gateway != "" {
					got = append(got, ip.Address+" via gateway "+ip.Gateway)
				} else {
					got = append(got, ip.Address)
				}
			}
			fmt.Printf("  demo/%-8s %s\n", p.name, strings.Join(got, ", "))
		}
	}
	// Events are posted asynchronously; give the agent's recorder a moment.
	time.Sleep(time.Second)
	return kubectl("get", "events", "-n", "demo", "--field-selector", "reason=IPAllocationFailed", "-o", "custom-columns=POD:.involvedObject.name,REASON:.reason,MESSAGE:.message")
}

// start launches `devenv serve` in the background and waits until it is ready.
func (d demo) start() error {
	if err := os.RemoveAll(d.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logFile, err := os.Create(d.path("devenv.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(self, "serve")
	cmd.Dir = d.root
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the demo API server: %w", err)
	}
	if err := os.WriteFile(d.path("devenv.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fmt.Println(">> starting kube-apiserver and etcd on 127.0.0.1 with orbweaver's CRDs")
	deadline := time.After(2 * time.Minute)
	for {
		if _, err := os.Stat(d.path("ready")); err == nil {
			return nil
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(d.path("devenv.log"))
			return fmt.Errorf("the demo API server exited (%v):\n%s", err, log)
		case <-deadline:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("the demo API server was not ready within 2 minutes; see %s", d.path("devenv.log"))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// serve owns the servers until SIGTERM or SIGINT.
func (d demo) serve() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	state := d.path("state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return err
	}
	env, err := testenv.Start(testenv.Options{Dir: state})
	if err != nil {
		return err
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	data, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		return err
	}
	if err := os.WriteFile(d.path("kubeconfig"), data, 0o600); err != nil {
		return err
	}

	// One node agent, for a Node object that no kubelet runs.
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: demoNode, Labels: map[string]string{"kubernetes.io/hostname": demoNode}}}
	if err := env.Client.Create(ctx, node); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Node %s: %w", demoNode, err)
	}
	ctrllog.SetLogger(logr.Discard())
	ready := make(chan struct{})
	agentDone := make(chan error, 1)
	go func() {
		agentDone <- agent.Run(ctx, agent.Config{
			NodeName: demoNode, RESTConfig: env.Config, SocketPath: d.path("agent.sock"),
			Log: logr.Discard(), Ready: func() { close(ready) },
		})
	}()
	select {
	case <-ready:
	case err := <-agentDone:
		return fmt.Errorf("the demo's node agent stopped: %w", err)
	case <-time.After(2 * time.Minute):
		return errors.New("the demo's node agent was not ready within 2 minutes")
	}

	if err := os.WriteFile(d.path("ready"), nil, 0o644); err != nil {
		return err
	}
	fmt.Println("ready; kubeconfig", d.path("kubeconfig"))
	<-ctx.Done()
	fmt.Println("stopping")
	return <-agentDone
}

func (d demo) down() error {
	pid := d.running()
	if pid == 0 {
		fmt.Println(">> the demo is not running")
		return os.RemoveAll(d.dir)
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 150 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(200 * time.Millisecond)
	}
	if syscall.Kill(pid, 0) == nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	fmt.Println(">> demo stopped")
	return os.RemoveAll(d.dir)
}
