package chart

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/webhook"
)

// TestRenderedObjects: every document decodes, into its Go type without unknown fields
// (CRs included), names are unique, namespaced objects land in the release namespace,
// and the chart renders the objects the docs promise.
func TestRenderedObjects(t *testing.T) {
	scheme := testenv.NewScheme()
	for _, vs := range valueSets(t) {
		t.Run(vs.name, func(t *testing.T) {
			objs := render(t, vs.args...)
			seen := map[string]bool{}
			for _, u := range objs {
				key := u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
				if seen[key] {
					t.Errorf("%s is rendered twice", key)
				}
				seen[key] = true
				gvk := u.GroupVersionKind()
				typed, err := scheme.New(gvk)
				if err != nil {
					t.Errorf("%s: a kind the scheme does not know: %v", key, err)
					continue
				}
				if err := unstructuredInto(u, typed); err != nil {
					t.Errorf("%s: %v", key, err)
				}
				clusterScoped := map[string]bool{"ClusterRole": true, "ClusterRoleBinding": true, "MutatingWebhookConfiguration": true,
					"ValidatingWebhookConfiguration": true, "SpiderIPPool": true, "SpiderSubnet": true}[gvk.Kind]
				if ns := u.GetNamespace(); clusterScoped && ns != "" || !clusterScoped && ns != namespace {
					t.Errorf("%s: namespace %q; want %q", key, ns, map[bool]string{true: "", false: namespace}[clusterScoped])
				}
			}
			counts := map[string]int{}
			for _, u := range objs {
				if u.GetAnnotations()["helm.sh/hook"] == "test" {
					continue // helm test's own (TestHelmTest)
				}
				counts[u.GetKind()]++
			}
			clusterRoles := 2
			if vs.name == "every option on" {
				clusterRoles++ // metrics.secure's metrics reader
			}
			for kind, want := range map[string]int{
				"ServiceAccount": 2, "ClusterRole": clusterRoles, "ClusterRoleBinding": 2, "Role": 1, "RoleBinding": 1,
				"DaemonSet": 1, "Deployment": 1, "Service": 1, "PodDisruptionBudget": 1,
				"MutatingWebhookConfiguration": 1, "ValidatingWebhookConfiguration": 1,
			} {
				if counts[kind] != want {
					t.Errorf("%d %s objects; want %d", counts[kind], kind, want)
				}
			}
		})
	}
}

// unstructuredInto converts u into out, refusing fields out's type does not have.
func unstructuredInto(u *unstructured.Unstructured, out any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true)
}

