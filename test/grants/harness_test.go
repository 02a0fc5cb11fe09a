package grants

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/client/operations"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/grants"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// This file is the harness of the crash proofs (docs/design/node-grants.md, "Crashes at
// every step"): agents and grant controllers that can be killed, not only stopped, and
// the checks that no address ever has two owners and none is lost.
//
// A kill is what a crashed process leaves behind, made without touching the code under
// test: the life's connection to the API server (a wrapped transport for an agent, a
// wrapped client for a controller) is cut, so nothing it sends from then on reaches the
// server, while what it sent already lands; its context is cancelled and its CNI callers
// are hung up on. Writes the test chose to keep back are the writes a crash leaves in
// flight: after the kill the test lets each of them land late, or never.

// errKilled is what a killed life's requests get: its process is gone.
var errKilled = errors.New("killed: the process is gone")

// errLost is what a controller gets for a write that landed when the test makes its
// answer lost.
var errLost = errors.New("the write's answer was lost")

// heldWrite is an API write an agent's life sent that the test keeps back.
type heldWrite struct {
	base   http.RoundTripper
	req    *http.Request
	body   []byte
	w      *wire
	state  int // guarded by w.mu
	freeCh chan struct{}
	once   sync.Once
}

const (
	writeHeld     = iota // kept back; the agent waits for its answer
	writeSent            // released before the kill: sent, the agent got its answer
	writeStranded        // the life was killed while it was kept back: in flight
	writeLanded          // sent after the kill (late)
	writeDropped         // never sent
)

// release lets a held write go now, if its life is still alive.
func (h *heldWrite) release() { h.once.Do(func() { close(h.freeCh) }) }

