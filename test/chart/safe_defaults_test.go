package chart

import (
	"encoding/base64"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/orbweaver-ipam/orbweaver/pkg/webhook"
)

// selects reports whether a label selector picks the controller's pods.
func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("selector %v: %v", sel, err)
	}
	return !s.Empty() && s.Matches(labels.Set(podLabels))
}

// pdbOf returns the PodDisruptionBudget selecting the controller's pods, or nil.
func pdbOf(t *testing.T, r rendered) *policyv1.PodDisruptionBudget {
	t.Helper()
	var out *policyv1.PodDisruptionBudget
	for _, u := range r.objs.ofKind("PodDisruptionBudget") {
		p := into[policyv1.PodDisruptionBudget](t, u)
		if !selects(t, p.Spec.Selector, r.deployment.Spec.Template.Labels) {
			t.Errorf("PodDisruptionBudget %s does not select the controller's pods", p.Name)
			continue
		}
		if out != nil {
			t.Errorf("two PodDisruptionBudgets of the controller")
		}
		out = p
	}
	return out
}

// TestSafeDefaults: by default the controller runs two replicas on different nodes
// (required anti-affinity on the host network, preferred off it) under a
// PodDisruptionBudget, and both pods run with the runtime's default seccomp profile and
// the containers' hardened securityContexts; each of those can be changed.
func TestSafeDefaults(t *testing.T) {
	r := parse(t, render(t))
	if got := *r.deployment.Spec.Replicas; got != 2 {
		t.Errorf("controller replicas %d; want 2", got)
	}
	podLabels := r.deployment.Spec.Template.Labels
	aff := r.deployment.Spec.Template.Spec.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Fatalf("affinity %+v; want one required pod anti-affinity term (host network)", aff)
	}
	term := aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0]
	if term.TopologyKey != corev1.LabelHostname || !selects(t, term.LabelSelector, podLabels) {
		t.Errorf("anti-affinity term %+v; want the controller's pods by %s", term, corev1.LabelHostname)
	}
	pdb := pdbOf(t, r)
	if pdb == nil {
		t.Fatal("no PodDisruptionBudget for the controller's two replicas")
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
		t.Errorf("PodDisruptionBudget %+v; want maxUnavailable 1 only", pdb.Spec)
	}
	for name, spec := range map[string]corev1.PodSpec{"agent": r.daemonSet.Spec.Template.Spec, "controller": r.deployment.Spec.Template.Spec} {
		sc := spec.SecurityContext
		if sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s pod securityContext %+v; want seccompProfile RuntimeDefault", name, sc)
		}
		for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
			csc := c.SecurityContext
			if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
				csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
				csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("%s container %s securityContext %+v; want no privilege escalation, a read-only root, every capability dropped", name, c.Name, csc)
			}
		}
	}
	if csc := r.controller.SecurityContext; csc.RunAsNonRoot == nil || !*csc.RunAsNonRoot {
		t.Errorf("controller securityContext %+v; want runAsNonRoot", csc)
	}

	tests := []struct {
		name  string
		set   string
		check func(t *testing.T, r rendered)
	}{
		{"off the host network the anti-affinity is preferred", "controller.hostNetwork=false", func(t *testing.T, r rendered) {
			a := r.deployment.Spec.Template.Spec.Affinity.PodAntiAffinity
			if a == nil || len(a.RequiredDuringSchedulingIgnoredDuringExecution) != 0 || len(a.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
				t.Fatalf("pod anti-affinity %+v; want one preferred term", a)
			}
			term := a.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
			if term.TopologyKey != corev1.LabelHostname || !selects(t, term.LabelSelector, r.deployment.Spec.Template.Labels) {
				t.Errorf("term %+v; want the controller's pods by hostname", term)
			}
		}},
		{"an affinity of the values replaces the default", "controller.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=x,controller.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
			func(t *testing.T, r rendered) {
				a := r.deployment.Spec.Template.Spec.Affinity
				if a.PodAntiAffinity != nil || a.NodeAffinity == nil {
					t.Errorf("affinity %+v; want the values' node affinity alone", a)
				}
			}},
		{"one replica has no budget", "controller.replicas=1", func(t *testing.T, r rendered) {
			if pdbOf(t, r) != nil {
				t.Error("a PodDisruptionBudget for one replica blocks every drain of its node")
			}
		}},
		{"budget off", "controller.podDisruptionBudget.enabled=false", func(t *testing.T, r rendered) {
			if pdbOf(t, r) != nil {
				t.Error("a PodDisruptionBudget although disabled")
			}
		}},
		{"minAvailable replaces maxUnavailable", "controller.replicas=3,controller.podDisruptionBudget.minAvailable=2", func(t *testing.T, r rendered) {
			p := pdbOf(t, r)
			if p == nil || p.Spec.MaxUnavailable != nil || p.Spec.MinAvailable == nil || *p.Spec.MinAvailable != intstr.FromInt32(2) {
				t.Errorf("PodDisruptionBudget %+v; want minAvailable 2 only", p)
			}
		}},
		{"topology spread gets the pods' selector", "controller.topologySpreadConstraints[0].maxSkew=1,controller.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone,controller.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
			func(t *testing.T, r rendered) {
				c := r.deployment.Spec.Template.Spec.TopologySpreadConstraints
				if len(c) != 1 || c[0].TopologyKey != corev1.LabelTopologyZone || c[0].MaxSkew != 1 || !selects(t, c[0].LabelSelector, r.deployment.Spec.Template.Labels) {
					t.Errorf("topologySpreadConstraints %+v; want the zone spread over the controller's pods", c)
				}
			}},
		{"a topology spread's own selector is kept", "controller.topologySpreadConstraints[0].maxSkew=1,controller.topologySpreadConstraints[0].topologyKey=zone,controller.topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway,controller.topologySpreadConstraints[0].labelSelector.matchLabels.a=b",
			func(t *testing.T, r rendered) {
				c := r.deployment.Spec.Template.Spec.TopologySpreadConstraints
				if len(c) != 1 || !reflect.DeepEqual(c[0].LabelSelector.MatchLabels, map[string]string{"a": "b"}) {
					t.Errorf("topologySpreadConstraints %+v; want the values' selector", c)
				}
			}},
		{"seccomp can be changed", "agent.podSecurityContext.seccompProfile.type=Unconfined", func(t *testing.T, r rendered) {
			if sc := r.daemonSet.Spec.Template.Spec.SecurityContext; sc.SeccompProfile.Type != corev1.SeccompProfileTypeUnconfined {
				t.Errorf("agent pod securityContext %+v; want the values' Unconfined", sc)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, parse(t, render(t, "--set", tt.set))) })
	}
}

