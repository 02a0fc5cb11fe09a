package testproc

import (
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// WaitHTTP calls GET url until it answers 200 OK. It returns an error after within, with
// the last answer or failure, or as soon as ended (when not nil) reports that whatever
// should answer has stopped, with ended's error. within bounds a hang; it is not a
// measure of anything.
func WaitHTTP(url string, within time.Duration, ended func() (bool, error)) error {
	probe := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(within)
	for {
		if ended != nil {
			if stopped, err := ended(); stopped {
				return fmt.Errorf("ended before %s answered: %v", url, err)
			}
		}
		resp, err := probe.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not answering 200 after %s: %w", url, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// FreePort returns a TCP port free on 127.0.0.1 now, for a process to listen on.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeAddr is FreePort as an address: 127.0.0.1:<port>.
func FreeAddr(t testing.TB) string {
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}