// land sends a write stranded by a kill, late; it reports the server's answer.
func (h *heldWrite) land(ctx context.Context) error {
	h.w.mu.Lock()
	if h.state != writeStranded {
		h.w.mu.Unlock()
		return fmt.Errorf("land %s %s: not stranded (state %d)", h.req.Method, h.req.URL.Path, h.state)
	}
	h.state = writeLanded
	h.w.mu.Unlock()
	resp, err := h.base.RoundTrip(h.request(ctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("late %s %s: %s: %s", h.req.Method, h.req.URL.Path, resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// drop makes a write stranded by a kill never land.
func (h *heldWrite) drop() {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	if h.state == writeStranded {
		h.state = writeDropped
	}
}

// request is the held request again, under ctx, with its body.
func (h *heldWrite) request(ctx context.Context) *http.Request {
	r := h.req.Clone(ctx)
	r.Body = io.NopCloser(bytes.NewReader(h.body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(h.body)), nil }
	r.ContentLength = int64(len(h.body))
	return r
}

// endpoint decodes a held SpiderEndpoint write (nil for anything else).
func (h *heldWrite) endpoint() *v2beta1.SpiderEndpoint {
	if !strings.Contains(h.req.URL.Path, "/spiderendpoints") || len(h.body) == 0 {
		return nil
	}
	se := &v2beta1.SpiderEndpoint{}
	if err := json.Unmarshal(h.body, se); err != nil {
		return nil
	}
	return se
}

func (h *heldWrite) String() string { return h.req.Method + " " + h.req.URL.Path }

// wire is one agent life's connection to the API server.
type wire struct {
	// hold picks the writes to keep back (given each write and its body); onHold is
	// told of each (both may be nil).
	hold   func(*http.Request, []byte) bool
	onHold func(*heldWrite)

	// lag, if set, holds back what the life's watches of one kind deliver while shut.
	lag *lag

	mu    sync.Mutex
	cut   bool
	cutCh chan struct{}
	held  []*heldWrite // kept back now (until the kill: then those it strands)
}

// lag makes an agent's cache of one kind fall behind the API server: while it is shut,
// the events of the agent's watches of that kind wait (lists are not held back).
type lag struct {
	kind string // plural, lower case
	mu   sync.Mutex
	open chan struct{} // closed while events flow
}

func newLag(kind string) *lag {
	g := &lag{kind: kind, open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *lag) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default:
	}
}

func (g *lag) lift() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// laggingBody is a watch's response body that delivers nothing while its lag is shut.
type laggingBody struct {
	io.ReadCloser
	g      *lag
	closed chan struct{}
	once   sync.Once
}

// Read hands over what the server sent only while the lag is open (a read waiting for
// data when the lag shuts holds back what comes).
func (b *laggingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.g.mu.Lock()
	open := b.g.open
	b.g.mu.Unlock()
	select {
	case <-open:
	case <-b.closed:
	}
	return n, err
}

func (b *laggingBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return b.ReadCloser.Close()
}

func newWire(hold func(*http.Request, []byte) bool, onHold func(*heldWrite)) *wire {
	return &wire{hold: hold, onHold: onHold, cutCh: make(chan struct{})}
}

// wrap is a rest.Config's WrapTransport: every client of the life goes through w.
func (w *wire) wrap(rt http.RoundTripper) http.RoundTripper { return &wireEnd{w: w, base: rt} }

// kill cuts the wire and returns the writes it strands.
func (w *wire) kill() []*heldWrite {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cut {
		return nil
	}
	w.cut = true
	close(w.cutCh)
	var stranded []*heldWrite
	for _, h := range w.held {
		if h.state == writeHeld {
			h.state = writeStranded
			stranded = append(stranded, h)
		}
	}
	return stranded
}

// inFlight counts the writes kept back now.
func (w *wire) inFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.held)
}

type wireEnd struct {
	w    *wire
	base http.RoundTripper
}

func (e *wireEnd) RoundTrip(r *http.Request) (*http.Response, error) {
	w := e.w
	w.mu.Lock()
	cut := w.cut
	w.mu.Unlock()
	if cut {
		return nil, errKilled
	}
	if r.Method == http.MethodGet && w.lag != nil && r.URL.Query().Get("watch") == "true" && strings.Contains(r.URL.Path, "/"+w.lag.kind) {
		resp, err := e.base.RoundTrip(r)
		if err == nil {
			resp.Body = &laggingBody{ReadCloser: resp.Body, g: w.lag, closed: make(chan struct{})}
		}
		return resp, err
	}
	if r.Method == http.MethodGet || w.hold == nil {
		return e.base.RoundTrip(r)
	}
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	h := &heldWrite{base: e.base, req: r, body: body, w: w, freeCh: make(chan struct{})}
	if !w.hold(r, body) {
		return e.base.RoundTrip(h.request(r.Context()))
	}
	w.mu.Lock()
	if w.cut {
		w.mu.Unlock()
		return nil, errKilled
	}
	w.held = append(w.held, h)
	w.mu.Unlock()
	if w.onHold != nil {
		w.onHold(h)
	}
	select {
	case <-h.freeCh:
	case <-w.cutCh:
	case <-r.Context().Done():
	}
	w.mu.Lock()
	switch {
	case h.state == writeStranded || w.cut:
		// kill turned it stranded, or will: either way it was never sent.
		w.mu.Unlock()
		return nil, errKilled
	case r.Context().Err() != nil:
		h.state = writeDropped // the agent gave up on it before it was sent
		w.forgetLocked(h)
		w.mu.Unlock()
		return nil, r.Context().Err()
	}
	h.state = writeSent
	w.forgetLocked(h)
	w.mu.Unlock()
	return e.base.RoundTrip(h.request(r.Context()))
}

// forgetLocked drops a write that is no longer kept back from w.held.
func (w *wire) forgetLocked(h *heldWrite) {
	w.held = slices.DeleteFunc(w.held, func(x *heldWrite) bool { return x == h })
}

// isWrite reports whether r writes a resource named by one of kinds (plural, lower case).
func isWrite(r *http.Request, kinds ...string) bool {
	if r.Method == http.MethodGet {
		return false
	}
	for _, k := range kinds {
		if strings.Contains(r.URL.Path, "/"+k) {
			return true
		}
	}
	return false
}

// agentNode is a simulated node and its agent, which lives, is killed or stopped, and
// lives again.
type agentNode struct {
	name, socket string
	api          operations.ClientService
	// config builds each life's configuration.
	config func(*wire) agent.Config
	// hold and onHold are given to each life's wire, and lag (may be nil).
	hold   func(*http.Request, []byte) bool
	onHold func(*heldWrite)
	lag    *lag

	mu    sync.Mutex
	cur   *life
	up    chan struct{} // closed while cur serves
	lives int
}

// life is one run of an agent.
type life struct {
	n        *agentNode
	num      int
	wire     *wire
	calls    context.Context // the CNI calls to this life; hung up on when it is killed
	hangUp   context.CancelFunc
	stop     context.CancelFunc
	done     chan error
	killedAt atomic.Int64 // UnixNano; 0 while alive
	// settled is closed once every write the kill stranded has landed or been dropped.
	settled chan struct{}
}

func newAgentNode(t *testing.T, e *testenv.Env, name string, cfg func(*agent.Config)) *agentNode {
	t.Helper()
	dir, err := os.MkdirTemp("", "grants")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	n := &agentNode{name: name, socket: filepath.Join(dir, "a.sock"), up: make(chan struct{})}
	n.api = api.NewUnixClient(n.socket)
	n.config = func(w *wire) agent.Config {
		rc := rest.CopyConfig(e.Config)
		rc.WrapTransport = w.wrap
		c := agent.Config{NodeName: name, RESTConfig: rc, SocketPath: n.socket, Log: logr.Discard(),
			GrantWait: agent.DefaultGrantWait, ReserveSize: -1, ReserveQuarantine: 2 * time.Second}
		if cfg != nil {
			cfg(&c)
		}
		return c
	}
	return n
}

// start runs a new life of the agent and waits until it serves.
func (n *agentNode) start(ctx context.Context) error {
	n.mu.Lock()
	n.lives++
	l := &life{n: n, num: n.lives, wire: newWire(n.hold, n.onHold), done: make(chan error, 1), settled: make(chan struct{})}
	l.wire.lag = n.lag
	n.mu.Unlock()
	l.calls, l.hangUp = context.WithCancel(context.Background())
	runCtx, stop := context.WithCancel(context.Background())
	l.stop = stop
	ready := make(chan struct{})
	cfg := n.config(l.wire)
	cfg.Ready = func() { close(ready) }
	go func() { l.done <- agent.Run(runCtx, cfg) }()
	select {
	case <-ready:
	case err := <-l.done:
		l.hangUp()
		return fmt.Errorf("agent %s, life %d: %v", n.name, l.num, err)
	case <-ctx.Done():
		stop()
		l.hangUp()
		<-l.done
		return fmt.Errorf("agent %s, life %d, not ready: %w", n.name, l.num, ctx.Err())
	}
	n.mu.Lock()
	n.cur = l
	close(n.up)
	n.mu.Unlock()
	return nil
}

// serveWait bounds a CNI call's wait for an agent that serves its node.
const serveWait = time.Minute

// current waits for the life that serves now, up to serveWait.
func (n *agentNode) current(ctx context.Context) (*life, error) {
	ctx, cancel := context.WithTimeout(ctx, serveWait)
	defer cancel()
	for {
		n.mu.Lock()
		l, up := n.cur, n.up
		n.mu.Unlock()
		if l != nil {
			return l, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, fmt.Errorf("no agent serves node %s: %w", n.name, ctx.Err())
		}
	}
}

// detach takes the serving life off the node, so no new CNI call reaches it.
func (n *agentNode) detach() *life {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.cur
	if l != nil {
		n.cur, n.up = nil, make(chan struct{})
	}
	return l
}

// kill kills the serving life as a crash would and returns the writes it strands; the
// caller lands or drops each, then closes l.settled (settle does both).
func (n *agentNode) kill() (*life, []*heldWrite, error) {
	l := n.detach()
	if l == nil {
		return nil, nil, fmt.Errorf("agent %s: no life to kill", n.name)
	}
	l.killedAt.Store(time.Now().UnixNano())
	stranded := l.wire.kill()
	l.hangUp()
	l.stop()
	select {
	case <-l.done:
	case <-time.After(30 * time.Second):
		return l, stranded, fmt.Errorf("agent %s, life %d, still running 30s after it was killed", n.name, l.num)
	}
	return l, stranded, nil
}

// halt stops the serving life cleanly (a rolling update).
func (n *agentNode) halt() error {
	l := n.detach()
	if l == nil {
		return nil
	}
	l.stop()
	select {
	case err := <-l.done:
		l.hangUp()
		close(l.settled)
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("agent %s, life %d, did not stop within 30s", n.name, l.num)
	}
}

// settle lands (late, after delay) or drops each stranded write as land says, and
// closes l.settled when all are done. It returns at once.
func (l *life) settle(stranded []*heldWrite, land func(*heldWrite) (bool, time.Duration), landed func(*heldWrite, error)) {
	var wg sync.WaitGroup
	for _, h := range stranded {
		ok, after := land(h)
		if !ok {
			h.drop()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(after)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := h.land(ctx)
			if landed != nil {
				landed(h, err)
			}
		}()
	}
	go func() { wg.Wait(); close(l.settled) }()
}

// killedBefore reports whether the life was killed before t: a call that failed at t
// may have failed because of it.
func (l *life) killedBefore(t time.Time) bool {
	k := l.killedAt.Load()
	return k != 0 && k <= t.UnixNano()
}

// cniTimeout bounds one CNI call, as the plugin's own deadline does.
const cniTimeout = 60 * time.Second

// call runs f under a context that ends with ctx, after cniTimeout, or when the life is
// killed.
func (l *life) call(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, cniTimeout)
	defer cancel()
	stop := context.AfterFunc(l.calls, cancel)
	defer stop()
	return f(ctx)
}

