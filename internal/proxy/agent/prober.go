package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The app prober runs the original probes the way the kubelet would, from
// inside the pod, and the way Istio's agent does
// (pilot/cmd/pilot-agent/status/server.go handleAppProbe*):
//
//   - destination: the probe's host if set (the kubelet's rule; Istio's
//     agent ignores it), else the pod IP, or localhost in legacy mode;
//   - source: 127.0.0.6 (::6 for IPv6, when lo has it) towards the pod IP
//     and loopback, Istio's inbound passthrough address, which `weft
//     iptables` never captures. The agent already runs as the proxy's
//     user, but the capture rules send that user's traffic to a local
//     non-127.0.0.1 address (the pod IP) to the inbound listener: without
//     this source, probes would meet the sidecar's mTLS there;
//   - each probe is bounded by its timeoutSeconds (default 1 s, the
//     kubelet's); connections are not reused (the kubelet's
//     DisableKeepAlives) and close with a 1 s linger, as the kubelet's
//     ProbeDialer, so probes leave no sockets in TIME-WAIT for long;
//   - HTTP: the kubelet's request headers are passed on (its User-Agent
//     kube-probe/..., and the probe's httpHeaders, which the rewritten
//     probe keeps) with the probe's own httpHeaders set over them; the
//     Host is the kubelet's with the status port replaced by the app's;
//     HTTPS skips certificate verification and may use HTTP/2, as the
//     kubelet; redirects to the same host are followed (at most 10), a
//     redirect elsewhere or a 3xx answer counts as success (200); the
//     app's status code and up to 10 KiB of its body are answered, which
//     the kubelet judges (200 <= code < 400 passes); an error is 500;
//   - TCP: 200 when the connection opens, 500 otherwise;
//   - gRPC: grpc.health.v1 Check, 200 when SERVING, 500 otherwise.

// defaultProbeTimeout is the kubelet's timeoutSeconds default.
const defaultProbeTimeout = time.Second

// maxProbeBody is how much of the app's answer is passed on (Istio's
// maxRespBodyLength).
const maxProbeBody = 10 << 10

// maxProbeRedirects is the kubelet's and Go's redirect limit.
const maxProbeRedirects = 10

// Istio's inbound passthrough addresses (InboundPassthroughBindIpv4/6).
var (
	passthroughV4 = netip.MustParseAddr("127.0.0.6")
	passthroughV6 = netip.MustParseAddr("::6")
)

type prober struct {
	probes     map[string]*runProbe
	dest       string // the pod IP, or localhost
	podIP      netip.Addr
	statusPort string
	src6       bool // ::6 can be bound
	client     *http.Client
	log        *slog.Logger
}

// runProbe is one path's probe and its last outcome (for logging changes).
type runProbe struct {
	*AppProbe
	timeout time.Duration
	failing atomic.Bool
}

func newProber(o StatusOptions, statusPort string) *prober {
	pr := &prober{
		probes:     make(map[string]*runProbe, len(o.Probers)),
		podIP:      o.PodIP.Unmap(),
		dest:       o.PodIP.Unmap().String(),
		statusPort: statusPort,
		src6:       canBind(passthroughV6),
		log:        o.Logger,
	}
	if o.LocalhostDestination {
		pr.dest = "localhost"
	}
	for path, p := range o.Probers {
		t := time.Duration(p.TimeoutSeconds) * time.Second
		if t <= 0 {
			t = defaultProbeTimeout
		}
		pr.probes[path] = &runProbe{AppProbe: p, timeout: t}
	}
	pr.client = &http.Client{
		Transport: &http.Transport{
			DialContext: pr.dial,
			// The kubelet does not verify an HTTPS probe's certificate
			// (Kubernetes "Configure Liveness, Readiness and Startup
			// Probes": "the kubelet ... skip[s] the certificate
			// verification"), nor does Istio's agent.
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
			DisableKeepAlives: true,
			ForceAttemptHTTP2: true,
		},
		CheckRedirect: checkProbeRedirect,
	}
	return pr
}

// canBind reports whether a local address is configured (::6 is on lo
// only where the capture setup added it).
func canBind(a netip.Addr) bool {
	ln, err := net.Listen("tcp", netip.AddrPortFrom(a, 0).String())
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// checkProbeRedirect is the kubelet's redirect policy (pkg/probe/http):
// follow redirects to the same host, at most 10; a redirect to another
// host ends the probe with the 3xx, which counts as success.
func checkProbeRedirect(req *http.Request, via []*http.Request) error {
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return http.ErrUseLastResponse
	}
	if len(via) >= maxProbeRedirects {
		return fmt.Errorf("stopped after %d redirects", maxProbeRedirects)
	}
	return nil
}

// dial opens a probe connection from the passthrough source when the
// destination is the pod IP or loopback, with the kubelet's 1 s linger.
func (pr *prober) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: pr.source(addr)}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(1)
	}
	return c, nil
}

