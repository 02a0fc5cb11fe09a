package monitoring

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// ruleFile is charts/orbweaver/monitoring/rules.yaml.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

type rule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func readRules(t testing.TB) ruleFile {
	t.Helper()
	b, err := os.ReadFile(monitoringFile(t, "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("rules.yaml: %v", err)
	}
	return f
}

func alerts(t testing.TB) []rule {
	t.Helper()
	var out []rule
	for _, g := range readRules(t).Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("rules.yaml holds no rules")
	}
	return out
}

// dashboard is charts/orbweaver/monitoring/dashboard.json, as far as the tests read it.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // a collapsed row's
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

func readDashboard(t testing.TB) dashboard {
	t.Helper()
	b, err := os.ReadFile(monitoringFile(t, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	return d
}

// query is one PromQL expression of the dashboard, named for the test's messages.
type query struct{ where, expr string }

// dashboardQueries returns every panel's queries, the dashboard's variables replaced
// as Grafana would with the defaults: every pool, a rate interval of one minute (four
// times the test's scrape interval and more, as Grafana's $__rate_interval is).
func dashboardQueries(t testing.TB) []query {
	t.Helper()
	d := readDashboard(t)
	vars := strings.NewReplacer("$__rate_interval", "1m", "$pool", ".*")
	var out []query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %d %q has no query", p.ID, p.Title)
			}
			for _, tg := range p.Targets {
				expr := vars.Replace(tg.Expr)
				if strings.Contains(expr, "$") {
					t.Errorf("panel %q query %s: a variable the test does not know: %s", p.Title, tg.RefID, tg.Expr)
				}
				out = append(out, query{where: "panel " + p.Title + " query " + tg.RefID, expr: expr})
			}
		}
	}
	walk(d.Panels)
	if len(out) == 0 {
		t.Fatal("dashboard.json has no queries")
	}
	return out
}

// TestRulesPromtool: `promtool check rules` accepts rules.yaml, and every alert has the
// fields the docs and the chart rely on: a severity, a summary, a description and a
// runbook URL that points at its section of docs/guides/monitoring.md.
func TestRulesPromtool(t *testing.T) {
	promtool := tool(t, "promtool")
	file := monitoringFile(t, "rules.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, promtool, "check", "rules", "--lint=all", "--lint-fatal", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	rules := alerts(t)
	if want := regexp.MustCompile(`SUCCESS: (\d+) rules found`).FindSubmatch(out); want == nil || string(want[1]) != strconv.Itoa(len(rules)) {
		t.Errorf("promtool: %s; want SUCCESS for %d rules", bytes.TrimSpace(out), len(rules))
	}
	guide, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "guides", "monitoring.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if r.Alert == "" {
			t.Errorf("%q: not an alert", r.Record)
			continue
		}
		if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: wants a severity label, a summary and a description", r.Alert)
		}
		anchor := strings.ToLower(r.Alert)
		if !strings.HasSuffix(r.Annotations["runbook_url"], "docs/guides/monitoring.md#"+anchor) {
			t.Errorf("%s: runbook_url %q; want docs/guides/monitoring.md#%s", r.Alert, r.Annotations["runbook_url"], anchor)
		}
		if !bytes.Contains(guide, []byte("### "+r.Alert+"\n")) {
			t.Errorf("docs/guides/monitoring.md has no section ### %s", r.Alert)
		}
	}
}