// add is the runtime's CNI ADD of pod's sandbox ctr, on the agent serving now.
func (n *agentNode) add(ctx context.Context, pod *corev1.Pod, ctr string) (netip.Addr, *life, error) {
	l, err := n.current(ctx)
	if err != nil {
		return netip.Addr{}, nil, err
	}
	var a netip.Addr
	err = l.call(ctx, func(ctx context.Context) error {
		// Timeout 0: the deadline is ctx's alone, as in pkg/cni (the generated default is 30s).
		ok, err := n.api.AddContext(ctx, operations.NewAddParamsWithTimeout(0).WithArgs(&models.AddArgs{Attachment: sandbox(pod, ctr)}))
		if err != nil {
			var bad *operations.AddDefault
			if errors.As(err, &bad) && bad.Payload != nil && bad.Payload.Message != nil {
				return fmt.Errorf("ADD %s/%s (%s) on %s: %s", pod.Namespace, pod.Name, ctr, n.name, *bad.Payload.Message)
			}
			return fmt.Errorf("ADD %s/%s (%s) on %s: %w", pod.Namespace, pod.Name, ctr, n.name, err)
		}
		p, err := netip.ParsePrefix(*ok.Payload.Ips[0].Address)
		a = p.Addr()
		return err
	})
	return a, l, err
}