// TestServiceAccountAnnotations: each component's annotations go on its ServiceAccount
// only (a cloud role for the controller's EIP calls must not reach every node's agent);
// the deprecated top-level serviceAccount.annotations still go on both, and a
// component's own value wins on the same key.
func TestServiceAccountAnnotations(t *testing.T) {
	tests := []struct {
		set               string
		agent, controller map[string]string
	}{
		{"controller.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:eip", nil, map[string]string{"eks.amazonaws.com/role-arn": "arn:eip"}},
		{"agent.serviceAccount.annotations.a=one", map[string]string{"a": "one"}, nil},
		{"serviceAccount.annotations.old=both", map[string]string{"old": "both"}, map[string]string{"old": "both"}},
		{"serviceAccount.annotations.k=old,serviceAccount.annotations.o=x,controller.serviceAccount.annotations.k=new",
			map[string]string{"k": "old", "o": "x"}, map[string]string{"k": "new", "o": "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.set, func(t *testing.T) {
			r := parse(t, render(t, "--set", tt.set))
			for _, c := range []struct {
				sa   string
				want map[string]string
			}{{r.daemonSet.Spec.Template.Spec.ServiceAccountName, tt.agent}, {r.deployment.Spec.Template.Spec.ServiceAccountName, tt.controller}} {
				u := r.objs.get("ServiceAccount", c.sa)
				if u == nil {
					t.Fatalf("no ServiceAccount %s", c.sa)
				}
				if got := u.GetAnnotations(); !maps.Equal(got, c.want) {
					t.Errorf("ServiceAccount %s annotations %v; want %v", c.sa, got, c.want)
				}
			}
		})
	}
}