func (pr *prober) source(addr string) net.Addr {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil // a name: resolved by the dialer, bound by nobody
	}
	ip := ap.Addr().Unmap()
	if ip != pr.podIP && !ip.IsLoopback() {
		return nil
	}
	switch {
	case ip.Is4():
		return &net.TCPAddr{IP: passthroughV4.AsSlice()}
	case pr.src6:
		return &net.TCPAddr{IP: passthroughV6.AsSlice()}
	}
	return nil
}

// ServeHTTP answers one kubelet probe by running the path's app probe.
func (pr *prober) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := pr.probes[r.URL.Path]
	if p == nil {
		http.Error(w, "no app probe for "+r.URL.Path, http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
	defer cancel()
	var code int
	var body []byte
	var err error
	switch {
	case p.HTTPGet != nil:
		code, body, err = pr.probeHTTP(ctx, r, p.HTTPGet)
	case p.TCPSocket != nil:
		err = pr.probeTCP(ctx, p.TCPSocket)
	default:
		err = pr.probeGRPC(ctx, r, p.GRPC)
	}
	if err != nil {
		code, body = http.StatusInternalServerError, []byte(err.Error())
	} else if code == 0 {
		code = http.StatusOK
	}
	pr.logChange(r.URL.Path, p, code, err)
	w.WriteHeader(code)
	w.Write(body)
}

// logChange logs a probe that starts failing or passing again.
func (pr *prober) logChange(path string, p *runProbe, code int, err error) {
	failing := code < 200 || code >= 400
	if p.failing.Swap(failing) == failing {
		return
	}
	if failing {
		pr.log.Info("app probe failing", "path", path, "status", code, "err", err)
	} else {
		pr.log.Info("app probe passing", "path", path)
	}
}

func (pr *prober) host(h string) string {
	if h != "" {
		return h
	}
	return pr.dest
}

func (pr *prober) probeHTTP(ctx context.Context, in *http.Request, g *HTTPGetProbe) (int, []byte, error) {
	req, err := pr.httpRequest(ctx, in, g)
	if err != nil {
		return 0, nil, err
	}
	resp, err := pr.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("app probe %s: %w", req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		// A 3xx without Location is illegal: answer 200, as Istio.
		return http.StatusOK, nil, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	return resp.StatusCode, body, nil
}

// httpRequest builds the kubelet's request for g, carrying the headers of
// the kubelet's request to the status port.
func (pr *prober) httpRequest(ctx context.Context, in *http.Request, g *HTTPGetProbe) (*http.Request, error) {
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u, err := url.Parse(path) // the kubelet keeps a query in the path
	if err != nil {
		return nil, fmt.Errorf("app probe path %q: %w", g.Path, err)
	}
	u.Scheme = "http"
	if strings.EqualFold(g.Scheme, "HTTPS") {
		u.Scheme = "https"
	}
	port := strconv.Itoa(int(g.Port))
	u.Host = net.JoinHostPort(pr.host(g.Host), port)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range in.Header {
		req.Header[k] = slices.Clone(v)
	}
	req.Host = statusPortHost(in.Host, pr.statusPort, port)
	if g.Host != "" {
		req.Host = u.Host // the kubelet's Host for a probe with a host
	}
	for _, h := range g.HTTPHeaders {
		req.Header.Del(h.Name) // the kubelet's copy of the same header
	}
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	return req, nil
}

func (pr *prober) probeTCP(ctx context.Context, s *TCPSocketProbe) error {
	addr := net.JoinHostPort(pr.host(s.Host), strconv.Itoa(int(s.Port)))
	c, err := pr.dial(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("app probe tcp %s: %w", addr, err)
	}
	return c.Close()
}

// probeGRPC is the kubelet's gRPC probe (pkg/probe/grpc): connect within
// the timeout, then Check.
func (pr *prober) probeGRPC(ctx context.Context, in *http.Request, g *GRPCProbe) error {
	addr := net.JoinHostPort(pr.dest, strconv.Itoa(int(g.Port)))
	creds := insecure.NewCredentials()
	if g.Mode != nil && *g.Mode == "TLS" {
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the kubelet's TLS mode verifies nothing
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return pr.dial(ctx, "tcp", a) }),
	}
	if ua := in.Header.Get("User-Agent"); ua != "" {
		opts = append(opts, grpc.WithUserAgent(ua)) // the kubelet's, as Istio passes it
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return fmt.Errorf("app probe grpc %s: %w", addr, err)
	}
	defer conn.Close()
	var svc string
	if g.Service != nil {
		svc = *g.Service
	}
	// WaitForReady: keep connecting until the deadline, as the kubelet's
	// blocking dial does.
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc}, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("app probe grpc %s: %w", addr, err)
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("app probe grpc %s: service %q is %v", addr, svc, st)
	}
	return nil
}