// del is the runtime's CNI DEL of pod's sandbox ctr, on the agent serving now.
func (n *agentNode) del(ctx context.Context, pod *corev1.Pod, ctr string) (*life, error) {
	l, err := n.current(ctx)
	if err != nil {
		return nil, err
	}
	err = l.call(ctx, func(ctx context.Context) error {
		if _, err := n.api.DelContext(ctx, operations.NewDelParamsWithTimeout(0).WithArgs(sandbox(pod, ctr))); err != nil {
			return fmt.Errorf("DEL %s/%s (%s) on %s: %w", pod.Namespace, pod.Name, ctr, n.name, err)
		}
		return nil
	})
	return l, err
}

// sandbox is the attachment of pod's sandbox ctr.
func sandbox(pod *corev1.Pod, ctr string) *models.Attachment {
	return &models.Attachment{ContainerID: ptr.To(ctr + "-" + string(pod.UID)), IfName: ptr.To("eth0"),
		PodNamespace: ptr.To(pod.Namespace), PodName: ptr.To(pod.Name), PodUID: string(pod.UID), NetNamespace: "/var/run/netns/test"}
}

// controller runs the grant controller in lives that can be killed.
type controller struct {
	e   *testenv.Env
	mu  sync.Mutex
	cur *ctlLife
}

// ctlLife is one run of the grant controller. Its writes go through a client that a
// kill cuts.
type ctlLife struct {
	cancel context.CancelFunc
	done   chan error
	cutCh  chan struct{}

	mu      sync.Mutex
	cut     bool
	sending int        // writes sent before the cut, not answered yet
	idle    *sync.Cond // signalled when sending drops to 0

	// blockWrites counts the IPBlock writes the life sent. With cutAfter > 0, the life
	// is cut as soon as it sends one more than cutAfter (a crash between the writes of
	// one round); with loseAt > 0, write number loseAt lands but its answer is lost.
	blockWrites, cutAfter, loseAt atomic.Int64
}

func newCtlLife() *ctlLife {
	l := &ctlLife{done: make(chan error, 1), cutCh: make(chan struct{})}
	l.idle = sync.NewCond(&l.mu)
	return l
}

// kill cuts the life's writes: none is sent from now on.
func (l *ctlLife) kill() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.cut {
		l.cut = true
		close(l.cutCh)
	}
}

// landed waits until the writes sent before the cut have their answers: what a
// process sent before it died lands.
func (l *ctlLife) landed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.sending > 0 {
		l.idle.Wait()
	}
}

func (l *ctlLife) write(obj client.Object, do func() error) error {
	_, block := obj.(*ipamv1.IPBlock)
	l.mu.Lock()
	if l.cut {
		l.mu.Unlock()
		return errKilled
	}
	var n int64
	if block {
		n = l.blockWrites.Add(1)
		if after := l.cutAfter.Load(); after > 0 && n > after {
			l.cut = true
			close(l.cutCh)
			l.mu.Unlock()
			return errKilled
		}
	}
	l.sending++
	l.mu.Unlock()
	err := do()
	l.mu.Lock()
	if l.sending--; l.sending == 0 {
		l.idle.Broadcast()
	}
	l.mu.Unlock()
	if err == nil && block && n == l.loseAt.Load() {
		return errLost
	}
	return err
}

// cutClient is a controller life's writing client.
type cutClient struct {
	client.Client
	l *ctlLife
}

func (c cutClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	return c.l.write(obj, func() error { return c.Client.Create(ctx, obj, opts...) })
}

func (c cutClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	return c.l.write(obj, func() error { return c.Client.Update(ctx, obj, opts...) })
}

func (c cutClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	return c.l.write(obj, func() error { return c.Client.Delete(ctx, obj, opts...) })
}

func (c cutClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	return c.l.write(obj, func() error { return c.Client.Patch(ctx, obj, patch, opts...) })
}

func (c cutClient) Status() client.SubResourceWriter { return cutStatus{c.Client.Status(), c.l} }

