package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// The seeds' manifests as their documents give them; only the images differ (busybox:1.28
// and nginx are not reachable here: BusyboxImage and WorkloadImage stand in). Seed 000's
// final manifest is a fragment (strategy, annotation, readiness gate): the selector and
// the container are the least a Deployment needs, and the EIP ID is the one bought.
const (
	// seed001InitPod is seed 001's pod whose init container waits, with BusyBox's
	// timeout and grep, for ACK's annotation through the downward API.
	seed001InitPod = `apiVersion: v1
kind: Pod
metadata:
  name: example
  annotations:
    k8s.aliyun.com/pod-with-eip: "true"
spec:
  containers:
  - name: example
    image: busybox:1.28
    command: ['sh', '-c', 'echo The app is running! && sleep 3600']
  initContainers:
  - name: init
    image: busybox:1.28
    command: ['timeout', '-t' ,'60', 'sh','-c', "until grep -E '^k8s.aliyun.com\\/allocated-eipAddress=\\S?[0-9]+\\S?' /etc/podinfo/annotations; do echo waiting for annotations; sleep 2; done"]
    volumeMounts:
      - name: podinfo
        mountPath: /etc/podinfo
  volumes:
    - name: podinfo
      downwardAPI:
        items:
          - path: "labels"
            fieldRef:
              fieldPath: metadata.labels
          - path: "annotations"
            fieldRef:
              fieldPath: metadata.annotations
`
	// seed000Final is seed 000's final manifest: a pre-bought EIP by ID, Recreate, and
	// ACK's readiness gate.
	seed000Final = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  strategy:
    type: Recreate
  selector: {matchLabels: {app: app}}
  template:
    metadata:
      labels: {app: app}
      annotations:
        k8s.aliyun.com/pod-eip-instanceid: eip-XXXXXXXlus72fax
    spec:
      readinessGates:
      - conditionType: "k8s.aliyun.com/eip"
      containers:
      - name: app
        image: nginx
`
	// seed001Deployment is seed 001's Deployment drawing its EIP from a public IP
	// address pool, with the shared bandwidth package annotation its table documents
	// (k8s.aliyun.com/eip-common-bandwidth-package-id) added.
	seed001Deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: example
  labels:
    app: example
spec:
  replicas: 1
  selector:
    matchLabels:
      app: example
  template:
    metadata:
      labels:
        app: example
      annotations:
        k8s.aliyun.com/pod-with-eip: "true"
        k8s.aliyun.com/eip-bandwidth: "5"
        k8s.aliyun.com/eip-public-ip-address-pool-id: "pippool-bp1bbpq1jjncxxxx"
        k8s.aliyun.com/eip-common-bandwidth-package-id: "cbwp-2zeXXXXXX"
    spec:
      readinessGates:
      - conditionType: "k8s.aliyun.com/eip"
      containers:
      - name: example
        image: nginx
`
)

// localImages swaps the seeds' images for the local stand-ins.
func localImages(m string) string {
	m = strings.ReplaceAll(m, "image: busybox:1.28", "image: "+BusyboxImage)
	return strings.ReplaceAll(m, "image: nginx", "image: "+WorkloadImage+"\n        imagePullPolicy: Never")
}

