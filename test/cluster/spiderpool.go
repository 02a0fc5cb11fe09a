package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/orbweaver-ipam/orbweaver/internal/images"
)

// SpiderPool v1.2.2's own agent and IPAM plugin, as tools/ensure.sh builds them from the
// Go module proxy, run on this cluster the way SpiderPool's chart runs them: the agent a
// DaemonSet pod on the host network, the plugin in the host's CNI folder. The migration
// e2e (e2e_migrate_test.go) starts from it.
const (
	SpiderPoolAgentImage = "localhost/spiderpool-agent:v1.2.2"
	// spiderPoolHealthPort is the agent's health port on the host; SpiderPool's default
	// (5710) is orbweaver's too.
	spiderPoolHealthPort = 5810
)

// spiderPoolSocketDir is the host folder of the agent's unix socket, mounted into its pod
// at the same path, so the plugin and the agent name one file.
func (c *cluster) spiderPoolSocketDir() string { return c.path("run", "spidernet") }

// importSpiderPoolImage writes SpiderPool's agent binary into an image and imports it
// into containerd, as buildImages does for orbweaver's.
func (c *cluster) importSpiderPoolImage() error {
	img, err := images.Build(images.Spec{Name: "spiderpool-agent", Entrypoint: []string{"/usr/bin/spiderpool-agent"},
		Binaries: map[string]string{"/usr/bin/spiderpool-agent": "spiderpool-agent"}},
		SpiderPoolAgentImage, func(bin string) ([]byte, error) { return os.ReadFile(filepath.Join(c.bin, bin)) }, nil)
	if err != nil {
		return fmt.Errorf("%w (run `make tools`)", err)
	}
	tarPath := c.path("images", "spiderpool-agent.tar")
	if err := os.MkdirAll(filepath.Dir(tarPath), 0o755); err != nil {
		return err
	}
	f, err := os.Create(tarPath)
	if err != nil {
		return err
	}
	err = images.Write(f, img)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("image %s: %w", SpiderPoolAgentImage, err)
	}
	_, err = c.ctr("images", "import", "--no-unpack=false", tarPath)
	return err
}

// installSpiderPoolPlugin copies SpiderPool's IPAM plugin into the CNI folder (its
// chart's init container does this) and points the pods' network at it.
func (c *cluster) installSpiderPoolPlugin() error {
	if err := copyFile(filepath.Join(c.bin, "spiderpool"), filepath.Join(c.cniBinDir(), "spiderpool"), 0o755); err != nil {
		return fmt.Errorf("SpiderPool's plugin: %w (run `make tools`)", err)
	}
	return c.writeConflist(map[string]any{
		"type":                  "spiderpool",
		"ipam_unix_socket_path": filepath.Join(c.spiderPoolSocketDir(), "spiderpool.sock"),
		"log_level":             "info",
		"log_file_path":         c.path("state", "spiderpool-plugin.log"),
	})
}

// writeConflist writes the pods' network with ipam as its IPAM section; containerd
// reads the new file for the next sandbox.
func (c *cluster) writeConflist(ipam map[string]any) error {
	path := filepath.Join(c.cniConfDir(), "10-"+netName+".conflist")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(conflist(ipam)), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// spiderPoolAgentManifest is SpiderPool's agent as its chart deploys it, less what
// needs its controller: the labels its chart gives the pods (orbweaver's guard rails
// look for them), the host network, its configuration file, the unix socket on the
// host. Its ServiceAccount is bound to cluster-admin: the test runs SpiderPool, it does
// not review SpiderPool's RBAC.
func (c *cluster) spiderPoolAgentManifest() string {
	return fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: spiderpool-agent, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-spiderpool-agent}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: spiderpool-agent, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: spiderpool-conf, namespace: kube-system}
data:
  conf.yml: |
    ipamUnixSocketPath: %[1]s/spiderpool.sock
    enableIPv4: true
    enableIPv6: false
    enableStatefulSet: true
    enableKubevirtStaticIP: false
    enableSpiderSubnet: false
    enableAutoPoolForApplication: false
    enableIPConflictDetection: false
    enableGatewayDetection: false
    tuneSysctlConfig: false
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: spiderpool-agent
  namespace: kube-system
  labels: {app.kubernetes.io/name: spiderpool, app.kubernetes.io/component: spiderpool-agent}
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: spiderpool, app.kubernetes.io/component: spiderpool-agent}
  template:
    metadata:
      labels: {app.kubernetes.io/name: spiderpool, app.kubernetes.io/component: spiderpool-agent}
    spec:
      serviceAccountName: spiderpool-agent
      hostNetwork: true
      dnsPolicy: ClusterFirstWithHostNet
      priorityClassName: system-node-critical
      terminationGracePeriodSeconds: 5
      tolerations: [{operator: Exists}]
      containers:
        - name: spiderpool-agent
          image: %[2]s
          imagePullPolicy: Never
          args: [daemon, --config-path=/etc/spiderpool/conf.yml]
          env:
            - {name: SPIDERPOOL_NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
            - {name: SPIDERPOOL_POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
            - {name: SPIDERPOOL_POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
            - {name: SPIDERPOOL_LOG_LEVEL, value: info}
            - {name: SPIDERPOOL_HEALTH_PORT, value: "%[3]d"}
            - {name: SPIDERPOOL_METRIC_HTTP_PORT, value: "0"}
            - {name: SPIDERPOOL_ENABLED_METRIC, value: "false"}
            - {name: SPIDERPOOL_GOPS_LISTEN_PORT, value: ""}
            - {name: MULTUS_CLUSTER_NETWORK, value: kube-system/macvlan}
          readinessProbe:
            httpGet: {host: 127.0.0.1, path: /v1/runtime/readiness, port: %[3]d}
            periodSeconds: 2
          volumeMounts:
            - {name: conf, mountPath: /etc/spiderpool}
            - {name: socket, mountPath: %[1]s}
            - {name: tmp, mountPath: /tmp}
      volumes:
        - {name: conf, configMap: {name: spiderpool-conf}}
        - {name: socket, hostPath: {path: %[1]s, type: DirectoryOrCreate}}
        - {name: tmp, emptyDir: {}}
`, c.spiderPoolSocketDir(), SpiderPoolAgentImage, spiderPoolHealthPort)
}