type cutStatus struct {
	client.SubResourceWriter
	l *ctlLife
}

func (s cutStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	return s.l.write(obj, func() error { return s.SubResourceWriter.Update(ctx, obj, opts...) })
}

func (s cutStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	return s.l.write(obj, func() error { return s.SubResourceWriter.Patch(ctx, obj, patch, opts...) })
}

// start runs a new life of the controller; tune sets its crash points before it runs.
func (c *controller) start(tune func(*ctlLife)) (*ctlLife, error) {
	mgr, err := ctrl.NewManager(c.e.Config, ctrl.Options{Scheme: c.e.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0", Controller: config.Controller{SkipNameValidation: ptr.To(true)}})
	if err != nil {
		return nil, err
	}
	direct, err := client.New(c.e.Config, client.Options{Scheme: c.e.Scheme})
	if err != nil {
		return nil, err
	}
	l := newCtlLife()
	if tune != nil {
		tune(l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	if err := grants.SetupWithManager(ctx, mgr, grants.Params{Direct: cutClient{direct, l}}); err != nil {
		cancel()
		return nil, err
	}
	go func() { l.done <- mgr.Start(ctx) }()
	c.mu.Lock()
	c.cur = l
	c.mu.Unlock()
	return l, nil
}

// kill kills the running life: it writes nothing more, then its manager stops.
func (c *controller) kill() error {
	c.mu.Lock()
	l := c.cur
	c.cur = nil
	c.mu.Unlock()
	if l == nil {
		return nil
	}
	l.kill()
	l.landed()
	l.cancel()
	select {
	case <-l.done:
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("grant controller still running 30s after it was killed")
	}
}

var quietKlog sync.Once

// world is one pool, its namespace and nodes, the grant controller, and the
// bookkeeping of who holds what.
type world struct {
	t      *testing.T
	e      *testenv.Env
	ns     string
	pool   string
	subnet netip.Prefix
	size   int
	nodes  []*agentNode
	ctl    *controller
	eps    *endpointWatch

	mu sync.Mutex
	// live maps each address an ADD answered to the pod it was answered to, until the
	// runtime DELs that pod's sandbox.
	live     map[netip.Addr]string
	problems []string
	adds     atomic.Int64
}

// newWorld creates a pool in Grants mode over ips, a namespace of the same name, and
// nodes Node objects (their agents are not started).
func newWorld(t *testing.T, ctx context.Context, e *testenv.Env, name, subnet string, ips []v2beta1.IPOrRange, nodes int, cfg func(*agent.Config)) *world {
	t.Helper()
	quietKlog.Do(func() {
		// The killed agents' event broadcasters complain through klog, by design.
		klog.SetLogger(logr.Discard())
	})
	w := &world{t: t, e: e, ns: name, pool: name, subnet: netip.MustParsePrefix(subnet), ctl: &controller{e: e}, live: map[netip.Addr]string{}}
	sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: v2beta1.CIDR(subnet), IPs: ips}}
	if err := e.Client.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Allocation: v2beta1.AllocationGrants}
	if err := e.Client.Status().Update(ctx, sp); err != nil {
		t.Fatal(err)
	}
	usable, err := ipam.EffectiveAddresses(w.subnet, ips, nil)
	if err != nil {
		t.Fatal(err)
	}
	count, _ := usable.Count().Uint64()
	w.size = int(count)
	// The namespace's pods use the pool (other tests' default pools stay out of it).
	if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
		Annotations: map[string]string{ipam.AnnoNamespaceDefaultIPv4Pool: fmt.Sprintf("[%q]", name)}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "default"}}); err != nil {
		t.Fatal(err)
	}
	for i := range nodes {
		nn := fmt.Sprintf("%s-%d", name, i)
		if err := e.Client.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nn}}); err != nil {
			t.Fatal(err)
		}
		w.nodes = append(w.nodes, newAgentNode(t, e, nn, cfg))
	}
	w.eps = watchEndpoints(t, e, name)
	t.Cleanup(func() {
		for _, n := range w.nodes {
			if err := n.halt(); err != nil {
				t.Errorf("stop agent %s: %v", n.name, err)
			}
		}
		if err := w.ctl.kill(); err != nil {
			t.Error(err)
		}
		w.remove()
	})
	return w
}

// remove deletes what the world created that other tests would see: its nodes (with
// their IPAMNodes: no garbage collector runs here), its pool and the pool's blocks.
func (w *world) remove() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, n := range w.nodes {
		for _, obj := range []client.Object{&ipamv1.IPAMNode{ObjectMeta: metav1.ObjectMeta{Name: n.name}}, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name}}} {
			if err := w.e.Client.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	if err := w.e.Client.Delete(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: w.pool}}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, err)
	}
	if err := w.e.Client.DeleteAllOf(ctx, &ipamv1.IPBlock{}, client.MatchingLabels{ipam.BlockPoolLabel: w.pool}); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		w.t.Errorf("remove the objects of %s: %v", w.pool, err)
	}
}