// TestAgentDaemonSet: what docs/reference/agent.md asks of the agent's DaemonSet.
func TestAgentDaemonSet(t *testing.T) {
	for _, vs := range valueSets(t) {
		t.Run(vs.name, func(t *testing.T) {
			r := parse(t, render(t, vs.args...))
			spec := r.daemonSet.Spec.Template.Spec
			if !spec.HostNetwork {
				t.Error("the agent is not on the host network")
			}
			if spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
				t.Errorf("dnsPolicy %q; want ClusterFirstWithHostNet", spec.DNSPolicy)
			}
			us := r.daemonSet.Spec.UpdateStrategy
			if us.Type != appsv1.RollingUpdateDaemonSetStrategyType || us.RollingUpdate == nil || us.RollingUpdate.MaxSurge == nil {
				t.Fatalf("updateStrategy %+v; want RollingUpdate with maxSurge 0", us)
			}
			if surge, err := intstr.GetScaledValueFromIntOrPercent(us.RollingUpdate.MaxSurge, 100, true); err != nil || surge != 0 {
				t.Errorf("maxSurge %v: a new agent would wait for the old one's node lock", us.RollingUpdate.MaxSurge)
			}
			if got := envFieldPath(r.agent, "NODE_NAME"); got != "spec.nodeName" {
				t.Errorf("NODE_NAME comes from %q; want spec.nodeName", got)
			}
			if _, set := r.agentFlags["node-name"]; set {
				t.Error("--node-name is passed; the agent reads NODE_NAME")
			}

			// The socket's folder (and with it the node lock) is the host's /var/run/orbweaver.
			socket := r.agentFlags["socket"]
			if socket != "/var/run/orbweaver/agent.sock" {
				t.Errorf("--socket=%s; want the CNI plugin's default /var/run/orbweaver/agent.sock", socket)
			}
			hostPathAt := func(c corev1.Container, mountPath string) string {
				v := volumeAt(spec, c, mountPath)
				if v == nil || v.HostPath == nil {
					return ""
				}
				return v.HostPath.Path
			}
			if got := hostPathAt(r.agent, path.Dir(socket)); got != "/var/run/orbweaver" {
				t.Errorf("the agent's %s is host path %q; want /var/run/orbweaver", path.Dir(socket), got)
			}
			if got := hostPathAt(r.install, r.installFlags["bin-dir"]); got != "/opt/cni/bin" {
				t.Errorf("install-cni's --bin-dir=%s is host path %q; want /opt/cni/bin", r.installFlags["bin-dir"], got)
			}
			// Mounted whether or not a network config is written, so that turning it on
			// later changes no volume.
			if v := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool {
				return v.HostPath != nil && v.HostPath.Path == "/etc/cni/net.d"
			}); v < 0 || !slices.ContainsFunc(r.install.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == spec.Volumes[v].Name }) {
				t.Error("install-cni does not mount the host's /etc/cni/net.d")
			}
			if dir, ok := r.installFlags["conf-dir"]; ok && hostPathAt(r.install, dir) != "/etc/cni/net.d" {
				t.Errorf("install-cni's --conf-dir=%s is host path %q; want /etc/cni/net.d", dir, hostPathAt(r.install, dir))
			}

			for _, c := range []struct {
				probe      *corev1.Probe
				path, name string
			}{{r.agent.ReadinessProbe, "/readyz", "readiness"}, {r.agent.LivenessProbe, "/healthz", "liveness"}} {
				want := portOf(t, r.agentFlags["health-addr"])
				if c.probe == nil || c.probe.HTTPGet == nil || c.probe.HTTPGet.Path != c.path || c.probe.HTTPGet.Port.IntValue() != want {
					t.Errorf("%s probe %+v; want GET %s on port %d (--health-addr)", c.name, c.probe, c.path, want)
				}
			}
			if !slices.ContainsFunc(spec.Tolerations, func(tol corev1.Toleration) bool {
				return tol.Key == "" && tol.Operator == corev1.TolerationOpExists
			}) {
				t.Errorf("tolerations %v: the agent must run on every node", spec.Tolerations)
			}
		})
	}
	t.Run("default ports", func(t *testing.T) {
		r := parse(t, render(t))
		if r.agent.ReadinessProbe.HTTPGet.Port.IntValue() != 5710 || r.agentFlags["metrics-addr"] != ":5711" {
			t.Errorf("agent ports %v, --metrics-addr=%s; want SpiderPool's 5710 and 5711", r.agent.ReadinessProbe.HTTPGet.Port, r.agentFlags["metrics-addr"])
		}
	})
}

// portOf reads the port of a listen address such as ":5710".
func portOf(t testing.TB, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return n
}

