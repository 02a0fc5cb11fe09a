// Command cluster runs a real single-node Kubernetes cluster on this machine, without
// Docker: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and a kubelet with
// containerd and runc, all built from source by tools/ (containerd and runc from Debian).
// docs/guides/local-cluster.md is its guide.
//
//	go run ./test/cluster images   build the images into .cluster/images
//	go run ./test/cluster up       start the cluster (builds what is missing), wait for the node
//	go run ./test/cluster install  helm install orbweaver into it (images from up)
//	go run ./test/cluster demo     up, install, run seed 004's workloads and show them
//	go run ./test/cluster down     stop only what up started and remove what it made
//
// Everything listens on 127.0.0.1 or on the node bridge address it creates (10.244.0.1).
// The admin kubeconfig is .cluster/kubeconfig.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

func main() {
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go run ./test/cluster [-dir .cluster] images|up|down")
		flag.PrintDefaults()
	}
	dir := flag.String("dir", "", "the cluster's folder (default <repo>/.cluster)")
	noTools := flag.Bool("no-tools", false, "use the tools in bin/ as they are (do not run tools/ensure.sh)")
	flag.Parse()
	root, err := testenv.RepoRoot()
	if err != nil {
		fail(err)
	}
	if *dir == "" {
		*dir = filepath.Join(root, ".cluster")
	}
	c := newCluster(root, *dir)
	c.noTools = *noTools
	switch flag.Arg(0) {
	case "images":
		if err = c.packages(); err == nil {
			_, err = c.buildImages()
		}
	case "up":
		err = c.up()
	case "down":
		err = c.down()
	case "install":
		err = c.install()
	case "demo":
		err = c.demo()
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "cluster:", err)
	os.Exit(1)
}