// TestE2ESeeds000And001 applies seeds 000's and 001's own manifests (ACK's annotations
// and readiness gate, images aside) on the local cluster, with the chart's
// eip.vendorAnnotations on, against the Alibaba emulator. What an administrator does
// first is outside the manifests, as on ACK: a default pool for the namespace, the
// namespace allowed to ask for EIPs, one EIP bought and tagged for it, and the shared
// bandwidth package. Then:
//   - seed 001's init container finds k8s.aliyun.com/allocated-eipAddress with its own
//     grep, under BusyBox 1.28's timeout, and exits 0; the pod runs;
//   - seed 000's final Deployment binds the bought EIP and turns Ready through ACK's gate;
//   - seed 001's Deployment gets an EIP of the public IP pool, inside the bandwidth
//     package (AddCommonBandwidthPackageIp reached the emulator), Ready through the gate.
func TestE2ESeeds000And001(t *testing.T) {
	c := requireCluster(t)
	ns := namespace(t, c, "e2e-ack")
	manualPool(t, c, "e2e-ack", "10.244.176.10-10.244.176.19")
	k(t, c, "", "annotate", "namespace", ns, `ipam.spidernet.io/default-ipv4-ippool=["e2e-ack"]`)
	k(t, c, "", "label", "namespace", ns, v2beta1.LabelEIPRequests+"="+v2beta1.EIPRequestsAllowed)
	cluster := k(t, c, "", "get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}")
	bought := buyEIP(t, map[string]string{"orbweaver.io/cluster": cluster, "orbweaver.io/namespace": ns})
	if err := adminPost("/bandwidth-packages?id=cbwp-2zeXXXXXX", nil, nil); err != nil {
		t.Fatal(err)
	}

	apply(t, c, ns, localImages(seed001InitPod))
	apply(t, c, ns, strings.ReplaceAll(localImages(seed000Final), "eip-XXXXXXXlus72fax", bought.ID))
	apply(t, c, ns, localImages(seed001Deployment))
	t.Cleanup(func() {
		_, _ = c.kubectl("-n", ns, "delete", "deployment", "--all", "--wait=true", "--timeout=60s")
		_, _ = c.kubectl("-n", ns, "delete", "pod", "example", "--wait=true", "--timeout=60s")
	})
	dump := func() string {
		out, _ := c.kubectl("-n", ns, "get", "events", "--sort-by=.lastTimestamp")
		return out
	}

	// Seed 001's init container.
	if err := waitFor("seed 001's init container done and its pod running", 120*time.Second, func() error {
		out, err := c.kubectl("-n", ns, "get", "pod", "example", "-o",
			`jsonpath={.status.phase} {.status.initContainerStatuses[0].state.terminated.exitCode} {.metadata.annotations.k8s\.aliyun\.com/allocated-eipAddress}`)
		if err != nil {
			return err
		}
		f := strings.Fields(out)
		if len(f) != 3 || f[0] != "Running" || f[1] != "0" {
			return fmt.Errorf("pod example: %q (phase, init exit code, ACK's annotation)", out)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\nevents:\n%s", err, dump())
	}
	initLog := k(t, c, ns, "logs", "example", "-c", "init")
	if !strings.Contains(initLog, "k8s.aliyun.com/allocated-eipAddress=") {
		t.Errorf("seed 001's init container's grep printed no annotation line:\n%s", initLog)
	}

	// The two Deployments, Ready through ACK's gate.
	ready := func(app string) (podIP, public string) {
		t.Helper()
		if err := waitFor(app+" Ready through k8s.aliyun.com/eip", 120*time.Second, func() error {
			out, err := c.kubectl("-n", ns, "get", "pods", "-l", "app="+app, "-o",
				`jsonpath={range .items[*]}{.status.conditions[?(@.type=="k8s.aliyun.com/eip")].status} {.status.conditions[?(@.type=="Ready")].status} {.status.podIP} {.metadata.annotations.k8s\.aliyun\.com/allocated-eipAddress}{"\n"}{end}`)
			if err != nil {
				return err
			}
			f := strings.Fields(out)
			if len(f) != 4 || f[0] != "True" || f[1] != "True" {
				return fmt.Errorf("pods of %s: %q (ACK's gate, Ready, IP, ACK's annotation)", app, out)
			}
			podIP, public = f[2], f[3]
			return nil
		}); err != nil {
			t.Fatalf("%v\nevents:\n%s", err, dump())
		}
		return podIP, public
	}
	appIP, appEIP := ready("app")
	if appEIP != bought.PublicIP {
		t.Errorf("seed 000's pod shows EIP %s, want the bought %s (%s)", appEIP, bought.PublicIP, bought.ID)
	}
	exIP, exEIP := ready("example")

	cloud, err := cloudEIPs()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, e := range cloud {
		switch e.PublicIP {
		case appEIP:
			found++
			if e.ID != bought.ID || e.State != eip.InUse || e.PrivateIP != appIP {
				t.Errorf("the bought EIP in the cloud: %+v, want %s in use on %s", e, bought.ID, appIP)
			}
		case exEIP:
			found++
			if e.State != eip.InUse || e.PrivateIP != exIP {
				t.Errorf("seed 001's Deployment's EIP in the cloud: %+v, want in use on %s", e, exIP)
			}
			if e.BandwidthPackage != "cbwp-2zeXXXXXX" {
				t.Errorf("seed 001's Deployment's EIP is in bandwidth package %q, want cbwp-2zeXXXXXX", e.BandwidthPackage)
			}
		}
	}
	if found != 2 {
		t.Errorf("the cloud has %d of the pods' EIPs %s and %s", found, appEIP, exEIP)
	}
	ev := k(t, c, ns, "get", "events", "--field-selector", "reason=EIPAttributeUnhonoured", "-o", "jsonpath={.items[*].message}")
	if ev != "" {
		t.Errorf("an attribute went unhonoured: %s", ev)
	}
}

// buyEIP buys an EIP in the emulator's console, tagged as given.
func buyEIP(t *testing.T, tags map[string]string) eip.Address {
	t.Helper()
	var a eip.Address
	if err := adminPost("/eips", eip.AllocateRequest{ClientToken: "bought-" + t.Name(), Tags: tags}, &a); err != nil {
		t.Fatal(err)
	}
	if a.ID == "" || a.PublicIP == "" {
		t.Fatalf("the emulator sold %+v", a)
	}
	return a
}

// adminPost posts body (JSON, when not nil) to the emulator's console and decodes the
// answer into out (when not nil).
func adminPost(path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Post("http://"+emuAdmin+path, "application/json", rd)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
