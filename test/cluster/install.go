package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	alibabaemu "github.com/orbweaver-ipam/orbweaver/internal/eipemulator/alibaba"
)

// localValues are the chart values for this cluster: the images imported by up, never
// pulled; the CNI folders containerd uses here; the bridge network with orbweaver as its
// IPAM; everything listening on the node's bridge address; a short GC delay so the demo
// shows reclaims within seconds; the clouds' own EIP annotations read.
func localValues(c *cluster) string {
	return fmt.Sprintf(`listenOnPodIP: true
agent:
  image: {repository: localhost/orbweaver-agent, tag: dev, pullPolicy: Never}
controller:
  image: {repository: localhost/orbweaver-controller, tag: dev, pullPolicy: Never}
  # One node: the chart's two host-network replicas must be on different nodes (required
  # anti-affinity, same ports), so a second one would stay Pending; with one, no PDB.
  replicas: 1
cni:
  binDir: %s
  confDir: %s
  conflist:
    enabled: true
    fileName: 10-%s.conflist
    config:
      cniVersion: 1.0.0
      name: %s
      plugins:
        - type: bridge
          bridge: %s
          isGateway: true
          ipMasq: false
          hairpinMode: true
          ipam: {type: orbweaver}
gc:
  goneDelay: 10s
eip:
  credentialsSecret: %s
  orphanInterval: 1m
  # ACK's and TKE's own annotations and readiness gate, as the seeds' manifests use them.
  vendorAnnotations: true
  alibaba: {region: cn-hangzhou, endpoint: "http://%s"}
  aws: {region: us-east-1, endpoint: "http://%s"}
  tencent: {region: ap-guangzhou, endpoint: "http://%s"}
`, c.cniBinDir(), c.cniConfDir(), netName, netName, bridgeName, cloudSecret, emuAlibaba, emuAWS, emuTencent)
}

// cloudSecret holds the emulators' credentials, in each SDK's environment variables;
// the instance-metadata lookups are off, so nothing leaves the machine.
const cloudSecret = "orbweaver-cloud-credentials"

// cloudCredentials creates cloudSecret and points EIPs of the node's pods at one
// interface (the emulators model no ENIs), before the install.
func (c *cluster) cloudCredentials() error {
	out, err := c.kubectl("-n", "kube-system", "create", "secret", "generic", cloudSecret, "--dry-run=client", "-o", "yaml",
		"--from-literal=ALIBABA_CLOUD_ACCESS_KEY_ID="+alibabaemu.AccessKeyID,
		"--from-literal=ALIBABA_CLOUD_ACCESS_KEY_SECRET=local-emulator",
		"--from-literal=ALIBABA_CLOUD_ECS_METADATA_DISABLED=true",
		"--from-literal=AWS_ACCESS_KEY_ID=AKIDLOCALEMULATOR",
		"--from-literal=AWS_SECRET_ACCESS_KEY=local-emulator",
		"--from-literal=AWS_EC2_METADATA_DISABLED=true",
		"--from-literal=TENCENTCLOUD_SECRET_ID=AKIDLOCALEMULATOR",
		"--from-literal=TENCENTCLOUD_SECRET_KEY=local-emulator")
	if err != nil {
		return err
	}
	f := c.path("cloud-credentials.yaml")
	if err := os.WriteFile(f, []byte(out), 0o600); err != nil {
		return err
	}
	if _, err := c.kubectl("apply", "-f", f); err != nil {
		return err
	}
	_, err = c.kubectl("annotate", "node", nodeName, "--overwrite", v2beta1.AnnoNodeEIPInterface+"=eni-"+nodeName)
	return err
}

// helm runs the repository's helm against the cluster.
func (c *cluster) helm(args ...string) (string, error) {
	return run(filepath.Join(c.bin, "helm"), append([]string{"--kubeconfig", c.kubeconfig()}, args...)...)
}

// install installs (or upgrades) orbweaver with its Helm chart and waits until the agent
// and the controller are ready; from then on the node's pods get their IPs from it.
func (c *cluster) install() error {
	if err := c.cloudCredentials(); err != nil {
		return fmt.Errorf("EIP cloud credentials: %w", err)
	}
	values := c.path("values.yaml")
	if err := os.WriteFile(values, []byte(localValues(c)), 0o644); err != nil {
		return err
	}
	fmt.Println("  helm upgrade --install orbweaver charts/orbweaver -n kube-system --wait")
	out, err := c.helm("upgrade", "--install", "orbweaver", filepath.Join(c.root, "charts", "orbweaver"),
		"--namespace", "kube-system", "--values", values, "--wait", "--timeout", "3m")
	if err != nil {
		return fmt.Errorf("%w\n%s", err, c.describeInstall())
	}
	fmt.Println(indent(firstLines(out, 6)))
	// helm's --wait does not wait for a DaemonSet's pods here; rollout status does.
	for _, what := range []string{"daemonset/orbweaver-agent", "deployment/orbweaver-controller"} {
		if _, err := c.kubectl("-n", "kube-system", "rollout", "status", what, "--timeout=120s"); err != nil {
			return fmt.Errorf("%w\n%s", err, c.describeInstall())
		}
	}
	return nil
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}

// describeInstall is what to look at when the install does not come up.
func (c *cluster) describeInstall() string {
	out, _ := c.kubectl("-n", "kube-system", "get", "pods", "-o", "wide")
	ev, _ := c.kubectl("-n", "kube-system", "get", "events", "--sort-by=.lastTimestamp")
	lines := strings.Split(strings.TrimSpace(ev), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return out + "\n" + strings.Join(lines, "\n")
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
