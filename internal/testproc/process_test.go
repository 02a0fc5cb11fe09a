package testproc

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitHTTP(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if err := WaitHTTP(srv.URL, time.Minute, nil); err != nil {
		t.Fatalf("WaitHTTP: %v", err)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d GETs; want 3 (two 503s, then 200)", n)
	}

	ended := func() (bool, error) { return true, nil }
	if err := WaitHTTP(srv.URL, time.Minute, ended); err == nil || !strings.Contains(err.Error(), "ended before") {
		t.Errorf("WaitHTTP with what answers ended = %v; want an error saying so", err)
	}
	if err := WaitHTTP("http://"+FreeAddr(t)+"/readyz", 0, nil); err == nil || !strings.Contains(err.Error(), "not answering") {
		t.Errorf("WaitHTTP on a closed port = %v; want an error", err)
	}
}

func TestProcess(t *testing.T) {
	tests := []struct {
		name       string
		script     string
		wantOutput string
		wantEnded  bool
	}{
		{"stops on SIGINT", `echo "$GREETING"; trap 'exit 0' INT; while :; do sleep 0.1; done`, "hello\n", false},
		{"ends by itself", `echo "$GREETING"; exit 3`, "hello\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Start(t, "sh", "/bin/sh", []string{"GREETING=hello"}, "-c", tt.script)
			deadline := time.Now().Add(time.Minute)
			for p.Output() != tt.wantOutput && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := p.Output(); got != tt.wantOutput {
				t.Fatalf("Output() = %q; want %q", got, tt.wantOutput)
			}
			if tt.wantEnded {
				for ended, _ := p.Exited(); !ended && time.Now().Before(deadline); ended, _ = p.Exited() {
					time.Sleep(10 * time.Millisecond)
				}
				if ended, err := p.Exited(); !ended || err == nil {
					t.Fatalf("Exited() = %v, %v; want true and exit status 3", ended, err)
				}
				if err := p.WaitHTTP("http://"+FreeAddr(t), time.Minute); err == nil || !strings.Contains(err.Error(), "sh exited") {
					t.Errorf("WaitHTTP after exit = %v; want an error naming the exit", err)
				}
			}
			if err := p.Stop(); err != nil {
				t.Fatal(err)
			}
			if ended, _ := p.Exited(); !ended {
				t.Error("Exited() after Stop = false")
			}
		})
	}
}
