package chart

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// documentedValues reads the value names of the tables of docs/guides/install.md's
// "Values" whose first column is "value": the backticked names of each row's first cell,
// ".x" standing for a sibling of the name before it (`controller.healthPort`,
// `.metricsPort`).
func documentedValues(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "guides", "install.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, values, ok := strings.Cut(string(b), "\n## 4. Values\n")
	if !ok {
		t.Fatal("docs/guides/install.md has no ## 4. Values section")
	}
	values, _, _ = strings.Cut(values, "\n## 5.")
	backticked := regexp.MustCompile("`([^`]+)`")
	names := map[string]bool{}
	inTable := false
	for _, line := range strings.Split(values, "\n") {
		switch {
		case strings.HasPrefix(line, "| value |"):
			inTable = true
			continue
		case !strings.HasPrefix(line, "|"):
			inTable = false
		}
		if !inTable || !strings.HasPrefix(line, "| `") {
			continue
		}
		parent := ""
		for _, m := range backticked.FindAllStringSubmatch(strings.Split(strings.Trim(line, "|"), "|")[0], -1) {
			name := m[1]
			if strings.HasPrefix(name, ".") && parent != "" {
				name = parent + name
			} else if i := strings.LastIndexByte(name, '.'); i > 0 {
				parent = name[:i]
			} else {
				parent = name
			}
			names[name] = true
		}
	}
	if len(names) < 50 {
		t.Fatalf("read %d value names from docs/guides/install.md's tables; the tables moved?", len(names))
	}
	return names
}

// valuePaths lists the dotted paths of values.yaml's leaves: values that are not maps, or
// empty maps.
func valuePaths(prefix string, v map[string]any) []string {
	var out []string
	for k, x := range v {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if m, ok := x.(map[string]any); ok && len(m) > 0 {
			out = append(out, valuePaths(p, m)...)
		} else {
			out = append(out, p)
		}
	}
	return out
}

// TestValuesDocumented: every value of values.yaml is in a table of
// docs/guides/install.md's "Values" (itself or a value it belongs to, such as
// agent.resources for agent.resources.requests.cpu), but eip.*, which docs/guides/eip.md
// explains; and every value those tables name exists in values.schema.json.
func TestValuesDocumented(t *testing.T) {
	documented := documentedValues(t)
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	for _, p := range valuePaths("", values) {
		if p == "eip" || strings.HasPrefix(p, "eip.") {
			continue
		}
		parts := strings.Split(p, ".")
		found := false
		for i := 1; i <= len(parts) && !found; i++ {
			found = documented[strings.Join(parts[:i], ".")]
		}
		if !found {
			t.Errorf("value %s is in values.yaml, in no table of docs/guides/install.md", p)
		}
	}

	raw, err = os.ReadFile(filepath.Join(chartDir(t), "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	for name := range documented {
		node := schema
		for _, part := range strings.Split(name, ".") {
			props, ok := node["properties"].(map[string]any)
			if !ok {
				break // a free-form object (resources, affinity): deeper names are its own
			}
			next, ok := props[part].(map[string]any)
			if !ok {
				t.Errorf("docs/guides/install.md documents %s, which values.schema.json does not have", name)
				break
			}
			node = next
		}
	}
}
