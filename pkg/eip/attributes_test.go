package eip_test

import (
	"slices"
	"testing"
	"time"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
)

// partial is a provider whose cloud has no parameter for the ISP.
type partial struct{ eip.Provider }

func (partial) Unhonoured(req eip.AllocateRequest) []string { return eip.SetAmong(req, eip.AttrISP) }

func TestUnhonouredBy(t *testing.T) {
	req := eip.AllocateRequest{Bandwidth: 5, ISP: "BGP", Name: "n"}
	if got, want := eip.Attributes(req), map[string]string{eip.AttrBandwidth: "5", eip.AttrISP: "BGP", eip.AttrName: "n"}; len(got) != len(want) ||
		got[eip.AttrBandwidth] != "5" || got[eip.AttrISP] != "BGP" || got[eip.AttrName] != "n" {
		t.Errorf("Attributes = %v, want %v", got, want)
	}
	for _, tt := range []struct {
		name string
		p    eip.Provider
		req  eip.AllocateRequest
		want []string
	}{
		{"a provider that does not say honours all", eiptest.NewCloud(), req, nil},
		{"a provider that says", partial{eiptest.NewCloud()}, req, []string{eip.AttrISP}},
		{"only what the request sets", partial{eiptest.NewCloud()}, eip.AllocateRequest{Bandwidth: 5}, nil},
		{"through Retrying", eip.Retrying(partial{eiptest.NewCloud()}, eip.Backoff{Attempts: 2, Initial: time.Millisecond}), req, []string{eip.AttrISP}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := eip.UnhonouredBy(tt.p, tt.req); !slices.Equal(got, tt.want) {
				t.Fatalf("UnhonouredBy = %v, want %v", got, tt.want)
			}
		})
	}
}