// TestExtraEnvAndVolumes: each component's extraEnv, extraVolumes and extraVolumeMounts
// land in its own pod and main container, beside the chart's, and nowhere else.
func TestExtraEnvAndVolumes(t *testing.T) {
	for _, comp := range []string{"agent", "controller"} {
		t.Run(comp, func(t *testing.T) {
			r := parse(t, render(t, "--set", strings.NewReplacer("C", comp).Replace(
				"C.extraEnv[0].name=EXTRA,C.extraEnv[0].value=one,"+
					"C.extraVolumes[0].name=extra,C.extraVolumes[0].emptyDir.medium=Memory,"+
					"C.extraVolumeMounts[0].name=extra,C.extraVolumeMounts[0].mountPath=/extra")))
			type pod struct {
				spec corev1.PodSpec
				main corev1.Container
			}
			pods := map[string]pod{"agent": {r.daemonSet.Spec.Template.Spec, r.agent}, "controller": {r.deployment.Spec.Template.Spec, r.controller}}
			for name, p := range pods {
				hasEnv := slices.ContainsFunc(p.main.Env, func(e corev1.EnvVar) bool { return e.Name == "EXTRA" && e.Value == "one" })
				v := volumeAt(p.spec, p.main, "/extra")
				hasVolume := v != nil && v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory
				if want := name == comp; hasEnv != want || hasVolume != want {
					t.Errorf("%s: EXTRA in its env: %v, the extra volume at /extra: %v; want %v", name, hasEnv, hasVolume, want)
				}
			}
			// The chart's own stay.
			if envFieldPath(r.agent, "NODE_NAME") == "" || envFieldPath(r.controller, "POD_NAMESPACE") == "" {
				t.Error("the chart's own environment is gone")
			}
		})
	}
}

// certVolumeSecret returns the Secret mounted at the controller's --webhook-cert-dir.
func certVolumeSecret(t *testing.T, r rendered) string {
	t.Helper()
	v := volumeAt(r.deployment.Spec.Template.Spec, r.controller, r.ctlFlags["webhook-cert-dir"])
	if v == nil || v.Secret == nil {
		return ""
	}
	return v.Secret.SecretName
}

// webhookHooks returns every webhook of both configurations, unstructured.
func webhookHooks(t *testing.T, r rendered) (configs []*unstructured.Unstructured, hooks []map[string]any) {
	t.Helper()
	name := r.ctlFlags["webhook-configuration"]
	if name == "" {
		name = "orbweaver"
	}
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		u := r.objs.get(kind, name)
		if u == nil {
			t.Fatalf("no %s %s", kind, name)
		}
		configs = append(configs, u)
		list, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
		for _, h := range list {
			hooks = append(hooks, h.(map[string]any))
		}
	}
	return configs, hooks
}

