package main

import (
	"fmt"
	"strings"
)

const module = "github.com/orbweaver-ipam/orbweaver"

// rule constrains the dependencies (direct and transitive) of the packages under scope.
type rule struct {
	scope  string   // package path relative to the module; "x/..." means x and below
	except []string // packages under scope the rule does not cover
	why    string   // the reason, printed with a violation

	// forbid lists dependencies (import path prefixes, "net/http" or "k8s.io/client-go/")
	// the scope may not have, directly or through other packages.
	forbid []string
	// forbidDirect lists packages the scope may not import itself; they may still come in
	// through a dependency (apimachinery's types pull in net/http, for one).
	forbidDirect []string
	// onlyThirdParty, when set, is the complete list of non-standard-library, non-project
	// dependency prefixes allowed.
	onlyThirdParty []string
	// onlyProject, when set, is the complete list of project packages (relative, "x/...")
	// the scope may import.
	onlyProject []string
}

// rules are STYLE.md's "what may depend on what".
var rules = []rule{
	{
		scope: "apis/...", why: "API types import only k8s.io/api and apimachinery so any binary can use them",
		forbid:      []string{"sigs.k8s.io/controller-runtime", "k8s.io/client-go"},
		onlyProject: []string{"apis/..."},
	},
	{
		scope: "pkg/ip/...", why: "pkg/ip is pure: the standard library and netipx only",
		onlyThirdParty: []string{"go4.org/netipx"},
		onlyProject:    []string{"pkg/ip/..."},
	},
	{
		scope: "pkg/ipam/...", except: []string{"pkg/ipam/crdstore/..."},
		why:          "the allocation core is pure: no API clients, HTTP or processes; crdstore is its only client-go user",
		forbid:       []string{"k8s.io/client-go", "sigs.k8s.io/controller-runtime"},
		forbidDirect: []string{"net/http", "os/exec"},
		onlyProject:  []string{"pkg/ipam/...", "pkg/ip/...", "apis/..."},
	},
	{
		scope: "pkg/cni/...", why: "the CNI plugin starts fast (every exec pays for its imports: docs/performance.md) and never reaches the API server itself",
		forbid:      []string{"k8s.io/", "sigs.k8s.io/", "github.com/go-openapi/", "go.opentelemetry.io/", "net/http", "crypto/tls"},
		onlyProject: []string{"pkg/cni/...", "pkg/agent/api/wire", "pkg/ip/...", "pkg/version"},
	},
	{
		scope: "pkg/crdcheck/...", why: "the controller and the agent both run the start-up check: it knows only the API types",
		onlyProject: []string{"pkg/crdcheck/...", "apis/..."},
	},
	{
		scope: "pkg/agent/...", why: "agent and controllers share logic through pkg/ipam, never each other",
		forbid: []string{module + "/pkg/controller", module + "/pkg/webhook"},
	},
	{
		scope: "pkg/controller/...", why: "agent and controllers share logic through pkg/ipam, never each other",
		forbid: []string{module + "/pkg/agent"},
	},
	{
		scope: "pkg/webhook/...", why: "webhooks are read-only checks built on pkg/ip and pkg/ipam",
		forbid: []string{module + "/pkg/agent", module + "/pkg/controller"},
	},
	{
		scope: "pkg/eip", why: "the Provider interface is cloud-neutral: cloud SDKs live only in pkg/eip/<cloud> adapters",
		forbid: []string{"github.com/aws/", "github.com/alibabacloud-go/", "github.com/aliyun/", "github.com/tencentcloud/",
			"k8s.io/client-go", "sigs.k8s.io/controller-runtime"},
		onlyProject: []string{"pkg/eip"},
	},
	{
		scope: "pkg/controller/...", why: "controllers reach clouds through eip.Provider, never a cloud SDK",
		forbid: []string{"github.com/aws/", "github.com/alibabacloud-go/", "github.com/aliyun/", "github.com/tencentcloud/"},
	},
	{
		scope: "...", except: []string{"test/..."}, why: "nothing outside test/ imports test/",
		forbid: []string{module + "/test/"},
	},
	{
		scope: "pkg/...", why: "the test harnesses (a real API server, the clouds' emulators, the webhooks for a test API server, processes and agents run by tests) ship in no binary",
		forbid: testOnly,
	},
	{
		scope: "cmd/...", why: "the test harnesses (a real API server, the clouds' emulators, the webhooks for a test API server, processes and agents run by tests) ship in no binary",
		forbid: testOnly,
	},
}

