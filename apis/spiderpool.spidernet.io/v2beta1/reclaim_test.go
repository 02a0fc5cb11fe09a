package v2beta1

import (
	"testing"
	"time"
)

func TestReclaimAfter(t *testing.T) {
	tests := []struct {
		policy  ReclaimPolicy
		after   time.Duration
		keep    bool
		wantErr bool
	}{
		{policy: "Follow", after: 0, keep: false},
		{policy: "Never", after: 0, keep: true},
		{policy: "10m", after: 10 * time.Minute, keep: true},
		{policy: "1h30m", after: 90 * time.Minute, keep: true},
		{policy: "45s", after: 45 * time.Second, keep: true},
		{policy: "0s", wantErr: true},
		{policy: "follow", wantErr: true},
		{policy: "", wantErr: true},
		{policy: "10d", wantErr: true},
		{policy: "-5m", wantErr: true},
		{policy: "Reserved", wantErr: true}, // an EIP's release knows no StatefulSet
	}
	for _, tt := range tests {
		t.Run(string(tt.policy), func(t *testing.T) {
			after, keep, err := tt.policy.ReclaimAfter()
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %t", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if after != tt.after || keep != tt.keep {
				t.Fatalf("ReclaimAfter() = %v, %t; want %v, %t", after, keep, tt.after, tt.keep)
			}
		})
	}
}

func TestReclaimAfterFor(t *testing.T) {
	tests := []struct {
		policy     ReclaimPolicy
		setDeleted bool
		after      time.Duration
		keep       bool
		wantErr    bool
	}{
		{policy: "Reserved", setDeleted: false, keep: true},
		{policy: "Reserved", setDeleted: true, keep: false},
		{policy: "Never", setDeleted: true, keep: true},
		{policy: "Follow", setDeleted: false, keep: false},
		{policy: "10m", setDeleted: true, after: 10 * time.Minute, keep: true},
		{policy: "reserved", wantErr: true},
	}
	for _, tt := range tests {
		after, keep, err := tt.policy.ReclaimAfterFor(tt.setDeleted)
		if (err != nil) != tt.wantErr || err == nil && (after != tt.after || keep != tt.keep) {
			t.Errorf("%s (StatefulSet deleted %t): %v, %t, %v; want %v, %t, error %t", tt.policy, tt.setDeleted, after, keep, err, tt.after, tt.keep, tt.wantErr)
		}
	}
}
