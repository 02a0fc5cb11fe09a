// Command depcheck fails when a package of the module breaks the dependency rules of
// STYLE.md ("what may depend on what"). `make verify` runs it from the repository root.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

func main() {
	std, err := goList("std")
	if err != nil {
		fail(err)
	}
	stdSet := map[string]bool{}
	for _, line := range std {
		stdSet[strings.TrimSpace(line)] = true
	}
	lines, err := goList("-f", "{{.ImportPath}} {{join .Imports \",\"}} {{join .Deps \",\"}}", "./...")
	if err != nil {
		fail(err)
	}
	var pkgs []pkg
	for _, line := range lines {
		// Empty lists leave empty fields, so split on single spaces.
		fields := strings.SplitN(line, " ", 3)
		if len(fields) != 3 {
			fail(fmt.Errorf("unexpected go list line %q", line))
		}
		pkgs = append(pkgs, pkg{path: fields[0], imports: splitList(fields[1]), deps: splitList(fields[2])})
	}
	if problems := check(pkgs, stdSet); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, p)
		}
		fail(fmt.Errorf("%d dependency rule violations (see STYLE.md, package layout)", len(problems)))
	}
	doc, err := os.ReadFile("docs/development.md")
	if err != nil {
		fail(err)
	}
	paths := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		paths = append(paths, p.path)
	}
	if missing := undocumented(paths, string(doc)); len(missing) > 0 {
		fail(fmt.Errorf("packages missing from the layout table of docs/development.md: %s", strings.Join(missing, ", ")))
	}
	fmt.Printf("depcheck: %d packages follow the dependency rules, each in docs/development.md's layout\n", len(pkgs))
}

func goList(args ...string) ([]string, error) {
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines, sc.Err()
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "depcheck:", err)
	os.Exit(1)
}
