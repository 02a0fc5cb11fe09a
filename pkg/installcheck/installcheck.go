// Package installcheck tells whether an installed orbweaver works, as `helm test` asks
// (`orbweaver-controller check-install`, the chart's test Pod): every agent of the
// DaemonSet is ready on its node, and a pool create reaches the admission webhooks, which
// admit a valid pool and refuse an invalid one. Pools are created with dry run only:
// nothing is written.
package installcheck

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// Params are what Run checks.
type Params struct {
	// Client reaches the API server directly (no cache).
	Client client.Client
	// Namespace and DaemonSet name the agents' DaemonSet.
	Namespace, DaemonSet string
	// EnableIPv4 and EnableIPv6 are the families the webhooks admit (the chart's
	// ipam.enableIPv4/6): the probe pools use the first one enabled.
	EnableIPv4, EnableIPv6 bool
}

// Result is what a passing Run found.
type Result struct {
	// Agents is the number of ready agents.
	Agents int
	// Refused is the webhook's message for the invalid pool.
	Refused string
}

// ErrNotReady is returned (wrapped) when an agent is not ready.
var ErrNotReady = errors.New("not every agent is ready")

// ErrWebhook is returned (wrapped) when the webhooks do not answer as they should.
var ErrWebhook = errors.New("the admission webhooks do not work")

// Run checks the agents, then the webhooks; the first failure is returned, naming what
// failed.
func Run(ctx context.Context, p Params) (Result, error) {
	n, err := agentsReady(ctx, p)
	if err != nil {
		return Result{}, err
	}
	refused, err := webhooksWork(ctx, p)
	if err != nil {
		return Result{}, err
	}
	return Result{Agents: n, Refused: refused}, nil
}

// agentsReady checks that the DaemonSet has every pod it wants scheduled, updated and
// ready, and names the pods that are not.
func agentsReady(ctx context.Context, p Params) (int, error) {
	ds := &appsv1.DaemonSet{}
	if err := p.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: p.DaemonSet}, ds); err != nil {
		return 0, fmt.Errorf("DaemonSet %s/%s: %w", p.Namespace, p.DaemonSet, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return 0, fmt.Errorf("DaemonSet %s/%s: selector: %w", p.Namespace, p.DaemonSet, err)
	}
	pods := &corev1.PodList{}
	if err := p.Client.List(ctx, pods, client.InNamespace(p.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return 0, fmt.Errorf("pods of DaemonSet %s/%s: %w", p.Namespace, p.DaemonSet, err)
	}
	var notReady []string
	ready := 0
	for _, pod := range pods.Items {
		if pod.DeletionTimestamp != nil {
			continue
		}
		if podReady(&pod) {
			ready++
			continue
		}
		notReady = append(notReady, fmt.Sprintf("%s on node %q (%s)", pod.Name, pod.Spec.NodeName, pod.Status.Phase))
	}
	slices.Sort(notReady)
	st := ds.Status
	switch {
	case st.DesiredNumberScheduled == 0:
		return 0, fmt.Errorf("DaemonSet %s/%s wants no pod on any node (nodeSelector, affinity, tolerations?): %w", p.Namespace, p.DaemonSet, ErrNotReady)
	case len(notReady) > 0:
		return 0, fmt.Errorf("DaemonSet %s/%s: %s: %w", p.Namespace, p.DaemonSet, strings.Join(notReady, ", "), ErrNotReady)
	case st.NumberReady < st.DesiredNumberScheduled || st.UpdatedNumberScheduled < st.DesiredNumberScheduled || int32(ready) < st.DesiredNumberScheduled:
		return 0, fmt.Errorf("DaemonSet %s/%s: %d of %d agents ready, %d updated: %w",
			p.Namespace, p.DaemonSet, st.NumberReady, st.DesiredNumberScheduled, st.UpdatedNumberScheduled, ErrNotReady)
	}
	return ready, nil
}

func podReady(pod *corev1.Pod) bool {
	return slices.ContainsFunc(pod.Status.Conditions, func(c corev1.PodCondition) bool {
		return c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue
	})
}

// Probe pools: documentation ranges (RFC 5737, RFC 3849), created with dry run only.
const (
	probeName = "orbweaver-check-install"
)

// probe returns a valid pool of the first enabled family and an invalid one (an address
// outside its subnet, which only the validating webhook refuses: the CRD's schema
// cannot tell).
func probe(p Params) (valid, invalid *v2beta1.SpiderIPPool) {
	subnet, ips, outside := "198.51.100.0/24", "198.51.100.200-198.51.100.201", "203.0.113.7"
	if !p.EnableIPv4 && p.EnableIPv6 {
		subnet, ips, outside = "2001:db8:ffff:ff00::/120", "2001:db8:ffff:ff00::c8-2001:db8:ffff:ff00::c9", "2001:db8:eeee::7"
	}
	valid = &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: probeName},
		Spec:       v2beta1.IPPoolSpec{Subnet: v2beta1.CIDR(subnet), IPs: []v2beta1.IPOrRange{v2beta1.IPOrRange(ips)}},
	}
	invalid = valid.DeepCopy()
	invalid.Name = probeName + "-invalid"
	invalid.Spec.IPs = []v2beta1.IPOrRange{v2beta1.IPOrRange(outside)}
	return valid, invalid
}

// webhooksWork creates a valid pool and an invalid one, both with dry run: the first must
// be admitted (so the webhooks answer, with a certificate the API server trusts), the
// second refused by orbweaver's validating webhook.
func webhooksWork(ctx context.Context, p Params) (string, error) {
	valid, invalid := probe(p)
	if err := p.Client.Create(ctx, valid, client.DryRunAll); err != nil {
		return "", fmt.Errorf("dry-run create of SpiderIPPool %s (subnet %s): %w: %w", valid.Name, valid.Spec.Subnet, err, ErrWebhook)
	}
	err := p.Client.Create(ctx, invalid, client.DryRunAll)
	switch {
	case err == nil:
		return "", fmt.Errorf("dry-run create of SpiderIPPool %s with %s outside subnet %s was admitted; is the validating webhook configured? %w",
			invalid.Name, invalid.Spec.IPs[0], invalid.Spec.Subnet, ErrWebhook)
	case !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) && !apierrors.IsBadRequest(err):
		return "", fmt.Errorf("dry-run create of SpiderIPPool %s: %w: %w", invalid.Name, err, ErrWebhook)
	case !strings.Contains(err.Error(), "admission webhook"):
		return "", fmt.Errorf("dry-run create of SpiderIPPool %s was refused, but not by a webhook: %w: %w", invalid.Name, err, ErrWebhook)
	}
	return err.Error(), nil
}
