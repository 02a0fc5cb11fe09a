package tencent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// statusTransport turns an answer that is not the API's (a proxy's or load balancer's
// non-200 page) into a transport error naming the HTTP status. The API answers 200 even
// for errors, and the SDK parses the body before it looks at the status, so without
// this a "502 Bad Gateway" page would surface as ClientError.ParseJsonError and its
// status would be lost. The SDK reports the error as ClientError.NetworkError with
// this text, which classify reads.
type statusTransport struct{ next http.RoundTripper }

// maxErrorPage bounds how much of a non-200 body is read.
const maxErrorPage = 64 << 10

func (t statusTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil || resp.StatusCode == http.StatusOK {
		return resp, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorPage))
	_ = resp.Body.Close()
	var api struct {
		Response struct{ Error struct{ Code string } }
	}
	if rerr == nil && json.Unmarshal(body, &api) == nil && api.Response.Error.Code != "" {
		// An API error, whatever the status: let the SDK report its code.
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp, nil
	}
	return nil, fmt.Errorf("http status code: %d (%s) from %s, not an API answer", resp.StatusCode, http.StatusText(resp.StatusCode), r.URL.Host)
}
