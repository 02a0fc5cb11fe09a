package wire

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// basePath is the spec's basePath.
const basePath = "/v1"

// aLongTimeAgo is a deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)

// maxAnswer bounds what is read of an answer: the largest is an ADD's, a few hundred
// bytes per address.
const maxAnswer = 1 << 20

// Client calls the agent over its unix socket. Each call opens its own connection: the
// CNI plugin makes one or two requests and exits.
//
// The client speaks HTTP/1.0 by hand instead of through net/http: net/http links TLS,
// x509 and the rest of crypto into the plugin, and a bigger binary costs every exec its
// page faults. One request per connection, a Content-Length body out, and an answer
// read to the end of the connection is all the agent's API needs
// (docs/performance.md).
type Client struct {
	socket string
}

// NewClient returns a client of the agent listening on socket.
func NewClient(socket string) *Client { return &Client{socket: socket} }

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

// ConnError is a call that got no answer: the socket could not be dialled, or the
// connection failed before the answer's status line arrived.
type ConnError struct {
	Op  string // "dial", "send" or "receive"
	Err error
}

func (e *ConnError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *ConnError) Unwrap() error { return e.Err }

// Add asks for the addresses of an attachment.
func (c *Client) Add(ctx context.Context, args *AddArgs) (*AddResult, error) {
	var out AddResult
	ok, err := c.call(ctx, "POST", "/ipam/add", args, &out)
	if err != nil || !ok {
		return nil, err
	}
	return &out, nil
}

// Del releases the addresses of an attachment.
func (c *Client) Del(ctx context.Context, att *Attachment) error {
	_, err := c.call(ctx, "POST", "/ipam/del", att, nil)
	return err
}

// Check verifies an attachment's record against the addresses the runtime has.
func (c *Client) Check(ctx context.Context, args *CheckArgs) error {
	_, err := c.call(ctx, "POST", "/ipam/check", args, nil)
	return err
}

// GC releases what the node holds for attachments no longer valid.
func (c *Client) GC(ctx context.Context, args *GCArgs) (*GCResult, error) {
	var out GCResult
	ok, err := c.call(ctx, "POST", "/ipam/gc", args, &out)
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
	ok, err := c.call(ctx, "GET", "/status", nil, &out)
	if err != nil || !ok {
		return nil, err
	}
	return &out, nil
}

// call sends body (JSON) and decodes a 2xx answer into out, reporting whether it had a
// body; any other answer is an *APIError, no answer at all a *ConnError. When ctx ends
// first the error wraps ctx.Err().
func (c *Client) call(ctx context.Context, method, path string, body, out any) (bool, error) {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return false, err
		}
	}
	status, data, err := c.roundTrip(ctx, method, basePath+path, b)
	if err != nil {
		if ctx.Err() != nil {
			return false, fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return false, err
	}
	if status < 200 || status > 299 {
		ae := &APIError{Status: status}
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

// roundTrip sends one HTTP/1.0 request on its own connection and reads the answer's
// status and body. An HTTP/1.0 request is never answered in chunks: the body is
// Content-Length bytes, or everything up to the close.
func (c *Client) roundTrip(ctx context.Context, method, target string, body []byte) (int, []byte, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return 0, nil, &ConnError{Op: "dial", Err: err}
	}
	defer conn.Close()
	// The connection gives up when ctx does: a deadline in the past fails any pending
	// read or write.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(aLongTimeAgo) })
	defer stop()

	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.0\r\nHost: orbweaver-agent\r\nAccept: application/json\r\n", method, target)
	if body != nil {
		fmt.Fprintf(&req, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n")
	req.Write(body)
	if _, err := conn.Write(req.Bytes()); err != nil {
		return 0, nil, &ConnError{Op: "send", Err: err}
	}

	r := bufio.NewReader(io.LimitReader(conn, maxAnswer))
	status, length, err := readHead(r)
	if err != nil {
		return 0, nil, &ConnError{Op: "receive", Err: err}
	}
	var data []byte
	if length >= 0 {
		data = make([]byte, length)
		_, err = io.ReadFull(r, data)
	} else {
		data, err = io.ReadAll(r)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read the answer: %w", err)
	}
	return status, data, nil
}

// readHead reads an answer's status line and headers: the status code and the
// Content-Length (-1 when absent).
func readHead(r *bufio.Reader) (status int, length int, err error) {
	line, err := readLine(r)
	if err != nil {
		return 0, 0, err
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	if !strings.HasPrefix(proto, "HTTP/1.") || len(code) != 3 {
		return 0, 0, fmt.Errorf("not an HTTP answer: %q", truncate(line))
	}
	if status, err = strconv.Atoi(code); err != nil {
		return 0, 0, fmt.Errorf("not an HTTP status: %q", truncate(line))
	}
	length = -1
	for {
		line, err := readLine(r)
		if err != nil {
			return 0, 0, err
		}
		if line == "" {
			return status, length, nil
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimSpace(value)
		switch {
		case strings.EqualFold(name, "Content-Length"):
			if length, err = strconv.Atoi(value); err != nil || length < 0 {
				return 0, 0, fmt.Errorf("bad Content-Length %q", truncate(value))
			}
		case strings.EqualFold(name, "Transfer-Encoding") && !strings.EqualFold(value, "identity"):
			return 0, 0, fmt.Errorf("answer in Transfer-Encoding %q to an HTTP/1.0 request", truncate(value))
		}
	}
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
