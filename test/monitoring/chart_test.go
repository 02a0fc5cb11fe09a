package monitoring

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// render runs `helm template` on the chart with args and returns its objects.
func render(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := renderRaw(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}

// renderRaw runs `helm template`; the error carries helm's stderr.
func renderRaw(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	helm := tool(t, "helm")
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helm, append([]string{"template", "orbweaver", filepath.Join(repoRoot(t), "charts", "orbweaver"),
		"--namespace", "kube-system", "--kube-version", "1.33.1"}, args...)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm template %v: %w\n%s", args, err, stderr.String())
	}
	return out, nil
}

// TestMonitoringSchemaRejects: values.schema.json refuses bad monitoring values,
// naming them.
func TestMonitoringSchemaRejects(t *testing.T) {
	for _, tt := range []struct{ set, want string }{
		{"monitoring.podMonitor.enable=true", "enable"},
		{"monitoring.podMonitor.interval=soon", "/monitoring/podMonitor/interval"},
		{"monitoring.serviceMonitor.scrapeTimeout=10", "/monitoring/serviceMonitor/scrapeTimeout"},
		{"monitoring.prometheusRule.enabled=yes please", "/monitoring/prometheusRule/enabled"},
		{"monitoring.grafanaDashboard.label=", "/monitoring/grafanaDashboard/label"},
		{"monitoring.grafanaDashboard.namespace=Grafana", "/monitoring/grafanaDashboard/namespace"},
	} {
		t.Run(tt.set, func(t *testing.T) {
			_, err := renderRaw(t, "--set", tt.set)
			if err == nil {
				t.Fatal("helm template accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error does not name %q: %v", tt.want, err)
			}
		})
	}
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range objs {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

// TestChartMonitoring: the default values render no monitoring object; with the
// bundle on, the PrometheusRule's spec is rules.yaml and the dashboard ConfigMap holds
// dashboard.json byte for byte, under the sidecar's label; each component's PodMonitor
// and ServiceMonitor (through its headless Service) select exactly that component's
// pods and their "metrics" port.
func TestChartMonitoring(t *testing.T) {
	for _, kind := range []string{"PodMonitor", "ServiceMonitor", "PrometheusRule"} {
		if n := len(ofKind(render(t), kind)); n != 0 {
			t.Errorf("default values: %d %s objects; want none", n, kind)
		}
	}
	objs := render(t, "--set", "monitoring.podMonitor.enabled=true,monitoring.serviceMonitor.enabled=true,monitoring.prometheusRule.enabled=true,"+
		"monitoring.grafanaDashboard.enabled=true,monitoring.grafanaDashboard.namespace=grafana,monitoring.podMonitor.labels.release=kps,"+
		"monitoring.prometheusRule.labels.release=kps,monitoring.podMonitor.interval=15s",
		"--set-json", `monitoring.endpointConfig={"scheme":"http","metricRelabelings":[{"action":"keep","regex":"orbweaver_.*|go_.*|process_.*","sourceLabels":["__name__"]}]}`)

	// The rules: rules.yaml is the spec.
	rules := ofKind(objs, "PrometheusRule")
	if len(rules) != 1 {
		t.Fatalf("%d PrometheusRules; want 1", len(rules))
	}
	var want map[string]any
	b, err := os.ReadFile(monitoringFile(t, "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if got := rules[0].Object["spec"]; !reflect.DeepEqual(got, want) {
		t.Errorf("the PrometheusRule's spec is not rules.yaml")
	}
	if rules[0].GetLabels()["release"] != "kps" {
		t.Errorf("PrometheusRule labels %v; want release=kps", rules[0].GetLabels())
	}

	// The dashboard.
	var dash *unstructured.Unstructured
	for _, cm := range ofKind(objs, "ConfigMap") {
		if cm.GetLabels()["grafana_dashboard"] == "1" {
			dash = cm
		}
	}
	if dash == nil {
		t.Fatal("no ConfigMap labelled grafana_dashboard=1")
	}
	if dash.GetNamespace() != "grafana" {
		t.Errorf("dashboard ConfigMap in %q; want grafana (monitoring.grafanaDashboard.namespace)", dash.GetNamespace())
	}
	file, err := os.ReadFile(monitoringFile(t, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	data, _, _ := unstructured.NestedString(dash.Object, "data", "orbweaver.json")
	if data != string(bytes.TrimRight(file, "\n")) {
		t.Error("the ConfigMap's orbweaver.json is not dashboard.json")
	}
	if !json.Valid([]byte(data)) {
		t.Error("the ConfigMap's orbweaver.json is not JSON")
	}
	objs2 := render(t, "--set", "monitoring.grafanaDashboard.enabled=true,monitoring.grafanaDashboard.label=dashboards,monitoring.grafanaDashboard.labelValue=orbweaver")
	found := false
	for _, cm := range ofKind(objs2, "ConfigMap") {
		found = found || cm.GetLabels()["dashboards"] == "orbweaver"
	}
	if !found {
		t.Error("monitoring.grafanaDashboard.label/labelValue do not reach the ConfigMap's labels")
	}

	// The scrape objects select each component's pods and port.
	podLabels := map[string]map[string]string{}
	ports := map[string]bool{}
	for _, kind := range []string{"DaemonSet", "Deployment"} {
		for _, w := range ofKind(objs, kind) {
			labels, _, _ := unstructured.NestedStringMap(w.Object, "spec", "template", "metadata", "labels")
			podLabels[labels["app.kubernetes.io/component"]] = labels
			containers, _, _ := unstructured.NestedSlice(w.Object, "spec", "template", "spec", "containers")
			for _, c := range containers {
				ps, _, _ := unstructured.NestedSlice(c.(map[string]any), "ports")
				for _, p := range ps {
					if p.(map[string]any)["name"] == "metrics" {
						ports[labels["app.kubernetes.io/component"]] = true
					}
				}
			}
		}
	}
	selects := func(sel map[string]string, component string) bool {
		for k, v := range sel {
			if podLabels[component][k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	services := map[string]map[string]string{}
	for _, s := range ofKind(objs, "Service") {
		sel, _, _ := unstructured.NestedStringMap(s.Object, "spec", "selector")
		services[s.GetName()] = s.GetLabels()
		if s.GetLabels()["orbweaver.io/metrics"] == "true" {
			c := s.GetLabels()["app.kubernetes.io/component"]
			if !selects(sel, c) || selects(sel, map[string]string{"agent": "controller", "controller": "agent"}[c]) {
				t.Errorf("metrics Service %s selects %v; want the %s pods only", s.GetName(), sel, c)
			}
		}
	}
	for _, c := range []string{"agent", "controller"} {
		if !ports[c] {
			t.Errorf("the %s's pods have no port named metrics", c)
		}
	}
	for _, kind := range []string{"PodMonitor", "ServiceMonitor"} {
		mons := ofKind(objs, kind)
		if len(mons) != 2 {
			t.Errorf("%d %s objects; want one per component", len(mons), kind)
		}
		for _, m := range mons {
			c := m.GetLabels()["app.kubernetes.io/component"]
			sel, _, _ := unstructured.NestedStringMap(m.Object, "spec", "selector", "matchLabels")
			endpoints := "podMetricsEndpoints"
			if kind == "ServiceMonitor" {
				endpoints = "endpoints"
				// A ServiceMonitor selects Services: exactly this component's metrics Service.
				n := 0
				for name, labels := range services {
					match := true
					for k, v := range sel {
						match = match && labels[k] == v
					}
					if match {
						n++
						if labels["app.kubernetes.io/component"] != c {
							t.Errorf("ServiceMonitor %s selects Service %s", m.GetName(), name)
						}
					}
				}
				if n != 1 {
					t.Errorf("ServiceMonitor %s selects %d Services; want 1", m.GetName(), n)
				}
			} else if !selects(sel, c) {
				t.Errorf("PodMonitor %s selects %v; not the %s pods %v", m.GetName(), sel, c, podLabels[c])
			}
			eps, _, _ := unstructured.NestedSlice(m.Object, "spec", endpoints)
			if len(eps) != 1 {
				t.Fatalf("%s %s: %d endpoints; want 1", kind, m.GetName(), len(eps))
			}
			ep := eps[0].(map[string]any)
			if ep["port"] != "metrics" || ep["path"] != "/metrics" || ep["scheme"] != "http" || ep["metricRelabelings"] == nil {
				t.Errorf("%s %s endpoint %v: want port metrics, path /metrics and monitoring.endpointConfig's fields", kind, m.GetName(), ep)
			}
			if kind == "PodMonitor" && (ep["interval"] != "15s" || m.GetLabels()["release"] != "kps") {
				t.Errorf("PodMonitor %s: interval %v, labels %v; want 15s and release=kps", m.GetName(), ep["interval"], m.GetLabels())
			}
		}
	}

	// metrics.secure: the controller's endpoints scrape HTTPS without verifying its
	// self-signed certificate, with the token monitoring.controllerEndpointConfig gives;
	// the agents' stay plain.
	objs = render(t, "--set", "metrics.secure=true,monitoring.podMonitor.enabled=true,monitoring.serviceMonitor.enabled=true",
		"--set-json", `monitoring.controllerEndpointConfig={"bearerTokenFile":"/var/run/secrets/kubernetes.io/serviceaccount/token"}`)
	for _, kind := range []string{"PodMonitor", "ServiceMonitor"} {
		for _, m := range ofKind(objs, kind) {
			endpoints := map[string]string{"PodMonitor": "podMetricsEndpoints", "ServiceMonitor": "endpoints"}[kind]
			eps, _, _ := unstructured.NestedSlice(m.Object, "spec", endpoints)
			ep := eps[0].(map[string]any)
			skip, _, _ := unstructured.NestedBool(ep, "tlsConfig", "insecureSkipVerify")
			secure := ep["scheme"] == "https" && skip && ep["bearerTokenFile"] != nil
			if want := m.GetLabels()["app.kubernetes.io/component"] == "controller"; secure != want {
				t.Errorf("metrics.secure: %s %s endpoint %v; want https, insecureSkipVerify and the token: %v", kind, m.GetName(), ep, want)
			}
		}
	}
}
