// Command workload is the test workload image's process: it answers HTTP on :8080 with
// its hostname and the addresses of its interfaces (what tests compare with the pod's
// status), and stops on SIGTERM. With a downward API volume of the pod's annotations at
// /etc/podinfo it also answers the pod's EIP (eip=<orbweaver.io/allocated-eip>), as seen
// from inside. As an init container, `workload -wait-annotation KEY` waits until the pod
// has that annotation (seed 001's init container waiting for its EIP), at most 5 minutes.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func addresses() []string {
	var out []string
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		if i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			out = append(out, i.Name+"="+a.String())
		}
	}
	return out
}

// podinfo is where a downward API volume of the pod's annotations is mounted.
const podinfo = "/etc/podinfo/annotations"

// annotation reads one annotation from the downward API file (key="value" lines).
func annotation(key string) string {
	data, err := os.ReadFile(podinfo)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok && k == key {
			if u, err := strconv.Unquote(v); err == nil {
				return u
			}
		}
	}
	return ""
}

// waitAnnotation waits until the pod has key, printing it; false after 5 minutes.
func waitAnnotation(key string) bool {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		if v := annotation(key); v != "" {
			fmt.Printf("%s=%s\n", key, v)
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "no annotation %s in %s after 5 minutes\n", key, podinfo)
	return false
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-wait-annotation" {
		if !waitAnnotation(os.Args[2]) {
			os.Exit(1)
		}
		return
	}
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		extra := ""
		if e := annotation("orbweaver.io/allocated-eip"); e != "" {
			extra = " eip=" + e
		}
		fmt.Fprintf(w, "%s %s%s\n", host, strings.Join(addresses(), " "), extra)
	})
	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}()
	fmt.Printf("%s serving on :8080; addresses %s\n", host, strings.Join(addresses(), " "))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
}