// TestControllerDeployment: POD_NAMESPACE, probes on the health port, the Service in
// front of the webhook port under the name the certificate is made for.
func TestControllerDeployment(t *testing.T) {
	for _, vs := range valueSets(t) {
		t.Run(vs.name, func(t *testing.T) {
			r := parse(t, render(t, vs.args...))
			c := r.controller
			if got := envFieldPath(c, "POD_NAMESPACE"); got != "metadata.namespace" {
				t.Errorf("POD_NAMESPACE comes from %q; want metadata.namespace", got)
			}
			health := portOf(t, r.ctlFlags["health-addr"])
			for _, p := range []struct {
				probe      *corev1.Probe
				path, name string
			}{{c.ReadinessProbe, "/readyz", "readiness"}, {c.LivenessProbe, "/healthz", "liveness"}} {
				if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.IntValue() != health {
					t.Errorf("%s probe %+v; want GET %s on %d", p.name, p.probe, p.path, health)
				}
			}
			webhookPort, err := strconv.Atoi(r.ctlFlags["webhook-port"])
			if err != nil {
				t.Fatalf("--webhook-port=%q: %v", r.ctlFlags["webhook-port"], err)
			}
			svc := r.objs.get("Service", r.ctlFlags["webhook-service"])
			if svc == nil {
				t.Fatalf("no Service %q (--webhook-service)", r.ctlFlags["webhook-service"])
			}
			s := into[corev1.Service](t, svc)
			if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != 443 {
				t.Fatalf("Service ports %+v; want 443", s.Spec.Ports)
			}
			target := s.Spec.Ports[0].TargetPort
			if target.Type == intstr.String {
				i := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == target.StrVal })
				if i < 0 {
					t.Fatalf("Service targetPort %q names no container port", target.StrVal)
				}
				target = intstr.FromInt32(c.Ports[i].ContainerPort)
			}
			if target.IntValue() != webhookPort {
				t.Errorf("Service 443 goes to %d; the webhook server listens on %d", target.IntValue(), webhookPort)
			}
			for k, v := range s.Spec.Selector {
				if r.deployment.Spec.Template.Labels[k] != v {
					t.Errorf("Service selector %s=%s does not select the controller's pods (%v)", k, v, r.deployment.Spec.Template.Labels)
				}
			}
			if sc := c.SecurityContext; sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem && !under(c, r.ctlFlags["webhook-cert-dir"]) {
				t.Errorf("read-only root, and --webhook-cert-dir=%s is on no volume", r.ctlFlags["webhook-cert-dir"])
			}
			if _, set := r.ctlFlags["namespace"]; set {
				t.Error("--namespace is passed; the controller reads POD_NAMESPACE")
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		r := parse(t, render(t))
		if r.controller.ReadinessProbe.HTTPGet.Port.IntValue() != 5720 || r.ctlFlags["webhook-port"] != "5722" || *r.deployment.Spec.Replicas != 2 {
			t.Errorf("controller probes on %v, --webhook-port=%s, %d replicas; want 5720, 5722, 2",
				r.controller.ReadinessProbe.HTTPGet.Port, r.ctlFlags["webhook-port"], *r.deployment.Spec.Replicas)
		}
		// Release "orbweaver" gives the binary's own defaults, the names the docs use.
		for flag, want := range map[string]string{
			"webhook-service": "orbweaver-controller", "webhook-configuration": "orbweaver", "webhook-cert-secret": "orbweaver-webhook-certs",
		} {
			if got := r.ctlFlags[flag]; got != want {
				t.Errorf("--%s=%s; want %s", flag, got, want)
			}
		}
		if r.daemonSet.Name != "orbweaver-agent" || r.deployment.Name != "orbweaver-controller" {
			t.Errorf("workloads %s and %s; the CNI plugin's hints name orbweaver-agent", r.daemonSet.Name, r.deployment.Name)
		}
	})
}

