// Command cloudemu serves the local EIP cloud emulators on 127.0.0.1, over one
// in-memory cloud, for the local cluster (`make demo`, the end-to-end suite): the
// controller's official SDKs talk to it as to the real clouds, through their endpoint
// settings. It never listens on anything but loopback.
//
//	cloudemu -alibaba 127.0.0.1:18081 -aws 127.0.0.1:18082 -tencent 127.0.0.1:18083 -admin 127.0.0.1:18080
//
// The admin address is the account holder's console:
//   - GET /eips lists the cloud's EIPs as JSON: the cloud's own view, for the demo to
//     show next to the cluster's;
//   - POST /eips buys one EIP, as an administrator does before naming it on a pod: the
//     body is an eip.AllocateRequest (its tags), the answer the eip.Address;
//   - POST /bandwidth-packages?id=<id> creates a shared bandwidth package.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	alibabaemu "github.com/orbweaver-ipam/orbweaver/internal/eipemulator/alibaba"
	awsemu "github.com/orbweaver-ipam/orbweaver/internal/eipemulator/aws"
	tencentemu "github.com/orbweaver-ipam/orbweaver/internal/eipemulator/tencent"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
)

func main() {
	addrs := map[string]*string{
		"alibaba": flag.String("alibaba", "", "address of the Alibaba Cloud VPC/ECS emulator (empty: off)"),
		"aws":     flag.String("aws", "", "address of the AWS EC2 emulator (empty: off)"),
		"tencent": flag.String("tencent", "", "address of the Tencent Cloud VPC emulator (empty: off)"),
		"admin":   flag.String("admin", "", "address of GET /eips (empty: off)"),
	}
	async := flag.Duration("async-delay", 500*time.Millisecond, "how long associations and disassociations take, as on the real clouds")
	flag.Parse()
	if err := run(addrs, *async); err != nil {
		fmt.Fprintln(os.Stderr, "cloudemu:", err)
		os.Exit(1)
	}
}

func run(addrs map[string]*string, async time.Duration) error {
	cloud := eiptest.NewCloud()
	cloud.AsyncDelay = async
	handlers := map[string]http.Handler{
		"alibaba": alibabaemu.New(cloud),
		"aws":     awsemu.New(cloud),
		"tencent": tencentemu.New(cloud),
		"admin":   admin(cloud),
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errs := make(chan error, len(addrs))
	n := 0
	for name, addr := range addrs {
		if *addr == "" {
			continue
		}
		host, _, err := net.SplitHostPort(*addr)
		if err != nil || !net.ParseIP(host).IsLoopback() {
			return fmt.Errorf("-%s %s: listen on a loopback address only", name, *addr)
		}
		l, err := net.Listen("tcp", *addr)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: handlers[name], ReadHeaderTimeout: 10 * time.Second}
		go func() { errs <- srv.Serve(l) }()
		go func() { <-ctx.Done(); _ = srv.Close() }()
		fmt.Printf("cloudemu: %s on http://%s\n", name, *addr)
		n++
	}
	if n == 0 {
		return errors.New("nothing to serve: give at least one address")
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errs:
		return err
	}
}

// admin serves the account holder's console (see the package comment).
func admin(cloud *eiptest.Cloud) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /eips", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(cloud.Snapshot())
	})
	mux.HandleFunc("POST /eips", func(w http.ResponseWriter, r *http.Request) {
		var req eip.AllocateRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
			http.Error(w, "the body is not an eip.AllocateRequest: "+err.Error(), http.StatusBadRequest)
			return
		}
		a, err := cloud.Allocate(r.Context(), req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a)
	})
	mux.HandleFunc("POST /bandwidth-packages", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		if id == "" {
			http.Error(w, "give the package's id: ?id=<id>", http.StatusBadRequest)
			return
		}
		cloud.AddBandwidthPackage(id)
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
