package alibaba

import (
	"net/http"
	"sync"
	"time"
)

// clients hands out SDK clients one caller at a time. An SDK client is not safe for
// concurrent use: darabonba-openapi (v2.1.14) reads and clears Client.Headers on every
// call (GetRpcHeaders). Idle clients are kept for reuse, up to maxIdle.
type clients[T any] struct {
	mu      sync.Mutex
	idle    []T
	maxIdle int
	build   func() (T, error)
}

func (c *clients[T]) get() (T, error) {
	c.mu.Lock()
	if n := len(c.idle); n > 0 {
		cl := c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return cl, nil
	}
	c.mu.Unlock()
	return c.build()
}

func (c *clients[T]) put(cl T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.idle) < c.maxIdle {
		c.idle = append(c.idle, cl)
	}
}

// httpClient is the SDK's HTTP client (dara.HttpClient). The SDK's default one is shared
// process-wide and has its Timeout rewritten on every call while other calls read it (a
// data race in tea v1.5.3's dara.DoRequestWithCtx); this one is fixed. Deadlines come
// from each call's context; Timeout is only a backstop for callers without one.
type httpClient struct {
	c *http.Client
}

func newHTTPClient() *httpClient {
	t := http.DefaultTransport.(*http.Transport).Clone() // proxies from the environment, as the SDK's
	return &httpClient{c: &http.Client{Transport: t, Timeout: 2 * time.Minute}}
}

// Call implements dara.HttpClient; the per-request transport the SDK builds is not used.
func (h *httpClient) Call(req *http.Request, _ *http.Transport) (*http.Response, error) {
	return h.c.Do(req)
}