// TestWebhookConfigurations: the chart's configurations are what pkg/webhook's
// Configurations builds for the controller's --webhook-configuration and
// --webhook-service: same names, paths, rules and policies; no caBundle.
func TestWebhookConfigurations(t *testing.T) {
	for _, vs := range valueSets(t) {
		t.Run(vs.name, func(t *testing.T) {
			r := parse(t, render(t, vs.args...))
			name, service := r.ctlFlags["webhook-configuration"], r.ctlFlags["webhook-service"]
			wantM, wantV := webhook.Configurations(name, func(p string) admissionregistrationv1.WebhookClientConfig {
				return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
					Namespace: namespace, Name: service, Path: ptr.To(p), Port: ptr.To[int32](443),
				}}
			})
			mu, vu := r.objs.get("MutatingWebhookConfiguration", name), r.objs.get("ValidatingWebhookConfiguration", name)
			if mu == nil || vu == nil {
				t.Fatalf("no Mutating- and ValidatingWebhookConfiguration named %q (--webhook-configuration)", name)
			}
			m, v := into[admissionregistrationv1.MutatingWebhookConfiguration](t, mu), into[admissionregistrationv1.ValidatingWebhookConfiguration](t, vu)
			type hook struct {
				Name          string
				ClientConfig  admissionregistrationv1.WebhookClientConfig
				Rules         []admissionregistrationv1.RuleWithOperations
				SideEffects   *admissionregistrationv1.SideEffectClass
				FailurePolicy *admissionregistrationv1.FailurePolicyType
				Versions      []string
			}
			var got, want []hook
			for _, w := range m.Webhooks {
				got = append(got, hook{w.Name, w.ClientConfig, w.Rules, w.SideEffects, w.FailurePolicy, w.AdmissionReviewVersions})
			}
			for _, w := range v.Webhooks {
				got = append(got, hook{w.Name, w.ClientConfig, w.Rules, w.SideEffects, w.FailurePolicy, w.AdmissionReviewVersions})
			}
			for _, w := range wantM.Webhooks {
				want = append(want, hook{w.Name, w.ClientConfig, w.Rules, w.SideEffects, w.FailurePolicy, w.AdmissionReviewVersions})
			}
			for _, w := range wantV.Webhooks {
				want = append(want, hook{w.Name, w.ClientConfig, w.Rules, w.SideEffects, w.FailurePolicy, w.AdmissionReviewVersions})
			}
			if !reflect.DeepEqual(got, want) {
				g, _ := json.MarshalIndent(got, "", " ")
				w, _ := json.MarshalIndent(want, "", " ")
				t.Errorf("webhooks differ from webhook.Configurations:\nchart: %s\nwant:  %s", g, w)
			}
			if len(got) != 2*len(webhook.Paths) {
				t.Errorf("%d webhooks; want %d (a mutating and a validating per kind)", len(got), 2*len(webhook.Paths))
			}
			// Not even an empty one: helm's upgrade would write it over the controller's CA.
			for _, u := range []*unstructured.Unstructured{mu, vu} {
				hooks, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
				for _, h := range hooks {
					if _, found, _ := unstructured.NestedFieldNoCopy(h.(map[string]any), "clientConfig", "caBundle"); found {
						t.Errorf("%s %s: a webhook has a caBundle; the controller writes it", u.GetKind(), u.GetName())
					}
				}
			}
		})
	}
}

// TestFlagsExist: every flag the templates pass is one the binaries define (their -h).
func TestFlagsExist(t *testing.T) {
	agentFlags, ctlFlags := flagNames(t, binary(t, "orbweaver-agent")), flagNames(t, binary(t, "orbweaver-controller"))
	installFlags := flagNames(t, binary(t, "orbweaver-agent"), "install-cni")
	for _, vs := range valueSets(t) {
		t.Run(vs.name, func(t *testing.T) {
			r := parse(t, render(t, vs.args...))
			for _, c := range []struct {
				name    string
				flags   map[string]string
				defined map[string]bool
			}{
				{"orbweaver-agent", r.agentFlags, agentFlags},
				{"orbweaver-agent install-cni", r.installFlags, installFlags},
				{"orbweaver-controller", r.ctlFlags, ctlFlags},
			} {
				for f := range c.flags {
					if !c.defined[f] {
						t.Errorf("the chart passes --%s to %s, which has no such flag", f, c.name)
					}
				}
			}
		})
	}
}