// startAgents starts every node's agent, a few at a time.
func (w *world) startAgents(ctx context.Context) {
	w.t.Helper()
	errs := make([]error, len(w.nodes))
	slots := make(chan struct{}, 10)
	var wg sync.WaitGroup
	for i, n := range w.nodes {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			errs[i] = n.start(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		w.t.Fatal(err)
	}
}

// problem records a broken invariant; the test fails with all of them at its end.
func (w *world) problem(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.problems = append(w.problems, fmt.Sprintf(format, args...))
}

// report fails the test with every broken invariant seen so far.
func (w *world) report() {
	w.t.Helper()
	w.mu.Lock()
	problems := slices.Clone(w.problems)
	w.mu.Unlock()
	problems = append(problems, w.eps.problems()...)
	for i, p := range problems {
		if i == 20 {
			w.t.Errorf("... and %d more", len(problems)-20)
			break
		}
		w.t.Error(p)
	}
}

func (w *world) newPod(ctx context.Context, name, node string) (*corev1.Pod, error) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name},
		Spec: corev1.PodSpec{NodeName: node, AutomountServiceAccountToken: ptr.To(false), Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}}}}
	if err := w.e.Client.Create(ctx, p); err != nil {
		return nil, fmt.Errorf("create pod %s: %w", name, err)
	}
	return p, nil
}

// deletePod deletes a pod at once, as a kubelet that saw it stop would.
func (w *world) deletePod(ctx context.Context, p *corev1.Pod) error {
	if err := w.e.Client.Delete(ctx, p, client.GracePeriodSeconds(0)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete pod %s: %w", p.Name, err)
	}
	return nil
}

// took records that an ADD answered a to pod on node, and checks it: no other pod
// whose sandbox has not been DELed was answered a, and a is granted to node now (the
// pod's endpoint holds it, so the node cannot have given it back).
func (w *world) took(ctx context.Context, a netip.Addr, pod, node string) {
	w.adds.Add(1)
	w.mu.Lock()
	if other, dup := w.live[a]; dup {
		w.problems = append(w.problems, fmt.Sprintf("two owners: %s answered to %s on %s while %s holds it", a, pod, node, other))
	}
	w.live[a] = pod + " on " + node
	w.mu.Unlock()
	if owner, err := w.grantedTo(ctx, a); err != nil {
		w.problem("read the grant of %s: %v", a, err)
	} else if owner != node {
		w.problem("%s handed to %s by the agent of %s while granted to %q", a, pod, node, owner)
	}
}

// gave records that the runtime DELs the sandbox that was answered a.
func (w *world) gave(a netip.Addr) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.live, a)
}

// grantedTo reads the node a is granted to ("" for none).
func (w *world) grantedTo(ctx context.Context, a netip.Addr) (string, error) {
	b := &ipamv1.IPBlock{}
	err := w.e.Client.Get(ctx, client.ObjectKey{Name: ipam.BlockName(w.pool, ipam.BlockStart(w.subnet, a))}, b)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	g, err := ipam.GrantBlockOf(w.subnet, b)
	if err != nil {
		return "", err
	}
	return g.Owners[a], nil
}

// grants reads every grant of the pool.
func (w *world) grants(ctx context.Context) (map[netip.Addr]string, error) {
	var blocks ipamv1.IPBlockList
	if err := w.e.Client.List(ctx, &blocks, client.MatchingLabels{ipam.BlockPoolLabel: w.pool}); err != nil {
		return nil, err
	}
	out := map[netip.Addr]string{}
	for i := range blocks.Items {
		g, err := ipam.GrantBlockOf(w.subnet, &blocks.Items[i])
		if err != nil {
			return nil, err
		}
		for a, n := range g.Owners {
			if prev, dup := out[a]; dup {
				return nil, fmt.Errorf("%s is granted to %s and to %s", a, prev, n)
			}
			out[a] = n
		}
	}
	return out, nil
}

// holders reads the pool's addresses the namespace's endpoints hold, by endpoint.
func (w *world) holders(ctx context.Context) (map[netip.Addr][]string, error) {
	var eps v2beta1.SpiderEndpointList
	if err := w.e.Client.List(ctx, &eps, client.InNamespace(w.ns)); err != nil {
		return nil, err
	}
	out := map[netip.Addr][]string{}
	for i := range eps.Items {
		for _, a := range endpointAddrs(&eps.Items[i]) {
			out[a] = append(out[a], describe(&eps.Items[i]))
		}
	}
	return out, nil
}

