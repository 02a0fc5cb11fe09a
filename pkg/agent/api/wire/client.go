package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
)

// basePath is the spec's basePath; the host is a placeholder (the socket is dialled).
const basePath = "http://localhost/v1"

// maxAnswer bounds what is read of an answer: the largest is an ADD's, a few hundred
// bytes per address.
const maxAnswer = 1 << 20

// Client calls the agent over its unix socket. Each call opens its own connection: the
// CNI plugin makes one or two requests and exits.
type Client struct {
	http *http.Client
}

// NewClient returns a client of the agent listening on socket.
func NewClient(socket string) *Client {
	return &Client{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives:  true,
		DisableCompression: true,
	}}}
}

// APIError is an answer that is not a success: the HTTP status and the agent's Error
// body (nil when the body was not one).
type APIError struct {
	Status  int
	Payload *Error
}

func (e *APIError) Error() string {
	if e.Payload != nil && e.Payload.Message != nil {
		return fmt.Sprintf("HTTP %d: %s", e.Status, *e.Payload.Message)
	}
	return fmt.Sprintf("HTTP %d", e.Status)
}

// Add asks for the addresses of an attachment.
func (c *Client) Add(ctx context.Context, args *AddArgs) (*AddResult, error) {
	var out AddResult
	ok, err := c.call(ctx, http.MethodPost, "/ipam/add", args, &out)
	if err != nil || !ok {
		return nil, err
	}
	return &out, nil
}

// Del releases the addresses of an attachment.
func (c *Client) Del(ctx context.Context, att *Attachment) error {
	_, err := c.call(ctx, http.MethodPost, "/ipam/del", att, nil)
	return err
}

// Check verifies an attachment's record against the addresses the runtime has.
func (c *Client) Check(ctx context.Context, args *CheckArgs) error {
	_, err := c.call(ctx, http.MethodPost, "/ipam/check", args, nil)
	return err
}

// GC releases what the node holds for attachments no longer valid.
func (c *Client) GC(ctx context.Context, args *GCArgs) (*GCResult, error) {
	var out GCResult
	ok, err := c.call(ctx, http.MethodPost, "/ipam/gc", args, &out)
	if err != nil {
		return nil, err
	}
	if !ok {
		return &GCResult{}, nil
	}
	return &out, nil
}

// Status asks whether the agent is ready.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var out Status
	ok, err := c.call(ctx, http.MethodGet, "/status", nil, &out)
	if err != nil || !ok {
		return nil, err
	}
	return &out, nil
}

// call sends body (JSON) and decodes a 2xx answer into out, reporting whether it had a
// body; any other answer is an *APIError. Errors of the connection are net/http's
// *url.Error.
func (c *Client) call(ctx context.Context, method, path string, body, out any) (bool, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return false, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, basePath+path, rd)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return false, fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := &APIError{Status: resp.StatusCode}
		var e Error
		if json.Unmarshal(data, &e) == nil {
			ae.Payload = &e
		}
		return false, ae
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return false, nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return false, fmt.Errorf("decode the answer: %w", err)
	}
	return true, nil
}
