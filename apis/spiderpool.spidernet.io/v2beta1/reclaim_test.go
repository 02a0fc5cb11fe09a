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
