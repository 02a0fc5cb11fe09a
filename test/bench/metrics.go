package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// requestKey is one series of the API server's apiserver_request_total.
type requestKey struct {
	verb, group, resource, subresource, code string
}

// requestCounts is a snapshot (or a difference of two) of apiserver_request_total.
type requestCounts map[requestKey]float64

// isWrite reports whether an apiserver_request_total verb changes state. APPLY
// (server-side apply) and DELETECOLLECTION count, being PATCH and DELETE by another name.
func isWrite(verb string) bool {
	switch verb {
	case "POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION":
		return true
	}
	return false
}

// scrapeRequests reads apiserver_request_total from the API server's /metrics.
func scrapeRequests(ctx context.Context, cfg *rest.Config) (requestCounts, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	return parseRequestCounts(body)
}

// parseRequestCounts picks apiserver_request_total out of Prometheus text format.
func parseRequestCounts(text []byte) (requestCounts, error) {
	const name = "apiserver_request_total{"
	out := requestCounts{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		labels, rest, err := parseLabels(line[len(name):])
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", line, err)
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("parse %q: no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", line, err)
		}
		k := requestKey{verb: labels["verb"], group: labels["group"], resource: labels["resource"], subresource: labels["subresource"], code: labels["code"]}
		out[k] += v
	}
	return out, sc.Err()
}

// parseLabels parses `a="x",b="y"}` and returns the labels and what follows the brace.
func parseLabels(s string) (map[string]string, string, error) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, " ,")
		if strings.HasPrefix(s, "}") {
			return labels, s[1:], nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || len(s) < eq+2 || s[eq+1] != '"' {
			return nil, "", fmt.Errorf("malformed label at %q", clip(s, 40))
		}
		key := s[:eq]
		s = s[eq+2:]
		var val strings.Builder
		i := 0
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[i])
				}
				continue
			}
			val.WriteByte(s[i])
		}
		if i == len(s) {
			return nil, "", fmt.Errorf("unterminated value of label %s", key)
		}
		labels[key] = val.String()
		s = s[i+1:]
	}
}

// sub returns c minus before, series by series.
func (c requestCounts) sub(before requestCounts) requestCounts {
	out := requestCounts{}
	for k, v := range c {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// writes sums the write requests.
func (c requestCounts) writes() float64 {
	var n float64
	for k, v := range c {
		if isWrite(k.verb) {
			n += v
		}
	}
	return n
}

// conflicts sums the requests answered 409 Conflict.
func (c requestCounts) conflicts() float64 {
	var n float64
	for k, v := range c {
		if k.code == "409" {
			n += v
		}
	}
	return n
}

// writesByResource sums the writes per "resource[/subresource] VERB".
func (c requestCounts) writesByResource() map[string]float64 {
	return c.byResource(isWrite)
}

// readsByResource sums the reads (GET and LIST; WATCH, counted when a watch ends, is
// left out) per "resource[/subresource] VERB".
func (c requestCounts) readsByResource() map[string]float64 {
	return c.byResource(func(verb string) bool { return verb == "GET" || verb == "LIST" })
}

func (c requestCounts) byResource(keep func(verb string) bool) map[string]float64 {
	out := map[string]float64{}
	for k, v := range c {
		if !keep(k.verb) {
			continue
		}
		r := k.resource
		if k.subresource != "" {
			r += "/" + k.subresource
		}
		out[r+" "+k.verb] += v
	}
	return out
}
