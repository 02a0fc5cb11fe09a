package monitoring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

// repoRoot is the repository root.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// monitoringFile is a file of charts/orbweaver/monitoring.
func monitoringFile(t testing.TB, name string) string {
	return filepath.Join(repoRoot(t), "charts", "orbweaver", "monitoring", name)
}

// tool returns bin/<name>. Without it the test is skipped, unless CI is set: there a
// missing tool is a failure, not a silent pass.
func tool(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(repoRoot(t), "bin", name)
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("bin/%s: %v (CI is set); run `make tools`", name, err)
		}
		t.Skipf("bin/%s is missing (%v): run `make tools` (tools/ensure.sh %s) to build it", name, err, name)
	}
	return path
}

// buildBinaries builds cmd/orbweaver-agent and cmd/orbweaver-controller into a
// temporary folder and returns it.
func buildBinaries(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "./cmd/orbweaver-agent", "./cmd/orbweaver-controller")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// prom is a Prometheus server's HTTP API.
type prom struct{ base string }

// apiResponse is the envelope of every API answer.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

func (p prom) get(ctx context.Context, path string, q url.Values, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("%s: %s: %w", path, body, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s %v: %s: %s", path, q, r.ErrorType, r.Error)
	}
	if into == nil {
		return nil
	}
	return json.Unmarshal(r.Data, into)
}

// sample is one series of an instant query's answer.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query runs an instant query and returns its series (a scalar answer counts as one).
func (p prom) query(ctx context.Context, expr string) ([]sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get(ctx, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var out []sample
		return out, json.Unmarshal(data.Result, &out)
	case "scalar", "string":
		return []sample{{}}, nil
	}
	return nil, fmt.Errorf("query %q: result type %s; want an instant vector", expr, data.ResultType)
}

// ast returns the expression's syntax tree as Prometheus' /api/v1/parse_query gives it.
func (p prom) ast(ctx context.Context, expr string) (map[string]any, error) {
	var tree map[string]any
	if err := p.get(ctx, "/api/v1/parse_query", url.Values{"query": {expr}}, &tree); err != nil {
		return nil, err
	}
	return tree, nil
}

// selectors returns every vector selector of a syntax tree, written back as PromQL
// (name{matchers}), so that each can be queried on its own.
func selectors(node any) []string {
	var out []string
	switch n := node.(type) {
	case map[string]any:
		if typ, _ := n["type"].(string); typ == "vectorSelector" || typ == "matrixSelector" {
			name, _ := n["name"].(string)
			var ms []string
			matchers, _ := n["matchers"].([]any)
			for _, m := range matchers {
				m, _ := m.(map[string]any)
				if m["name"] == "__name__" {
					continue
				}
				v, _ := json.Marshal(m["value"])
				ms = append(ms, fmt.Sprintf("%s%s%s", m["name"], m["type"], v))
			}
			return []string{name + "{" + strings.Join(ms, ",") + "}"}
		}
		for _, v := range n {
			out = append(out, selectors(v)...)
		}
	case []any:
		for _, v := range n {
			out = append(out, selectors(v)...)
		}
	}
	return out
}

var errNoSeries = errors.New("no series")
