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
	"time"
)

// The node's fixed settings.
const (
	nodeName    = "orbweaver-node"
	bridgeName  = "orbweaver0"
	nodeIP      = "10.244.0.1"
	podCIDR     = "10.244.0.0/16" // the bridge's subnet: pools of the examples lie in it
	serviceCIDR = "10.96.0.0/16"
	etcdClient  = "127.0.0.1:12379"
	etcdPeer    = "127.0.0.1:12380"
	netName     = "orbweaver-local"
)

type cluster struct {
	root, dir string
	bin       string // the repository's bin/, where tools/ensure.sh links the tools
	procs     procs
	pki       *pki
	noTools   bool
}

func newCluster(root, dir string) *cluster {
	return &cluster{root: root, dir: dir, bin: filepath.Join(root, "bin"), procs: procs{dir: dir},
		pki: &pki{dir: filepath.Join(dir, "pki"), server: "https://" + nodeIP + ":6443"}}
}

func (c *cluster) path(parts ...string) string {
	return filepath.Join(append([]string{c.dir}, parts...)...)
}

// Kubeconfig is the admin kubeconfig up writes.
func (c *cluster) kubeconfig() string { return c.path("kubeconfig") }

func (c *cluster) containerdSock() string { return c.path("run", "containerd.sock") }

func (c *cluster) cniBinDir() string { return c.path("cni", "bin") }

func (c *cluster) cniConfDir() string { return c.path("etc", "cni", "net.d") }