// TestTLSMethods renders each tls.method: who makes the certificate, where the webhook
// server reads it, who writes the webhooks' caBundle, and what the controller may touch.
func TestTLSMethods(t *testing.T) {
	services := func(r rendered) []any {
		svc := r.ctlFlags["webhook-service"]
		return []any{svc + "." + namespace + ".svc", svc + "." + namespace + ".svc.cluster.local"}
	}
	certSecretRule := func(r rendered) bool {
		g := grantsOf(t, r.objs, namespace, r.deployment.Spec.Template.Spec.ServiceAccountName)
		return slices.ContainsFunc(g.all(), func(rule rbacv1.PolicyRule) bool { return has(rule.APIGroups, "") && has(rule.Resources, "secrets") })
	}
	patchesWebhooks := func(r rendered) bool {
		g := grantsOf(t, r.objs, namespace, r.deployment.Spec.Template.Spec.ServiceAccountName)
		return allows(g.cluster, need{group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations", verb: "patch", name: "orbweaver"})
	}

	t.Run("auto", func(t *testing.T) {
		r := parse(t, render(t))
		if v, set := r.ctlFlags["manage-webhook-certs"]; set && v != "true" || r.ctlFlags["webhook-cert-secret"] == "" {
			t.Errorf("--manage-webhook-certs=%q, --webhook-cert-secret=%q; want the controller's own certificate", v, r.ctlFlags["webhook-cert-secret"])
		}
		if len(r.objs.ofKind("Certificate"))+len(r.objs.ofKind("Issuer")) != 0 {
			t.Error("cert-manager objects rendered")
		}
		configs, hooks := webhookHooks(t, r)
		for _, c := range configs {
			if len(c.GetAnnotations()) != 0 {
				t.Errorf("%s annotations %v; want none", c.GetKind(), c.GetAnnotations())
			}
		}
		for _, h := range hooks {
			if _, found, _ := unstructured.NestedFieldNoCopy(h, "clientConfig", "caBundle"); found {
				t.Errorf("webhook %v has a caBundle; the controller writes it", h["name"])
			}
		}
		if !certSecretRule(r) || !patchesWebhooks(r) {
			t.Error("the controller may not keep its Secret or write the caBundle")
		}
	})

	for _, tt := range []struct {
		name   string
		args   []string
		issuer map[string]any // the Certificate's issuerRef
		own    bool           // the chart's self-signed Issuer is rendered
	}{
		{"certManager, self-signed", []string{"--set", "tls.method=certManager"},
			map[string]any{"name": "orbweaver-webhook", "kind": "Issuer", "group": "cert-manager.io"}, true},
		{"certManager, a ClusterIssuer", []string{"--set", "tls.method=certManager,tls.certManager.issuerRef.name=corp-ca,tls.certManager.issuerRef.kind=ClusterIssuer"},
			map[string]any{"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := parse(t, render(t, tt.args...))
			if r.ctlFlags["manage-webhook-certs"] != "false" {
				t.Errorf("--manage-webhook-certs=%q; want false", r.ctlFlags["manage-webhook-certs"])
			}
			defined := flagNames(t, binary(t, "orbweaver-controller"))
			for f := range r.ctlFlags {
				if !defined[f] {
					t.Errorf("the chart passes --%s, which orbweaver-controller does not have", f)
				}
			}
			certs := r.objs.ofKind("Certificate")
			if len(certs) != 1 {
				t.Fatalf("%d Certificates; want 1", len(certs))
			}
			cert := certs[0]
			if cert.GetAPIVersion() != "cert-manager.io/v1" || cert.GetNamespace() != namespace {
				t.Errorf("Certificate %s/%s of %s", cert.GetNamespace(), cert.GetName(), cert.GetAPIVersion())
			}
			secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
			if mounted := certVolumeSecret(t, r); secretName == "" || mounted != secretName {
				t.Errorf("the Certificate writes Secret %q; --webhook-cert-dir=%s is Secret %q", secretName, r.ctlFlags["webhook-cert-dir"], mounted)
			}
			dns, _, _ := unstructured.NestedSlice(cert.Object, "spec", "dnsNames")
			if !reflect.DeepEqual(dns, services(r)) {
				t.Errorf("dnsNames %v; want the webhook Service's %v", dns, services(r))
			}
			ref, _, _ := unstructured.NestedMap(cert.Object, "spec", "issuerRef")
			if !reflect.DeepEqual(ref, tt.issuer) {
				t.Errorf("issuerRef %v; want %v", ref, tt.issuer)
			}
			issuers := r.objs.ofKind("Issuer")
			if tt.own {
				if len(issuers) != 1 || issuers[0].GetName() != tt.issuer["name"] {
					t.Fatalf("Issuers %v; want the self-signed %s", issuers, tt.issuer["name"])
				}
				if ss, found, _ := unstructured.NestedMap(issuers[0].Object, "spec", "selfSigned"); !found || len(ss) != 0 {
					t.Errorf("Issuer spec %v; want selfSigned", issuers[0].Object["spec"])
				}
			} else if len(issuers) != 0 {
				t.Errorf("%d Issuers rendered beside the values' issuer", len(issuers))
			}
			configs, hooks := webhookHooks(t, r)
			for _, c := range configs {
				if got, want := c.GetAnnotations()["cert-manager.io/inject-ca-from"], namespace+"/"+cert.GetName(); got != want {
					t.Errorf("%s inject-ca-from %q; want %q", c.GetKind(), got, want)
				}
			}
			for _, h := range hooks {
				if _, found, _ := unstructured.NestedFieldNoCopy(h, "clientConfig", "caBundle"); found {
					t.Errorf("webhook %v has a caBundle; cert-manager's cainjector writes it", h["name"])
				}
			}
			if certSecretRule(r) || patchesWebhooks(r) {
				t.Error("the controller may still touch Secrets or the webhook configurations; cert-manager does that")
			}
		})
	}

	t.Run("provided", func(t *testing.T) {
		ca := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
		bundle := base64.StdEncoding.EncodeToString([]byte(ca))
		r := parse(t, render(t, "--set", "tls.method=provided,tls.provided.secretName=my-webhook-tls,tls.provided.caBundle="+bundle))
		if r.ctlFlags["manage-webhook-certs"] != "false" {
			t.Errorf("--manage-webhook-certs=%q; want false", r.ctlFlags["manage-webhook-certs"])
		}
		if got := certVolumeSecret(t, r); got != "my-webhook-tls" {
			t.Errorf("--webhook-cert-dir=%s is Secret %q; want my-webhook-tls", r.ctlFlags["webhook-cert-dir"], got)
		}
		if len(r.objs.ofKind("Certificate")) != 0 {
			t.Error("a Certificate rendered")
		}
		_, hooks := webhookHooks(t, r)
		if len(hooks) != 2*len(webhook.Paths) {
			t.Fatalf("%d webhooks", len(hooks))
		}
		for _, h := range hooks {
			got, _, _ := unstructured.NestedString(h, "clientConfig", "caBundle")
			if got != bundle {
				t.Errorf("webhook %v caBundle %q; want the values' %q", h["name"], got, bundle)
			}
		}
		if certSecretRule(r) || patchesWebhooks(r) {
			t.Error("the controller may still touch Secrets or the webhook configurations")
		}
		// The typed form: the caBundle decodes to the CA (base64 in YAML, bytes in Go).
		for _, u := range r.objs.ofKind("ValidatingWebhookConfiguration") {
			for _, h := range into[admissionregistrationv1.ValidatingWebhookConfiguration](t, u).Webhooks {
				if string(h.ClientConfig.CABundle) != ca {
					t.Errorf("webhook %s caBundle decodes to %q; want the CA", h.Name, h.ClientConfig.CABundle)
				}
			}
		}
	})
}

// TestMetricsSecure: metrics.secure turns on the controller's --metrics-secure and gives
// it what the API server's checks of each scrape need (TokenReview,
// SubjectAccessReview), plus a ClusterRole to bind to Prometheus; off, neither.
func TestMetricsSecure(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "secure"}[secure], func(t *testing.T) {
			var args []string
			if secure {
				args = []string{"--set", "metrics.secure=true"}
			}
			r := parse(t, render(t, args...))
			if _, set := r.ctlFlags["metrics-secure"]; set != secure {
				t.Errorf("--metrics-secure passed: %v; want %v", set, secure)
			}
			g := grantsOf(t, r.objs, namespace, r.deployment.Spec.Template.Spec.ServiceAccountName)
			for _, n := range []need{
				{group: "authentication.k8s.io", resource: "tokenreviews", verb: "create"},
				{group: "authorization.k8s.io", resource: "subjectaccessreviews", verb: "create"},
			} {
				if got := allows(g.cluster, n); got != secure {
					t.Errorf("the controller may %s: %v; want %v", n, got, secure)
				}
			}
			reader := r.objs.get("ClusterRole", "orbweaver-controller-metrics-reader")
			if (reader != nil) != secure {
				t.Fatalf("ClusterRole orbweaver-controller-metrics-reader rendered: %v; want %v", reader != nil, secure)
			}
			if secure {
				rules := into[rbacv1.ClusterRole](t, reader).Rules
				if len(rules) != 1 || !slices.Equal(rules[0].NonResourceURLs, []string{"/metrics"}) || !slices.Equal(rules[0].Verbs, []string{"get"}) {
					t.Errorf("metrics reader rules %+v; want get on /metrics only", rules)
				}
			}
		})
	}
}

