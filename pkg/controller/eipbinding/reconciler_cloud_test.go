package eipbinding

import (
	"errors"
	"strings"
	"testing"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
)

// TestProviderSaysWhatToSet: a request that names no cloud, or one the controller lacks,
// fails with what an operator sets.
func TestProviderSaysWhatToSet(t *testing.T) {
	cloud := eiptest.NewCloud()
	for _, tt := range []struct {
		name      string
		providers map[string]eip.Provider
		broken    map[string]error
		ask       string
		want      []string // substrings; none: found
	}{
		{name: "configured", providers: map[string]eip.Provider{"aws": cloud}, ask: "aws"},
		{name: "no cloud named, several configured", providers: map[string]eip.Provider{"tencent": cloud, "alibaba": cloud, "aws": cloud},
			want: []string{"names no cloud", "alibaba, aws, tencent", "orbweaver.io/eip-provider", "eip.defaultProvider"}},
		{name: "no cloud named, none configured", want: []string{"no cloud configured", "eip.alibaba"}},
		{name: "a cloud not configured", providers: map[string]eip.Provider{"aws": cloud}, ask: "alibaba",
			want: []string{`provider "alibaba" is not configured`, "--eip-alibaba-region", "eip.alibaba"}},
		{name: "a cloud that did not start", broken: map[string]error{"aws": errors.New("no credentials")}, ask: "aws",
			want: []string{`provider "aws" did not start`, "no credentials"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &reconciler{p: Params{Providers: tt.providers, ProviderErrors: tt.broken}}
			p, err := r.provider(tt.ask)
			if len(tt.want) == 0 {
				if err != nil || p == nil {
					t.Fatalf("provider(%q) = %v, %v", tt.ask, p, err)
				}
				return
			}
			if !errors.Is(err, errProviderMissing) {
				t.Fatalf("provider(%q) = %v, want errProviderMissing", tt.ask, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
		})
	}
}