// up starts everything that does not run yet, in order, each waited for.
func (c *cluster) up() error {
	if os.Geteuid() != 0 {
		return errors.New("up needs root: it creates a bridge, mounts and cgroups, and runs containerd")
	}
	start := time.Now()
	steps := []struct {
		what string
		fn   func() error
	}{
		{"tools", c.tools},
		{"packages (containerd, runc, busybox-static)", c.packages},
		{"certificates", func() error { return c.pki.ensure(nodeName, net.ParseIP(nodeIP)) }},
		{"bridge " + bridgeName, c.bridge},
		{"config files", c.writeConfig},
		{"containerd", c.containerd},
		{"images", c.importImages},
		{"etcd", c.etcd},
		{"kube-apiserver", c.apiserver},
		{"kube-controller-manager and kube-scheduler", c.controlPlane},
		{"kube-proxy", c.kubeProxy},
		{"kubelet", c.kubelet},
		{"cloud emulator (EIPs)", c.cloudEmulator},
	}
	for _, s := range steps {
		fmt.Printf("== %s\n", s.what)
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	fmt.Printf("\nnode %s is Ready (%s). kubectl --kubeconfig %s get nodes\n", nodeName, time.Since(start).Round(time.Second), c.kubeconfig())
	return nil
}

func (c *cluster) tools() error {
	if c.noTools {
		return nil
	}
	cmd := exec.Command(filepath.Join(c.root, "tools", "ensure.sh"), "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl", "etcd", "bridge", "loopback", "host-local")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

func (c *cluster) packages() error {
	var missing []string
	for bin, pkg := range map[string]string{"containerd": "containerd", "runc": "runc", "iptables": "iptables", "conntrack": "conntrack"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, pkg)
		}
	}
	// The stand-in for busybox:1.28 (images.go) needs the static build: Debian's busybox
	// package has the same path, dynamically linked.
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "busybox-static").Output(); err != nil || string(out) != "install ok installed" {
		missing = append(missing, "busybox-static")
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	fmt.Printf("  apt-get install %s\n", strings.Join(missing, " "))
	if out, err := run("apt-get", "update", "-qq"); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	cmd := exec.Command("apt-get", append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

func (c *cluster) bridge() error {
	if _, err := net.InterfaceByName(bridgeName); err == nil {
		return nil
	}
	if _, err := run("ip", "link", "add", bridgeName, "type", "bridge"); err != nil {
		return err
	}
	if _, err := run("ip", "addr", "add", nodeIP+"/16", "dev", bridgeName); err != nil {
		return err
	}
	_, err := run("ip", "link", "set", bridgeName, "up")
	return err
}

func (c *cluster) writeConfig() error {
	for _, d := range []string{c.path("etc"), c.cniConfDir(), c.cniBinDir(), c.path("state"), c.path("run")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// The CNI folder holds the reference plugins; the orbweaver agent installs its
	// plugin here too (the chart's cni.binDir).
	for _, p := range []string{"bridge", "loopback", "host-local"} {
		if err := copyFile(filepath.Join(c.bin, p), filepath.Join(c.cniBinDir(), p), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{
		c.path("etc", "containerd.toml"): containerdConfig(c),
		c.path("etc", "kubelet.yaml"):    kubeletConfig(c),
		c.path("etc", "resolv.conf"):     "nameserver 127.0.0.1\n",
	}
	// The pods' network: the bridge with host-local until orbweaver is installed (the
	// demo and the e2e suite switch it to orbweaver; see useOrbweaver).
	if _, err := os.Stat(filepath.Join(c.cniConfDir(), "10-"+netName+".conflist")); errors.Is(err, fs.ErrNotExist) {
		files[filepath.Join(c.cniConfDir(), "10-"+netName+".conflist")] = conflist(hostLocalIPAM(c))
	}
	for path, content := range files {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

func (c *cluster) ctr(args ...string) (string, error) {
	return run("ctr", append([]string{"--address", c.containerdSock(), "--namespace", "k8s.io"}, args...)...)
}

func (c *cluster) containerd() error {
	if err := c.procs.start("containerd", "containerd", "--config", c.path("etc", "containerd.toml")); err != nil {
		return err
	}
	return waitFor("containerd", 30*time.Second, func() error { _, err := c.ctr("version"); return err })
}

func (c *cluster) importImages() error {
	tars, err := c.buildImages()
	if err != nil {
		return err
	}
	for _, t := range tars {
		if _, err := c.ctr("images", "import", "--no-unpack=false", t); err != nil {
			return err
		}
	}
	return nil
}

func (c *cluster) etcd() error {
	if err := c.procs.start("etcd", filepath.Join(c.bin, "etcd"),
		"--name", nodeName, "--data-dir", c.path("state", "etcd"),
		"--listen-client-urls", "http://"+etcdClient, "--advertise-client-urls", "http://"+etcdClient,
		"--listen-peer-urls", "http://"+etcdPeer, "--initial-advertise-peer-urls", "http://"+etcdPeer,
		"--initial-cluster", nodeName+"=http://"+etcdPeer); err != nil {
		return err
	}
	return waitFor("etcd", 30*time.Second, func() error {
		conn, err := net.DialTimeout("tcp", etcdClient, time.Second)
		if err == nil {
			conn.Close()
		}
		return err
	})
}

func (c *cluster) kubectl(args ...string) (string, error) {
	return run(filepath.Join(c.bin, "kubectl"), append([]string{"--kubeconfig", c.kubeconfig()}, args...)...)
}

func (c *cluster) apiserver() error {
	p := c.pki.path
	if err := c.procs.start("kube-apiserver", filepath.Join(c.bin, "kube-apiserver"),
		"--bind-address="+nodeIP, "--secure-port=6443", "--advertise-address="+nodeIP,
		"--etcd-servers=http://"+etcdClient,
		"--client-ca-file="+p("ca.crt"), "--tls-cert-file="+p("apiserver.crt"), "--tls-private-key-file="+p("apiserver.key"),
		"--kubelet-client-certificate="+p("apiserver-kubelet-client.crt"), "--kubelet-client-key="+p("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority="+p("ca.crt"), "--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p("sa.pub"), "--service-account-signing-key-file="+p("sa.key"),
		"--service-cluster-ip-range="+serviceCIDR,
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		// Webhook calls go to the Service's endpoints, not its cluster IP: no kube-proxy
		// is needed for the API server to reach the controller's webhooks.
		"--enable-aggregator-routing=true",
		"--allow-privileged=true", "--cert-dir="+c.path("state", "apiserver-certs"), "--profiling=false"); err != nil {
		return err
	}
	if err := copyFile(p("admin.kubeconfig"), c.kubeconfig(), 0o600); err != nil {
		return err
	}
	return waitFor("kube-apiserver", 120*time.Second, func() error { _, err := c.kubectl("get", "--raw", "/readyz"); return err })
}

func (c *cluster) controlPlane() error {
	p := c.pki.path
	kc := p("controller-manager.kubeconfig")
	if err := c.procs.start("kube-controller-manager", filepath.Join(c.bin, "kube-controller-manager"),
		"--kubeconfig="+kc, "--authentication-kubeconfig="+kc, "--authorization-kubeconfig="+kc,
		"--bind-address=127.0.0.1", "--leader-elect=false",
		"--service-account-private-key-file="+p("sa.key"), "--root-ca-file="+p("ca.crt"), "--use-service-account-credentials=true",
		"--cluster-signing-cert-file="+p("ca.crt"), "--cluster-signing-key-file="+p("ca.key"),
		"--service-cluster-ip-range="+serviceCIDR, "--allocate-node-cidrs=false",
		"--controllers=*,-cloud-node-lifecycle",
		"--flex-volume-plugin-dir="+c.path("state", "kcm-volume-plugins")); err != nil {
		return err
	}
	sk := p("scheduler.kubeconfig")
	return c.procs.start("kube-scheduler", filepath.Join(c.bin, "kube-scheduler"),
		"--kubeconfig="+sk, "--authentication-kubeconfig="+sk, "--authorization-kubeconfig="+sk,
		"--bind-address=127.0.0.1", "--leader-elect=false")
}

// kubeProxy routes Service IPs (10.96.0.0/16) on the node, in iptables mode, so pods,
// host-network pods included, reach the API server at 10.96.0.1 and Services work. down
// removes its rules with kube-proxy --cleanup.
func (c *cluster) kubeProxy() error {
	if err := os.WriteFile(c.path("etc", "kube-proxy.yaml"), []byte(kubeProxyConfig(c)), 0o644); err != nil {
		return err
	}
	return c.procs.start("kube-proxy", filepath.Join(c.bin, "kube-proxy"), "--config="+c.path("etc", "kube-proxy.yaml"))
}

// The local EIP clouds: the emulators of test/cloudemu on loopback, which the
// controller (on the host network) reaches through its SDKs' endpoint settings.
const (
	emuAlibaba = "127.0.0.1:18081"
	emuAWS     = "127.0.0.1:18082"
	emuTencent = "127.0.0.1:18083"
	emuAdmin   = "127.0.0.1:18080"
)

func (c *cluster) cloudEmulator() error {
	bin := filepath.Join(c.dir, "images", "bin", "cloudemu")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s: %w (built with the images)", bin, err)
	}
	return c.procs.start("cloudemu", bin, "-alibaba", emuAlibaba, "-aws", emuAWS, "-tencent", emuTencent, "-admin", emuAdmin)
}

func (c *cluster) kubelet() error {
	if err := c.procs.start("kubelet", filepath.Join(c.bin, "kubelet"),
		"--config="+c.path("etc", "kubelet.yaml"), "--kubeconfig="+c.pki.path("kubelet.kubeconfig"),
		"--hostname-override="+nodeName, "--node-ip="+nodeIP,
		"--root-dir="+c.path("state", "kubelet"), "--cert-dir="+c.path("state", "kubelet", "pki"), "--v=1"); err != nil {
		return err
	}
	if err := waitFor("node "+nodeName+" Ready", 120*time.Second, func() error {
		out, err := c.kubectl("get", "node", nodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err == nil && strings.TrimSpace(out) != "True" {
			err = fmt.Errorf("Ready is %q", out)
		}
		return err
	}); err != nil {
		return err
	}
	return waitFor("ServiceAccount default", 60*time.Second, func() error { _, err := c.kubectl("get", "serviceaccount", "default"); return err })
}
