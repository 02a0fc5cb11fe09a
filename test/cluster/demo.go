package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// demo brings the cluster up, installs orbweaver with its chart and shows it serving
// real workloads (seed 004 and a StatefulSet): their IPs, the pools, a pod replaced
// within its auto pool's range, a StatefulSet pod back with its IP, a scale-up growing
// the auto pool.
func (c *cluster) demo() error {
	start := time.Now()
	if err := c.up(); err != nil {
		return err
	}
	fmt.Println("== orbweaver, installed by its Helm chart")
	if err := c.install(); err != nil {
		return err
	}
	examples := filepath.Join(c.root, "docs", "examples")
	fmt.Println("== seed 004's subnet and pool, its Deployments, and a StatefulSet (docs/examples)")
	for _, f := range []string{"nginx-subnet-v4.yaml", "nginx-v4-ippool.yaml", "demo-workloads.yaml"} {
		out, err := c.kubectl("apply", "-f", filepath.Join(examples, f))
		if err != nil {
			return err
		}
		fmt.Print(indent(out) + "\n")
	}
	if err := c.waitPods(7); err != nil {
		return err
	}
	c.show("get", "pods", "-o", "wide")
	c.show("get", "ss,sp")
	c.show("get", "se")

	fmt.Println("== a pod of nginx deleted: its replacement gets an IP of the same auto pool")
	pool, _ := c.kubectl("get", "sp", "-l", "ipam.spidernet.io/owner-application-name=nginx", "-o", "jsonpath={.items[0].metadata.name} {.items[0].spec.ips}")
	victim, err := c.kubectl("get", "pods", "-l", "app=nginx", "-o", "jsonpath={.items[0].metadata.name}")
	if err != nil {
		return err
	}
	if _, err := c.kubectl("delete", "pod", victim, "--wait=false"); err != nil {
		return err
	}
	if err := c.waitPods(7); err != nil {
		return err
	}
	fmt.Printf("  auto pool %s\n", pool)
	c.show("get", "pods", "-l", "app=nginx", "-o", "wide")

	fmt.Println("== StatefulSet pod web-1 deleted: it comes back with its IP")
	before, _ := c.kubectl("get", "pod", "web-1", "-o", "jsonpath={.status.podIP}")
	if _, err := c.kubectl("delete", "pod", "web-1"); err != nil {
		return err
	}
	if err := c.waitPods(7); err != nil {
		return err
	}
	after, _ := c.kubectl("get", "pod", "web-1", "-o", "jsonpath={.status.podIP}")
	fmt.Printf("  web-1 had %s; the new web-1 has %s\n", before, after)

	fmt.Println("== nginx scaled from 2 to 3: its auto pool grows from 5 to 6 IPs")
	if _, err := c.kubectl("scale", "deployment", "nginx", "--replicas=3"); err != nil {
		return err
	}
	if err := c.waitPods(8); err != nil {
		return err
	}
	if err := waitFor("the auto pool to hold 6 IPs", 30*time.Second, func() error {
		out, err := c.kubectl("get", "sp", "-l", "ipam.spidernet.io/owner-application-name=nginx", "-o", "jsonpath={.items[0].status.totalIPCount}")
		if err == nil && strings.TrimSpace(out) != "6" {
			err = fmt.Errorf("totalIPCount %s", out)
		}
		return err
	}); err != nil {
		return err
	}
	c.show("get", "sp")

	if err := c.demoEIP(filepath.Join(examples, "eip-prober.yaml")); err != nil {
		return err
	}

	fmt.Printf(`
The demo is up (%s). Explore it:

  export KUBECONFIG=%s
  kubectl get pods -o wide; kubectl get ss,sp,se
  kubectl describe sp nginx-v4-ippool           # counts and conditions
  kubectl get se -o wide; kubectl get sp prober-eip-v4 -o yaml   # EIPs and their bindings
  curl -s http://%s/eips                 # the (emulated) cloud's own view
  kubectl -n kube-system logs ds/orbweaver-agent
  curl http://<pod IP>:8080/     # from this machine: each pod answers with its name and IPs
  docs/guides/auto-pools.md, docs/guides/statefulset-fixed-ips.md, docs/guides/eip.md

Tear it down with: make demo-down
`, time.Since(start).Round(time.Second), c.kubeconfig(), emuAdmin)
	return nil
}