// TestValuesReachFlags: each value turns into the flag it documents, on every binary that
// has it (agent and controller must agree on the families and StatefulSet retention).
func TestValuesReachFlags(t *testing.T) {
	tests := []struct {
		set   string
		agent map[string]string // flag: value on the agent
		ctl   map[string]string // and on the controller
	}{
		{set: "ipam.enableIPv4=false", agent: map[string]string{"enable-ipv4": "false"}, ctl: map[string]string{"enable-ipv4": "false"}},
		{set: "ipam.enableIPv6=false", agent: map[string]string{"enable-ipv6": "false"}, ctl: map[string]string{"enable-ipv6": "false"}},
		{set: "ipam.enableStatefulSet=false", agent: map[string]string{"enable-statefulset": "false"}, ctl: map[string]string{"enable-statefulset": "false"}},
		{set: "ipam.autoPool.defaultIPNumber=0", ctl: map[string]string{"auto-pool-default-ip-number": "0"}},
		{set: "ipam.autoPool.thirdPartyKinds[0].version=v1,ipam.autoPool.thirdPartyKinds[0].kind=Widget",
			ctl: map[string]string{"auto-pool-third-party-kinds": "v1/Widget"}},
		{set: "gc.enabled=false", ctl: map[string]string{"gc-enabled": "false"}},
		{set: "gc.goneDelay=2m", ctl: map[string]string{"gc-gone-delay": "2m"}},
		{set: "gc.additionalGraceDelay=5s", ctl: map[string]string{"gc-additional-grace-delay": "5s"}},
		{set: "gc.releaseTerminatingOnReadyNode=false", ctl: map[string]string{"gc-release-terminating-on-ready-node": "false"}},
		{set: "gc.releaseTerminatingOnNotReadyNode=false", ctl: map[string]string{"gc-release-terminating-on-not-ready-node": "false"}},
		{set: "gc.defaultReclaimPolicy=Never", ctl: map[string]string{"gc-default-reclaim-policy": "Never"}},
		{set: "gc.defaultReclaimPolicy=1h", ctl: map[string]string{"gc-default-reclaim-policy": "1h"}},
		{set: "gc.resyncPeriod=1m", ctl: map[string]string{"gc-resync-period": "1m"}},
		{set: "eip.clusterID=east,eip.orphanInterval=1h", ctl: map[string]string{"cluster-id": "east", "eip-orphan-interval": "1h"}},
		{set: "eip.aws.region=us-east-1,eip.aws.endpoint=http://127.0.0.1:9000", ctl: map[string]string{"eip-aws-region": "us-east-1", "eip-aws-endpoint": "http://127.0.0.1:9000"}},
		{set: "eip.defaultProvider=tencent,eip.vendorAnnotations=true", ctl: map[string]string{"eip-default-provider": "tencent", "eip-vendor-annotations": "true"}},
		{set: "eip.podRequests=open", ctl: map[string]string{"eip-pod-requests": "open"}},
		{set: "eip.orphanInterval=10m", ctl: map[string]string{"eip-pod-requests": "restricted"}}, // the default
		{set: "eip.alibaba.region=cn-hangzhou", ctl: map[string]string{"eip-alibaba-region": "cn-hangzhou"}},
		{set: "eip.tencent.region=ap-guangzhou", ctl: map[string]string{"eip-tencent-region": "ap-guangzhou"}},
		{set: "agent.reserveSize=-1", agent: map[string]string{"reserve-size": "-1"}},
		{set: "agent.autoPoolWait=45s", agent: map[string]string{"auto-pool-wait": "45s"}},
		{set: "agent.multusClusterNetwork=kube-system/net1", agent: map[string]string{"multus-cluster-network": "kube-system/net1"}},
		{set: "agent.healthPort=9000", agent: map[string]string{"health-addr": ":9000"}},
		{set: "controller.webhookPort=9443", ctl: map[string]string{"webhook-port": "9443"}},
		{set: "webhook.configurationName=my-hooks", ctl: map[string]string{"webhook-configuration": "my-hooks"}},
		{set: "fullnameOverride=ow", ctl: map[string]string{"webhook-service": "ow-controller", "webhook-configuration": "ow", "webhook-cert-secret": "ow-webhook-certs"}},
		{set: "metrics.secure=true", ctl: map[string]string{"metrics-secure": ""}},
		{set: "tls.method=certManager", ctl: map[string]string{"manage-webhook-certs": "false"}},
	}
	for _, tt := range tests {
		t.Run(tt.set, func(t *testing.T) {
			r := parse(t, render(t, "--set", tt.set))
			for _, c := range []struct {
				name      string
				got, want map[string]string
			}{{"agent", r.agentFlags, tt.agent}, {"controller", r.ctlFlags, tt.ctl}} {
				for f, want := range c.want {
					if got, ok := c.got[f]; !ok || got != want {
						t.Errorf("%s: --%s=%q (set: %v); want %q", c.name, f, got, ok, want)
					}
				}
			}
		})
	}
}