// TestHelmTest: `helm test` runs `orbweaver-controller check-install` from the
// controller's image, with flags the binary has, for the chart's DaemonSet and families,
// where the controller may run and without an orbweaver address (its network); its
// ServiceAccount may read that DaemonSet and its pods and create pools (dry run), no
// more; every object of it is a test hook, its RBAC deleted when it passes, the Pod kept
// for `helm test --logs` until the next run.
func TestHelmTest(t *testing.T) {
	defined := flagNames(t, binary(t, "orbweaver-controller"), "check-install")
	for _, vs := range append(valueSets(t), valueSet{name: "IPv6 only, pod network", args: []string{"--set", "ipam.enableIPv4=false,controller.hostNetwork=false"}}) {
		t.Run(vs.name, func(t *testing.T) {
			r := parse(t, render(t, vs.args...))
			var pods []*corev1.Pod
			for _, u := range r.objs {
				if a := u.GetAnnotations(); a["helm.sh/hook"] == "test" {
					want := "before-hook-creation,hook-succeeded"
					if u.GetKind() == "Pod" {
						want = "before-hook-creation" // helm test --logs reads it after the run
					}
					if got := a["helm.sh/hook-delete-policy"]; got != want {
						t.Errorf("%s %s: delete policy %q; want %q", u.GetKind(), u.GetName(), got, want)
					}
					if u.GetKind() == "Pod" {
						pods = append(pods, into[corev1.Pod](t, u))
					}
				}
			}
			if len(pods) != 1 {
				t.Fatalf("%d test Pods; want 1", len(pods))
			}
			pod := pods[0]
			if pod.Spec.RestartPolicy != corev1.RestartPolicyNever || len(pod.Spec.Containers) != 1 {
				t.Fatalf("test Pod: restartPolicy %q, %d containers", pod.Spec.RestartPolicy, len(pod.Spec.Containers))
			}
			c := pod.Spec.Containers[0]
			if c.Image != r.controller.Image || !slices.Equal(c.Command, r.controller.Command) || len(c.Args) == 0 || c.Args[0] != "check-install" {
				t.Fatalf("test Pod runs %s %v %v; want the controller's image and binary, check-install", c.Image, c.Command, c.Args)
			}
			flags := flagsOf(t, c.Name, c.Args[1:])
			for f := range flags {
				if !defined[f] {
					t.Errorf("the test Pod passes --%s, which check-install does not have", f)
				}
			}
			for f, want := range map[string]string{
				"agent-daemonset": r.daemonSet.Name, "enable-ipv4": r.agentFlags["enable-ipv4"], "enable-ipv6": r.agentFlags["enable-ipv6"],
			} {
				if flags[f] != want {
					t.Errorf("--%s=%s; want %s", f, flags[f], want)
				}
			}
			if envFieldPath(c, "POD_NAMESPACE") != "metadata.namespace" {
				t.Error("POD_NAMESPACE (the DaemonSet's namespace) is not set")
			}
			ctl := r.deployment.Spec.Template.Spec
			if pod.Spec.HostNetwork != ctl.HostNetwork || !reflect.DeepEqual(pod.Spec.Tolerations, ctl.Tolerations) ||
				!reflect.DeepEqual(pod.Spec.SecurityContext, ctl.SecurityContext) || !reflect.DeepEqual(c.SecurityContext, r.controller.SecurityContext) {
				t.Errorf("test Pod: hostNetwork %v, tolerations %v, security %+v %+v; want the controller's", pod.Spec.HostNetwork, pod.Spec.Tolerations, pod.Spec.SecurityContext, c.SecurityContext)
			}
			g := grantsOf(t, r.objs, namespace, pod.Spec.ServiceAccountName)
			for _, n := range []struct {
				need
				namespaced bool
			}{
				{need{group: "apps", resource: "daemonsets", verb: "get", name: r.daemonSet.Name}, true},
				{need{resource: "pods", verb: "list"}, true},
				{need{group: "spiderpool.spidernet.io", resource: "spiderippools", verb: "create"}, false},
			} {
				rules := g.cluster
				if n.namespaced {
					rules = g.namespaced[namespace]
				}
				if !allows(rules, n.need) {
					t.Errorf("the test's ServiceAccount may not %s", n.need)
				}
			}
			if got := expand(g.all()); len(got) != 3 {
				t.Errorf("the test's ServiceAccount may %v; want only the three above", got)
			}
		})
	}
}