// demoEIP runs seed 000's prober on a pool with EIPs in the emulated Alibaba Cloud: the
// pods become Ready once their EIPs are bound, and each shows its own public address.
func (c *cluster) demoEIP(manifest string) error {
	fmt.Println("== seed 000's prober: a pool whose IPs each get an EIP (docs/examples/eip-prober.yaml, emulated Alibaba Cloud)")
	out, err := c.kubectl("apply", "-f", manifest)
	if err != nil {
		return err
	}
	fmt.Print(indent(out) + "\n")
	if _, err := c.kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=prober", "--timeout=120s"); err != nil {
		return fmt.Errorf("prober pods Ready (their EIP readiness gate): %w", err)
	}
	c.show("get", "pods", "-l", "app=prober", "-o", "wide")
	c.show("get", "se", "-o", "wide")
	c.show("get", "pods", "-l", "app=prober", "-o", `custom-columns=POD:.metadata.name,IP:.status.podIP,EIP:.metadata.annotations.orbweaver\.io/allocated-eip,GATE:.status.conditions[?(@.type=="orbweaver.io/eip")].status`)
	ip, _ := c.kubectl("get", "pods", "-l", "app=prober", "-o", "jsonpath={.items[0].status.podIP}")
	if ip = strings.TrimSpace(ip); ip != "" {
		fmt.Printf("$ curl http://%s:8080/   # the prober sees its EIP (its init container waited for it)\n", ip)
		if body, err := httpGet("http://" + ip + ":8080/"); err == nil {
			fmt.Println(indent(body))
		}
	}
	eips, err := cloudEIPs()
	if err != nil {
		return err
	}
	fmt.Println("$ curl http://" + emuAdmin + "/eips   # the cloud's view")
	for _, e := range eips {
		fmt.Printf("  %s  %-15s %-9s %s/%s  pool=%s\n", e.ID, e.PublicIP, e.State, e.NetworkInterface, e.PrivateIP, e.Tags["orbweaver.io/pool"])
	}
	return nil
}

// cloudEIPs reads the emulated cloud's EIPs.
func cloudEIPs() ([]eip.Address, error) {
	body, err := httpGet("http://" + emuAdmin + "/eips")
	if err != nil {
		return nil, err
	}
	var out []eip.Address
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		return nil, fmt.Errorf("the cloud emulator's /eips: %w", err)
	}
	return out, nil
}

// httpGet returns the body at url, with a 5 s timeout.
func httpGet(url string) (string, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// waitPods waits until n pods of the default namespace are Running and Ready, and no
// other pod is left (deleted ones gone).
func (c *cluster) waitPods(n int) error {
	return waitFor(fmt.Sprintf("%d pods Running", n), 120*time.Second, func() error {
		out, err := c.kubectl("get", "pods", "-o", `jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.metadata.deletionTimestamp}{"\n"}{end}`)
		if err != nil {
			return err
		}
		running, total := 0, 0
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			total++
			if len(f) == 2 && f[1] == "Running" {
				running++
			}
		}
		if running != n || total != n {
			return fmt.Errorf("%d of %d pods running", running, total)
		}
		return nil
	})
}

// show prints a kubectl command and its output.
func (c *cluster) show(args ...string) {
	out, err := c.kubectl(args...)
	fmt.Printf("$ kubectl %s\n", strings.Join(args, " "))
	if err != nil {
		fmt.Println(indent(err.Error()))
		return
	}
	fmt.Println(indent(out))
}