// TestSchemaRejects: values.schema.json refuses bad values before anything renders,
// naming the value.
func TestSchemaRejects(t *testing.T) {
	tests := []struct {
		args []string
		want string // in helm's error
	}{
		{[]string{"--set", "ipam.enableIPv4=notabool"}, "/ipam/enableIPv4"},
		{[]string{"--set", "ipam.enableIPv4=false,ipam.enableIPv6=false"}, "/ipam/enableIPv6"},
		{[]string{"--set", "ipam.autoPool.defaultIPNumber=-1"}, "/ipam/autoPool/defaultIPNumber"},
		{[]string{"--set", "ipam.autoPool.thirdPartyKinds[0].kind=CloneSet"}, "/ipam/autoPool/thirdPartyKinds/0"},
		{[]string{"--set", "gc.goneDelay=soon"}, "/gc/goneDelay"},
		{[]string{"--set", "gc.defaultReclaimPolicy=0s"}, "/gc/defaultReclaimPolicy"},
		{[]string{"--set", "gc.defaultReclaimPolicy=Always"}, "/gc/defaultReclaimPolicy"},
		{[]string{"--set", "gc.resyncPeriod=0m"}, "/gc/resyncPeriod"},
		{[]string{"--set", "agent.reserveSzie=1"}, "reserveSzie"},
		{[]string{"--set", "eip.aws.endpoint=127.0.0.1:9000"}, "/eip/aws/endpoint"},
		{[]string{"--set", "eip.orphanInterval=often"}, "/eip/orphanInterval"},
		{[]string{"--set", "eip.gcp.region=x"}, "gcp"},
		{[]string{"--set", "eip.podRequests=everyone"}, "/eip/podRequests"},
		{[]string{"--set", "agent.logLevel=verbose"}, "/agent/logLevel"},
		{[]string{"--set", "agent.extraArgs[0]=-v"}, "/agent/extraArgs/0"},
		{[]string{"--set", "controller.replicas=0"}, "/controller/replicas"},
		{[]string{"--set", "webhook.timeoutSeconds=31"}, "/webhook/timeoutSeconds"},
		{[]string{"--set", "cni.conflist.fileName=10-orbweaver.conf"}, "/cni/conflist/fileName"},
		{[]string{"--set", "cni.binDir=opt/cni/bin"}, "/cni/binDir"},
		{[]string{"--set", "defaultPools[0].name=p,defaultPools[0].spec.ips[0]=10.0.0.1"}, "/defaultPools/0/spec"},
		{[]string{"--set", "defaultPools[0].name=Bad_Name,defaultPools[0].spec.subnet=10.0.0.0/24,defaultPools[0].spec.ips[0]=10.0.0.1"}, "/defaultPools/0/name"},
		{[]string{"--set", "tls.method=vault"}, "/tls/method"},
		{[]string{"--set", "tls.method=provided,tls.provided.caBundle=Zm9v"}, "/tls/provided/secretName"},
		{[]string{"--set", "tls.method=provided,tls.provided.secretName=mine"}, "/tls/provided/caBundle"},
		{[]string{"--set", "tls.certManager.duration=1y"}, "/tls/certManager/duration"},
		{[]string{"--set", "controller.podDisruptionBudget.maxUnavailable=-1"}, "/controller/podDisruptionBudget/maxUnavailable"},
		{[]string{"--set", "controller.serviceAccount.role=x"}, "role"},
		{[]string{"--set", "agent.extraVolumeMounts[0].name=x"}, "/agent/extraVolumeMounts/0"},
		{[]string{"--set", "metrics.secure=yes"}, "/metrics/secure"},
		// Past the schema, the templates refuse it too.
		{[]string{"--skip-schema-validation", "--set", "ipam.enableIPv4=false,ipam.enableIPv6=false"}, "enable at least one"},
		{[]string{"--set", "tls.method=provided,tls.provided.secretName=mine,tls.provided.caBundle=Zm9v"}, "base64 of the PEM CA"},
		{[]string{"--set", "tls.method=certManager,tls.certManager.issuerRef.kind=ClusterIssuer"}, "issuerRef has no name"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := templateRaw(t, tt.args...)
			if err == nil {
				t.Fatal("helm template accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error does not name %q: %v", tt.want, err)
			}
		})
	}
}

