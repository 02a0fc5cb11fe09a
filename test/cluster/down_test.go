package main

import (
	"slices"
	"testing"
)

func TestSplitRule(t *testing.T) {
	got := splitRule(`-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`)
	want := []string{"-A", "PREROUTING", "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"}
	if !slices.Equal(got, want) {
		t.Fatalf("splitRule = %q, want %q", got, want)
	}
}