// testOnly are the packages under internal/ that only tests and test/ programs use.
var testOnly = []string{module + "/internal/testenv", module + "/internal/eipemulator", module + "/internal/webhooktest",
	module + "/internal/testproc", module + "/internal/testagent", module + "/internal/testmetrics", module + "/internal/ipamtest"}

// pkg is one package of the module and everything it depends on.
type pkg struct {
	path    string   // full import path
	imports []string // direct imports
	deps    []string // transitive dependencies, full import paths
}

// check returns one message per violated rule and dependency.
func check(pkgs []pkg, std map[string]bool) []string {
	var out []string
	for _, p := range pkgs {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.path, module), "/")
		for _, r := range rules {
			if !matches(rel, r.scope) || matchesAny(rel, r.except) {
				continue
			}
			for _, d := range p.deps {
				if msg := r.violation(d, std); msg != "" {
					out = append(out, fmt.Sprintf("%s depends on %s: %s (%s)", p.path, d, msg, r.why))
				}
			}
			for _, d := range p.imports {
				if hasPrefix(d, r.forbidDirect) {
					out = append(out, fmt.Sprintf("%s imports %s: forbidden (%s)", p.path, d, r.why))
				}
			}
		}
	}
	return out
}

func (r rule) violation(dep string, std map[string]bool) string {
	if hasPrefix(dep, r.forbid) {
		return "forbidden"
	}
	project := dep == module || strings.HasPrefix(dep, module+"/")
	if project && r.onlyProject != nil {
		if !matchesAny(strings.TrimPrefix(strings.TrimPrefix(dep, module), "/"), r.onlyProject) {
			return "project package not allowed here"
		}
	}
	if !project && !std[dep] && r.onlyThirdParty != nil {
		for _, allowed := range r.onlyThirdParty {
			if dep == allowed || strings.HasPrefix(dep, allowed+"/") {
				return ""
			}
		}
		return "third-party package not allowed here"
	}
	return ""
}

// matches reports whether a relative package path is in scope ("x/..." covers x and below,
// "..." covers everything).
func matches(rel, scope string) bool {
	if scope == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(scope, "/..."); ok {
		return rel == base || strings.HasPrefix(rel, base+"/")
	}
	return rel == scope
}

func matchesAny(rel string, scopes []string) bool {
	for _, s := range scopes {
		if matches(rel, s) {
			return true
		}
	}
	return false
}

// hasPrefix reports whether an import path is one of prefixes or below one.
func hasPrefix(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") {
			return true
		}
	}
	return false
}

// undocumented returns the packages (import paths of the module) that the layout table
// of docs/development.md (doc) does not name, as `dir/`, so that the package list keeps
// reading as the architecture. Generated packages under a documented parent (the agent
// API's client and models) count as documented by it.
func undocumented(pkgs []string, doc string) []string {
	generated := []string{"pkg/agent/api/"}
	var out []string
	for _, p := range pkgs {
		rel := strings.TrimPrefix(strings.TrimPrefix(p, module), "/")
		if rel == p || rel == "" || hasPrefix(rel+"/", generated) && rel+"/" != generated[0] {
			continue
		}
		if !strings.Contains(doc, "`"+rel+"/`") {
			out = append(out, rel)
		}
	}
	return out
}