// TestDefaultPools: pools and subnets are post-install/post-upgrade hooks, subnets first,
// never deleted by helm (hook-failed only: not the default before-hook-creation), with
// the spec of the values; the default values create none.
func TestDefaultPools(t *testing.T) {
	if objs := render(t); len(objs.ofKind("SpiderIPPool"))+len(objs.ofKind("SpiderSubnet")) != 0 {
		t.Fatal("the default values create pools")
	}
	valuesFile := valueSets(t)[1].args[1]
	raw, err := os.ReadFile(valuesFile)
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		DefaultPools, DefaultSubnets []struct {
			Name string         `json:"name"`
			Spec map[string]any `json:"spec"`
		}
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	objs := render(t, "-f", valuesFile)
	weight := map[string]int{}
	for _, c := range []struct {
		kind  string
		items []struct {
			Name string         `json:"name"`
			Spec map[string]any `json:"spec"`
		}
	}{{"SpiderSubnet", values.DefaultSubnets}, {"SpiderIPPool", values.DefaultPools}} {
		if len(c.items) == 0 || len(objs.ofKind(c.kind)) != len(c.items) {
			t.Fatalf("%d %s objects for %d in the values", len(objs.ofKind(c.kind)), c.kind, len(c.items))
		}
		for _, item := range c.items {
			u := objs.get(c.kind, item.Name)
			if u == nil {
				t.Fatalf("no %s %s", c.kind, item.Name)
			}
			a := u.GetAnnotations()
			if a["helm.sh/hook"] != "post-install,post-upgrade" || a["helm.sh/hook-delete-policy"] != "hook-failed" {
				t.Errorf("%s %s: hook annotations %v; want post-install,post-upgrade and delete policy hook-failed only", c.kind, item.Name, a)
			}
			w, err := strconv.Atoi(a["helm.sh/hook-weight"])
			if err != nil {
				t.Errorf("%s %s: hook weight %q: %v", c.kind, item.Name, a["helm.sh/hook-weight"], err)
			}
			weight[c.kind] = w
			if got, _, _ := unstructured.NestedMap(u.Object, "spec"); !reflect.DeepEqual(got, item.Spec) {
				t.Errorf("%s %s: spec %v; want the values' %v", c.kind, item.Name, got, item.Spec)
			}
		}
	}
	if weight["SpiderSubnet"] >= weight["SpiderIPPool"] {
		t.Errorf("hook weights %v: subnets must come before the pools checked against them", weight)
	}
}

