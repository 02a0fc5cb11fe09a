package main

import (
	"encoding/json"
	"fmt"
)

func containerdConfig(c *cluster) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  netns_mounts_under_state_dir = true
  # Root on this kind of VM lacks CAP_SYS_RESOURCE: without this, every sandbox fails to
  # lower its oom_score_adj (docs/guides/local-cluster.md).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/bin/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    max_conf_num = 1
`, c.path("state", "containerd", "root"), c.path("state", "containerd", "state"), c.containerdSock(), PauseImage, c.cniBinDir(), c.cniConfDir())
}

func kubeletConfig(c *cluster) string {
	p := c.pki.path
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
failSwapOn: false
makeIPTablesUtilChains: false
resolvConf: %s
tlsCertFile: %s
tlsPrivateKeyFile: %s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %s}
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, imagefs.available: 1%%, nodefs.inodesFree: 1%%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
podLogsDir: %s
volumePluginDir: %s
`, nodeIP, c.containerdSock(), c.path("etc", "resolv.conf"), p("kubelet-serving.crt"), p("kubelet-serving.key"), p("ca.crt"),
		c.path("state", "pod-logs"), c.path("state", "volume-plugins"))
}

// conflist is the pods' network: the bridge plugin on the node bridge, with ipam as
// its IPAM section (hostLocalIPAM before orbweaver is installed; the chart writes
// orbweaver's; the migration e2e writes SpiderPool's).
func conflist(ipam map[string]any) string {
	data, _ := json.MarshalIndent(map[string]any{
		"cniVersion": "1.0.0", "name": netName,
		"plugins": []map[string]any{{"type": "bridge", "bridge": bridgeName, "isGateway": true, "ipMasq": false, "hairpinMode": true, "ipam": ipam}},
	}, "", "  ")
	return string(data) + "\n"
}

// hostLocalIPAM is the reference host-local IPAM over a range no pool of the tests uses.
func hostLocalIPAM(c *cluster) map[string]any {
	return map[string]any{"type": "host-local", "dataDir": c.path("state", "cni-ipam"),
		"ranges": [][]map[string]string{{{"subnet": podCIDR, "rangeStart": "10.244.250.1", "rangeEnd": "10.244.250.254", "gateway": nodeIP}}}}
}

func kubeProxyConfig(c *cluster) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
hostnameOverride: %s
mode: iptables
clusterCIDR: %s
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the machine's conntrack sysctls alone.
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, c.pki.path("kube-proxy.kubeconfig"), nodeName, podCIDR)
}
