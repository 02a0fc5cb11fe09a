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

// serverMetrics is a snapshot (or a difference of two) of what the API server's /metrics
// says about the run: requests, its own CPU time, and watch events.
type serverMetrics struct {
	requests requestCounts
	// cpuSeconds is process_cpu_seconds_total: the API server's CPU time.
	cpuSeconds float64
	// watchEvents is apiserver_watch_events_total by kind: events sent, counted once per
	// watcher that was sent each.
	watchEvents map[string]float64
	// eventSizeSum and eventSizeCount are apiserver_watch_events_sizes by kind: counted
	// once per serialization of an event, which the API server caches and shares among
	// its watchers, so not once per watcher (docs/performance.md).
	eventSizeSum, eventSizeCount map[string]float64
}

// scrapeServer reads the API server's /metrics.
func scrapeServer(ctx context.Context, cfg *rest.Config) (serverMetrics, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return serverMetrics{}, err
	}
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return serverMetrics{}, fmt.Errorf("GET /metrics: %w", err)
	}
	return parseServerMetrics(body)
}

// parseServerMetrics picks the series serverMetrics holds out of Prometheus text format.
func parseServerMetrics(text []byte) (serverMetrics, error) {
	m := serverMetrics{requests: requestCounts{}, watchEvents: map[string]float64{}, eventSizeSum: map[string]float64{}, eventSizeCount: map[string]float64{}}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			// A series without labels: "name value".
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "process_cpu_seconds_total" {
				v, err := strconv.ParseFloat(f[1], 64)
				if err != nil {
					return m, fmt.Errorf("parse %q: %w", line, err)
				}
				m.cpuSeconds = v
			}
			continue
		}
		var into func(labels map[string]string, v float64)
		switch name {
		case "apiserver_request_total":
			into = func(l map[string]string, v float64) {
				m.requests[requestKey{verb: l["verb"], group: l["group"], resource: l["resource"], subresource: l["subresource"], code: l["code"]}] += v
			}
		case "apiserver_watch_events_total":
			into = func(l map[string]string, v float64) { m.watchEvents[l["kind"]] += v }
		case "apiserver_watch_events_sizes_sum":
			into = func(l map[string]string, v float64) { m.eventSizeSum[l["kind"]] += v }
		case "apiserver_watch_events_sizes_count":
			into = func(l map[string]string, v float64) { m.eventSizeCount[l["kind"]] += v }
		default:
			continue
		}
		labels, rest, err := parseLabels(rest)
		if err != nil {
			return m, fmt.Errorf("parse %q: %w", line, err)
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return m, fmt.Errorf("parse %q: no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return m, fmt.Errorf("parse %q: %w", line, err)
		}
		into(labels, v)
	}
	return m, sc.Err()
}

// parseRequestCounts picks apiserver_request_total out of Prometheus text format.
func parseRequestCounts(text []byte) (requestCounts, error) {
	m, err := parseServerMetrics(text)
	return m.requests, err
}

// sub returns m minus before.
func (m serverMetrics) sub(before serverMetrics) serverMetrics {
	diff := func(a, b map[string]float64) map[string]float64 {
		out := map[string]float64{}
		for k, v := range a {
			if d := v - b[k]; d != 0 {
				out[k] = d
			}
		}
		return out
	}
	return serverMetrics{
		requests: m.requests.sub(before.requests), cpuSeconds: m.cpuSeconds - before.cpuSeconds,
		watchEvents: diff(m.watchEvents, before.watchEvents), eventSizeSum: diff(m.eventSizeSum, before.eventSizeSum),
		eventSizeCount: diff(m.eventSizeCount, before.eventSizeCount),
	}
}

// estimatedWatchBytes is what the API server's metrics suggest its watchers were sent:
// the events sent to watchers times each kind's mean event size.
func (m serverMetrics) estimatedWatchBytes() float64 {
	var n float64
	for kind, events := range m.watchEvents {
		if c := m.eventSizeCount[kind]; c > 0 {
			n += events * m.eventSizeSum[kind] / c
		}
	}
	return n
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

// reads sums the GET and LIST requests (WATCH, counted when a watch ends, is left out).
func (c requestCounts) reads() float64 {
	var n float64
	for k, v := range c {
		if k.verb == "GET" || k.verb == "LIST" {
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