// TestInstallCNI runs the init container, `orbweaver-agent install-cni` built from this
// tree, with the rendered flags, each folder it names mapped to a temporary one: it
// installs the plugin as orbweaver, writes the network config (the ConfigMap's) only when
// enabled, leaves no temporary file, and can run again (an upgrade, a restart).
func TestInstallCNI(t *testing.T) {
	agentBin := binary(t, "orbweaver-agent")
	for _, vs := range valueSets(t) {
		t.Run(vs.name, func(t *testing.T) {
			r := parse(t, render(t, vs.args...))
			spec := r.daemonSet.Spec.Template.Spec
			if r.install.Image != r.agent.Image || !slices.Equal(r.install.Command, r.agent.Command) {
				t.Errorf("install-cni runs %s %v; want the agent's image and binary, %s %v", r.install.Image, r.install.Command, r.agent.Image, r.agent.Command)
			}
			if plugin := r.installFlags["plugin"]; path.Base(plugin) != "orbweaver" {
				t.Errorf("--plugin=%s: installed under its own name, it must be orbweaver", plugin)
			}

			// The config it would write: the ConfigMap key mounted at --conflist.
			conflistPath, writesConflist := r.installFlags["conflist"]
			var conflist string
			if writesConflist {
				v := volumeAt(spec, r.install, path.Dir(conflistPath))
				if v == nil || v.ConfigMap == nil {
					t.Fatalf("--conflist=%s is not in a ConfigMap volume", conflistPath)
				}
				cm := r.objs.get("ConfigMap", v.ConfigMap.Name)
				if cm == nil {
					t.Fatalf("no ConfigMap %s", v.ConfigMap.Name)
				}
				conflist = into[corev1.ConfigMap](t, cm).Data[path.Base(conflistPath)]
				var cfg struct {
					Plugins []struct {
						IPAM struct {
							Type   string `json:"type"`
							Socket string `json:"ipam_unix_socket_path"`
						} `json:"ipam"`
					} `json:"plugins"`
				}
				if err := json.Unmarshal([]byte(conflist), &cfg); err != nil {
					t.Fatalf("the network config is not JSON: %v\n%s", err, conflist)
				}
				uses := false
				for _, p := range cfg.Plugins {
					uses = uses || p.IPAM.Type == "orbweaver" && (p.IPAM.Socket == "" || p.IPAM.Socket == r.agentFlags["socket"])
				}
				if !uses {
					t.Errorf("no plugin of the network config uses orbweaver on the agent's socket:\n%s", conflist)
				}
			}

			// The container's paths, in a temporary folder: the image's plugin, the host's
			// folders, the ConfigMap's file.
			dir := t.TempDir()
			local := func(p string) string { return filepath.Join(dir, filepath.FromSlash(p)) }
			plugin := "#!/bin/sh\necho the orbweaver plugin\n"
			files := map[string]string{r.installFlags["plugin"]: plugin}
			if writesConflist {
				files[conflistPath] = conflist
			}
			for p, content := range files {
				if err := os.MkdirAll(path.Dir(local(p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(local(p), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{r.install.Args[0]}
			for _, f := range []string{"plugin", "bin-dir", "conflist", "conf-dir"} {
				if v, ok := r.installFlags[f]; ok {
					args = append(args, "--"+f+"="+local(v))
				}
			}
			installed := []string{"orbweaver"}
			if v, ok := r.installFlags["also-as"]; ok {
				args = append(args, "--also-as="+v) // names, not paths
				installed = append(installed, strings.Split(v, ",")...)
			}
			if len(args) != len(r.install.Args) {
				t.Fatalf("install-cni has flags this test does not map: %v", r.install.Args)
			}
			for run := 1; run <= 2; run++ {
				out, err := exec.Command(agentBin, args...).CombinedOutput()
				if err != nil {
					t.Fatalf("run %d: orbweaver-agent %v: %v: %s", run, args, err, out)
				}
			}
			assertFiles(t, local(r.installFlags["bin-dir"]), installed, plugin, 0o755)
			if confDir, ok := r.installFlags["conf-dir"]; ok != writesConflist {
				t.Errorf("--conf-dir given: %v; --conflist given: %v", ok, writesConflist)
			} else if ok {
				assertFiles(t, local(confDir), []string{path.Base(conflistPath)}, conflist, 0o644)
			}
		})
	}
}

// assertFiles checks that dir holds exactly names, each with content and mode.
func assertFiles(t *testing.T, dir string, names []string, content string, mode os.FileMode) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s holds %v; want %v", dir, got, want)
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != content || st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, content %q; want %v, %q", p, st.Mode().Perm(), b, mode, content)
		}
	}
}
