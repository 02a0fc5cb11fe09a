// Command cloudemu serves the local EIP cloud emulators on 127.0.0.1, over one
// in-memory cloud, for the local cluster (`make demo`, the end-to-end suite): the
// controller's official SDKs talk to it as to the real clouds, through their endpoint
// settings. It never listens on anything but loopback.
//
//	cloudemu -alibaba 127.0.0.1:18081 -aws 127.0.0.1:18082 -tencent 127.0.0.1:18083 -admin 127.0.0.1:18080
//
// GET /eips on the admin address lists the cloud's EIPs as JSON: the cloud's own view,
// for the demo to show next to the cluster's.
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
		"admin": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || r.URL.Path != "/eips" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(cloud.Snapshot())
		}),
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
