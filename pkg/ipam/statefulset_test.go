package ipam

import (
	"errors"
	"testing"
)

func TestFixedIPWanted(t *testing.T) {
	tests := []struct {
		name    string
		ann     map[string]string
		optIn   bool
		want    bool
		wantErr bool
	}{
		{name: "no annotation, SpiderPool's default", want: true},
		{name: "no annotation, opt-in", optIn: true, want: false},
		{name: "ours false opts out", ann: map[string]string{AnnoFixedIP: "false"}, want: false},
		{name: "ours true opts in", ann: map[string]string{AnnoFixedIP: "true"}, optIn: true, want: true},
		{name: "KCE's opt-in", ann: map[string]string{AnnoKCEPodIPFixed: "true"}, optIn: true, want: true},
		{name: "KCE's false", ann: map[string]string{AnnoKCEPodIPFixed: "false"}, want: false},
		{name: "ours wins over KCE's", ann: map[string]string{AnnoFixedIP: "false", AnnoKCEPodIPFixed: "true"}, optIn: true, want: false},
		{name: "a bad value: the default, and an error", ann: map[string]string{AnnoKCEPodIPFixed: "yes"}, optIn: true, want: false, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FixedIPWanted(tt.ann, tt.optIn)
			if got != tt.want || (err != nil) != tt.wantErr || err != nil && !errors.Is(err, ErrBadAnnotation) {
				t.Fatalf("FixedIPWanted = %t, %v; want %t, error %t", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