// checkIdle checks the pool once every pod is gone and DELed: no endpoint is left, and
// every address is granted to at most one of the world's nodes (so free or granted and
// unheld).
func (w *world) checkIdle(ctx context.Context) {
	w.t.Helper()
	held, err := w.holders(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	for a, by := range held {
		w.problem("lost: %s is still held after every pod was DELed, by %v", a, by)
	}
	granted, err := w.grants(ctx)
	if err != nil {
		w.problem("%v", err)
		return
	}
	names := map[string]bool{}
	for _, n := range w.nodes {
		names[n.name] = true
	}
	for a, n := range granted {
		if !names[n] {
			w.problem("%s is granted to %q, not a node of the test", a, n)
		}
	}
}

// fullRound is the proof that no address is lost: exactly as many pods as the pool has
// addresses, spread over the nodes, all ADDed at once, must all get an address (each a
// different one, granted to the pod's node), however the grants are spread when it
// starts. Then every pod is DELed and deleted again.
func (w *world) fullRound(ctx context.Context, nodes []*agentNode) {
	w.t.Helper()
	if len(nodes) == 0 {
		nodes = w.nodes
	}
	type res struct {
		pod  *corev1.Pod
		node *agentNode
		addr netip.Addr
		err  error
		took time.Duration
	}
	out := make([]res, w.size)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range w.size {
		n := nodes[i%len(nodes)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &out[i]
			r.node = n
			if r.pod, r.err = w.newPod(ctx, fmt.Sprintf("full-%d", i), n.name); r.err != nil {
				return
			}
			t0 := time.Now()
			r.addr, _, r.err = n.add(ctx, r.pod, "full")
			r.took = time.Since(t0)
			if r.err == nil {
				w.took(ctx, r.addr, r.pod.Name, n.name)
			}
		}()
	}
	wg.Wait()
	failed := 0
	took := make([]time.Duration, 0, len(out))
	for _, r := range out {
		took = append(took, r.took)
		if r.err != nil {
			failed++
			if failed <= 5 {
				w.t.Errorf("full round: %v (after %s)", r.err, r.took.Round(time.Millisecond))
			}
			if failed == 1 {
				w.t.Logf("the pool after the full round's ADDs:\n%s", w.dump(ctx, r.node.name))
			}
		}
	}
	slices.Sort(took)
	w.t.Logf("full round: %d ADDs at once in %s; ADD median %s, p90 %s, slowest %s", len(out), time.Since(start).Round(time.Millisecond),
		took[len(took)/2].Round(time.Millisecond), took[len(took)*9/10].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	if failed > 0 {
		w.t.Errorf("full round: %d of %d ADDs failed on a pool of %d addresses with no other pod: addresses were lost", failed, w.size, w.size)
	}
	for _, r := range out {
		if r.pod == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r.err == nil {
				w.gave(r.addr)
			}
			if _, err := r.node.del(ctx, r.pod, "full"); err != nil {
				w.t.Errorf("full round: %v", err)
			}
			if err := w.deletePod(ctx, r.pod); err != nil {
				w.t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// endpointWatch follows the namespace's SpiderEndpoints through one watch, whose events
// come in the order etcd applied them, and checks every state it passes through: no
// two endpoints name one address, ever.
type endpointWatch struct {
	mu     sync.Mutex
	addrs  map[string][]netip.Addr          // endpoint → its addresses
	by     map[netip.Addr]map[string]string // address → endpoint → description
	bad    []string
	seen   map[[2]string]bool // pairs reported already
	events int
}

func watchEndpoints(t *testing.T, e *testenv.Env, ns string) *endpointWatch {
	t.Helper()
	wc, err := client.NewWithWatch(e.Config, client.Options{Scheme: e.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ew := &endpointWatch{addrs: map[string][]netip.Addr{}, by: map[netip.Addr]map[string]string{}, seen: map[[2]string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ew.run(ctx, wc, ns) }()
	// Synced before the test goes on: nothing it does is missed.
	deadline := time.Now().Add(30 * time.Second)
	for !ew.synced() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() { cancel(); <-done })
	return ew
}

func (ew *endpointWatch) synced() bool {
	ew.mu.Lock()
	defer ew.mu.Unlock()
	return ew.events > 0
}

func (ew *endpointWatch) run(ctx context.Context, wc client.WithWatch, ns string) {
	rv := ""
	for ctx.Err() == nil {
		if rv == "" {
			var list v2beta1.SpiderEndpointList
			if err := wc.List(ctx, &list, client.InNamespace(ns)); err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			ew.mu.Lock()
			ew.addrs, ew.by = map[string][]netip.Addr{}, map[netip.Addr]map[string]string{}
			for i := range list.Items {
				ew.setLocked(&list.Items[i])
			}
			ew.events++
			ew.mu.Unlock()
			rv = list.ResourceVersion
		}
		wi, err := wc.Watch(ctx, &v2beta1.SpiderEndpointList{}, &client.ListOptions{Namespace: ns,
			Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for ev := range wi.ResultChan() {
			if ev.Type == watch.Error {
				rv = "" // expired: list again
				break
			}
			se, ok := ev.Object.(*v2beta1.SpiderEndpoint)
			if !ok {
				continue
			}
			rv = se.ResourceVersion
			if ev.Type == watch.Bookmark {
				continue
			}
			ew.mu.Lock()
			if ev.Type == watch.Deleted {
				ew.removeLocked(se.Namespace + "/" + se.Name)
			} else {
				ew.setLocked(se)
			}
			ew.events++
			ew.mu.Unlock()
		}
		wi.Stop()
	}
}

func (ew *endpointWatch) removeLocked(key string) {
	for _, a := range ew.addrs[key] {
		delete(ew.by[a], key)
		if len(ew.by[a]) == 0 {
			delete(ew.by, a)
		}
	}
	delete(ew.addrs, key)
}

func (ew *endpointWatch) setLocked(se *v2beta1.SpiderEndpoint) {
	key := se.Namespace + "/" + se.Name
	ew.removeLocked(key)
	as := endpointAddrs(se)
	ew.addrs[key] = as
	for _, a := range as {
		if ew.by[a] == nil {
			ew.by[a] = map[string]string{}
		}
		for other, desc := range ew.by[a] {
			pair := [2]string{min(key, other), max(key, other)}
			if !ew.seen[pair] {
				ew.seen[pair] = true
				ew.bad = append(ew.bad, fmt.Sprintf("two owners: %s is named by the endpoints %s and %s at resourceVersion %s", a, desc, describe(se), se.ResourceVersion))
			}
		}
		ew.by[a][key] = describe(se)
	}
}

func (ew *endpointWatch) problems() []string {
	ew.mu.Lock()
	defer ew.mu.Unlock()
	return slices.Clone(ew.bad)
}

// endpointAddrs are the addresses an endpoint records.
func endpointAddrs(se *v2beta1.SpiderEndpoint) []netip.Addr {
	var out []netip.Addr
	for _, nic := range se.Status.Current.IPs {
		for _, s := range []*string{nic.IPv4, nic.IPv6} {
			if s == nil {
				continue
			}
			if p, err := netip.ParsePrefix(*s); err == nil {
				out = append(out, p.Addr())
			}
		}
	}
	return out
}

func describe(se *v2beta1.SpiderEndpoint) string {
	ctr := ""
	if o := se.Status.Current.Orbweaver; o != nil {
		ctr = o.ContainerID
	}
	return fmt.Sprintf("%s/%s (node %s, container %.10s)", se.Namespace, se.Name, se.Status.Current.Node, ctr)
}

// waitFor polls cond every 20ms until it holds or ctx's deadline or limit passes.
func waitFor(ctx context.Context, limit time.Duration, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %s waiting for %s (last error: %v)", limit, what, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dump describes the pool's grants, demands and holds, for a failure's message.
func (w *world) dump(ctx context.Context, focus string) string {
	var b strings.Builder
	granted, err := w.grants(ctx)
	if err != nil {
		return err.Error()
	}
	held, _ := w.holders(ctx)
	count := map[string]int{}
	for _, n := range granted {
		count[n]++
	}
	heldBy := map[string]int{}
	for a := range held {
		heldBy[granted[a]]++
	}
	var blocks ipamv1.IPBlockList
	_ = w.e.Client.List(ctx, &blocks, client.MatchingLabels{ipam.BlockPoolLabel: w.pool})
	reclaim := map[string]int{}
	for i := range blocks.Items {
		g, _ := ipam.GrantBlockOf(w.subnet, &blocks.Items[i])
		if g == nil {
			continue
		}
		for a := range g.Reclaim {
			reclaim[g.Owners[a]]++
		}
	}
	var nodes ipamv1.IPAMNodeList
	_ = w.e.Client.List(ctx, &nodes)
	totalNeed := 0
	fmt.Fprintf(&b, "pool %s: %d addresses, %d granted, %d held\n", w.pool, w.size, len(granted), len(held))
	for _, n := range nodes.Items {
		for _, d := range n.Spec.Pools {
			if d.Pool != w.pool {
				continue
			}
			totalNeed += int(d.Need)
			if n.Name == focus || int(d.Need) != count[n.Name] || reclaim[n.Name] > 0 || len(d.GiveBack) > 0 {
				fmt.Fprintf(&b, "  %s: need %d want %d giveBack %v; granted %d, held %d, asked back %d\n", n.Name, d.Need, d.Want, d.GiveBack, count[n.Name], heldBy[n.Name], reclaim[n.Name])
			}
		}
	}
	fmt.Fprintf(&b, "  total need %d", totalNeed)
	return b.String()
}
