// Package routerfilter is the router HTTP filter (envoy.filters.http.router),
// the last filter of every chain: for the stream's route it answers
// redirects and direct responses itself, or picks the cluster and a host
// through the cluster's load balancer, takes a connection from the host's
// pool (HTTP/1.1 or HTTP/2), forwards the request and streams the response
// back, with the route's timeout and Envoy's local replies and response
// flags when something fails. It retries as the route's retry policy says
// (retry.go: decisions, back-off, per-try timeouts; replay.go: the body
// buffered for replay) and mirrors requests to shadow clusters (mirror.go).
package routerfilter

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/upstream/lb"
)

// Deps are what the router needs from the server.
type Deps struct {
	Clusters *upstream.Manager
}

// Register adds the router's factory to r.
func Register(r *httpfilter.Registry) {
	r.Register(&routerv3.Router{}, true, New)
}

// Router is the router filter.
type Router struct {
	clusters *upstream.Manager
	suppress bool
	hostname string
	shadows  shadowLimiter // shadow requests in flight (mirror.go)
}

var _ httpfilter.Filter = (*Router)(nil)

// New builds the router from its configuration; deps must be a Deps.
func New(cfg proto.Message, deps httpfilter.Deps) (httpfilter.Filter, error) {
	c := cfg.(*routerv3.Router)
	d, ok := deps.(Deps)
	if !ok || d.Clusters == nil {
		return nil, errNoClusters
	}
	host, _ := os.Hostname()
	return &Router{clusters: d.Clusters, suppress: c.GetSuppressEnvoyHeaders(), hostname: host}, nil
}

type errString string

func (e errString) Error() string { return string(e) }

const errNoClusters = errString("router: no cluster manager")

// SuppressEnvoyHeaders reports the router's suppress_envoy_headers.
func (f *Router) SuppressEnvoyHeaders() bool { return f.suppress }

// request is the router's per-stream state. It implements router.Vars for
// header formatters. Pooled: the router allocates nothing per request on
// the common path.
type request struct {
	f       *Router
	s       *httpfilter.Stream
	route   *router.Route
	target  *router.ClusterTarget
	cluster *upstream.Cluster
	host    *upstream.Host

	cookies  [][]byte
	buf      []byte // body copy buffer
	upStart  time.Time
	deadline time.Time
	// grpcDuration is set when the deadline comes from the grpc-timeout
	// header (route max_stream_duration.grpc_timeout_header_max).
	grpcDuration bool
	overloaded   bool // a circuit breaker refused the request
	idle         time.Duration
	idleArmed    bool // reads re-arm the idle timeout (see idle.go)

	// Retries (retry.go) and body replay (replay.go). retry is nil, and
	// the others zero, on the common path.
	retry       *retryState
	rs          retryState
	tryDeadline time.Time     // this try's deadline: deadline or the per-try timeout
	perTryIdle  time.Duration // per_try_idle_timeout of this try
	replay      *replayBody   // the buffered request body, when buffered
	replayBuf   replayBody
	bodyStarted bool // some of an unbuffered body was read
	headSent    bool // this try's request head went upstream
	attemptN    int  // the current try, from 1
}

var requestPool = sync.Pool{New: func() any { return &request{buf: make([]byte, 32<<10)} }}

// DecodeHeaders implements httpfilter.Filter.
func (f *Router) DecodeHeaders(s *httpfilter.Stream) httpfilter.Status {
	r := s.Route
	if r == nil {
		httpfilter.SendLocalReply(s, 404, "", streaminfo.NoRouteFound, "route_not_found")
		return httpfilter.Stop
	}
	s.Info.RouteName = r.Name()
	rq := requestPool.Get().(*request)
	rq.f, rq.s, rq.route = f, s, r
	defer func() {
		rq.f, rq.s, rq.route, rq.target, rq.cluster, rq.host = nil, nil, nil, nil, nil, nil
		rq.grpcDuration, rq.overloaded, rq.idleArmed = false, false, false
		if rq.retry != nil || rq.replay != nil {
			rq.resetRetry()
		}
		rq.bodyStarted, rq.headSent = false, false
		clear(rq.cookies)
		rq.cookies = rq.cookies[:0]
		requestPool.Put(rq)
	}()
	switch r.Kind() {
	case router.ActionRedirect:
		rq.redirect()
	case router.ActionDirectResponse:
		rq.directResponse()
	default:
		rq.forward()
	}
	return httpfilter.Stop
}

func (rq *request) redirect() {
	s := rq.s
	status, loc := rq.route.RedirectLocation(&s.Req, s.Resp.Alloc(0))
	resp := &s.Resp
	resp.Reset()
	resp.Status = status
	resp.SetBytes(headers.Location, loc)
	resp.Set(headers.ContentLength, "0")
	rq.route.ApplyResponseHeaders(resp, &s.Req, nil, rq)
	s.Info.Details = "direct_response"
	s.W.WriteHeaders(resp, true)
}

func (rq *request) directResponse() {
	s := rq.s
	body := rq.route.Body()
	resp := &s.Resp
	resp.Reset()
	resp.Status = rq.route.Status()
	var num [20]byte
	resp.SetBytes(headers.ContentLength, strconv.AppendInt(num[:0], int64(len(body)), 10))
	if len(body) > 0 {
		resp.Set(headers.ContentType, "text/plain")
	}
	rq.route.ApplyResponseHeaders(resp, &s.Req, nil, rq)
	s.Info.Details = "direct_response"
	if len(body) == 0 || string(s.Req.Method) == "HEAD" {
		s.W.WriteHeaders(resp, true)
		return
	}
	if s.W.WriteHeaders(resp, false) == nil {
		s.W.Write(body)
	}
	s.W.Finish(nil)
}

// forward sends the request to an upstream host and streams the response
// back, retrying as the route's retry policy says (retry.go).
func (rq *request) forward() {
	s, r := rq.s, rq.route
	rq.target = r.PickCluster(rand.Uint64())
	cl := rq.f.clusters.Get(rq.target.Name)
	if cl == nil {
		httpfilter.SendLocalReply(s, r.ClusterNotFoundStatus(), "", streaminfo.NoClusterFound, "cluster_not_found")
		return
	}
	rq.cluster = cl
	s.Info.UpstreamCluster = rq.target.Name
	s.Info.UpstreamClusterMetadata = cl.Config().GetMetadata()
	timeout, grpcDuration := rq.timeout()
	rq.grpcDuration = grpcDuration
	rq.deadline = time.Time{}
	if timeout > 0 {
		rq.deadline = s.Info.StartTime.Add(timeout)
	}
	if !cl.Breakers.TryRequest() {
		// Envoy's router charges every reply to a failed upstream attempt
		// as that upstream code (chargeUpstreamAbort), overflow included.
		cl.Stats.Pool.RqPendingOverflw.Inc()
		cl.Stats.RecordResponse(503)
		httpfilter.Send(s, httpfilter.LocalReply{Status: 503, Body: httpfilter.BodyOverflow, Flag: streaminfo.UpstreamOverflow,
			Details: "upstream_reset_before_response_started{overflow}", Overloaded: true})
		return
	}
	defer cl.Breakers.ReleaseRequest()
	rq.setupRetry()
	if rq.retry != nil {
		defer rq.retry.release(cl)
	}
	if rq.retry != nil || len(r.MirrorPolicies()) > 0 {
		if !rq.bufferBody() {
			return
		}
		if rq.replay != nil {
			defer rq.countReplayedBody()
		}
	}
	var lbctx lb.Context
	if s.Conn != nil && s.Conn.LocalRestored {
		lbctx.OriginalDst = s.Conn.Local // ORIGINAL_DST clusters connect there
	}
	if r.HasHashPolicy() {
		rq.cookies = r.Hash(&s.Req, rq, &lbctx, rq.cookies[:0])
	}
	h := rq.chooseHost(&lbctx)
	for attempt := 1; ; attempt++ {
		if h == nil {
			cl.Stats.RecordResponse(503) // as Envoy's sendNoHealthyUpstreamResponse
			httpfilter.SendLocalReply(s, 503, httpfilter.BodyNoHealthyUpstream, streaminfo.NoHealthyUpstream, "no_healthy_upstream")
			return
		}
		rq.host = h
		if attempt == 1 {
			rq.prepareRequest(timeout)
		}
		rq.attempt(h, attempt)
		if rq.retry == nil || !rq.retry.pending {
			return
		}
		rq.retry.pending = false
		if !rq.waitBackoff() {
			return
		}
		h = rq.chooseHost(&lbctx)
	}
}

// prepareRequest finalizes the upstream request once, before the first
// try (header mutations and rewrites, x-envoy-expected-rq-timeout-ms), and
// starts the shadow requests.
func (rq *request) prepareRequest(timeout time.Duration) {
	s, r := rq.s, rq.route
	r.FinalizeRequest(&s.Req, rq.target, rq)
	if !s.SuppressEnvoyHeaders && timeout > 0 {
		expected := timeout
		if rs := rq.retry; rs != nil && rs.perTry > 0 && rs.perTry < timeout {
			expected = rs.perTry // Envoy: the per-try timeout when there is one
		}
		var num [20]byte
		s.Req.SetBytes(headers.XEnvoyExpectedTO, strconv.AppendInt(num[:0], expected.Milliseconds(), 10))
	}
	if len(r.MirrorPolicies()) > 0 {
		rq.mirror()
	}
}

// attempt sends one try of the request to host h.
func (rq *request) attempt(h *upstream.Host, attempt int) {
	s, cl := rq.s, rq.cluster
	rq.host = h
	s.Info.UpstreamHost = h.Address()
	s.Info.UpstreamHostMetadata = h.Metadata()
	s.Info.UpstreamAttempts = attempt
	if rq.route.AutoHostRewrite() && h.Hostname() != "" {
		s.Req.Authority = []byte(h.Hostname())
	}
	rq.setAttemptHeaders(attempt)
	if rq.replay != nil {
		rq.replay.rewind()
	}
	cl.Stats.RqTotal.Inc()
	cl.Stats.RqActive.Inc()
	h.Stats.RqTotal.Inc()
	h.Stats.RqActive.Inc()
	defer func() {
		cl.Stats.RqActive.Dec()
		h.Stats.RqActive.Dec()
	}()
	rq.upStart = time.Now()
	rq.setAttemptDeadline()
	rq.setupIdle()
	switch proto := cl.Protocol(); {
	case proto == upstream.HTTP2, proto == upstream.Downstream && s.Req.Protocol == headers.HTTP2:
		rq.forwardHTTP2()
	default:
		rq.forwardHTTP1()
	}
}

// timeout is the route's timeout. For a gRPC request on a route with
// max_stream_duration.grpc_timeout_header_max it is Envoy's gRPC timeout
// instead (duration is then true): the grpc-timeout header minus
// grpc_timeout_header_offset, capped by the max (0: no cap); no header means
// the max itself, 0 meaning none (Envoy's FilterUtility::finalTimeout).
// The route's max_stream_duration.max_stream_duration, the longest a stream
// on the route may live (counted, like the others, from the request's
// start), applies when it is shorter (duration true as well): a stream that
// outlives it ends with 408 "downstream duration timeout", flag DT, as
// Envoy's connection manager ends it.
func (rq *request) timeout() (d time.Duration, duration bool) {
	r := rq.route
	msd := r.MaxStreamDuration()
	d = r.Timeout()
	if rq.s.GRPC && msd.HasGrpcTimeoutHeaderMax {
		gt, _ := parseGRPCTimeout(rq.s.Req.Get(headers.GRPCTimeout))
		if msd.HasGrpcTimeoutHeaderOffset && gt > 0 {
			gt = max(gt-msd.GrpcTimeoutHeaderOffset, time.Millisecond)
		}
		if m := msd.GrpcTimeoutHeaderMax; m > 0 && (gt == 0 || gt > m) {
			gt = m
		}
		d, duration = gt, true
	}
	if m := msd.MaxStreamDuration; msd.HasMaxStreamDuration && m > 0 && (d == 0 || m < d) {
		d, duration = m, true
	}
	return d, duration
}

// parseGRPCTimeout parses a grpc-timeout value: at most 8 digits and a unit
// (H, M, S, m, u, n).
func parseGRPCTimeout(v []byte) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	var n int64
	for _, c := range v[:len(v)-1] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// finishResponseHeaders applies the router's response rules before the
// head goes downstream: x-envoy-upstream-service-time, the route's header
// mutations and generated hash cookies.
func (rq *request) finishResponseHeaders() {
	s := rq.s
	resp := &s.Resp
	if !s.SuppressEnvoyHeaders {
		var num [20]byte
		resp.SetBytes(headers.XEnvoyUpstreamST, strconv.AppendInt(num[:0], time.Since(rq.upStart).Milliseconds(), 10))
	}
	if rq.route.VirtualHost().IncludeAttemptCountInResponse() {
		var num [20]byte
		resp.SetBytes(hdrAttemptCount, strconv.AppendInt(num[:0], int64(rq.attemptN), 10))
	}
	rq.route.ApplyResponseHeaders(resp, &s.Req, rq.target, rq)
	for _, c := range rq.cookies {
		resp.AddBytes([]byte(headers.SetCookie), c)
	}
	s.Info.FirstUpstreamByte = time.Since(s.Info.StartTime)
}

// recordUpstream counts an upstream response, for the cluster's stats and
// the host's outlier detection. It is called once for every try that got a
// response head, retried or not (a try that failed before its response is
// counted where it failed: poolError, upstreamFailed, http2Failed).
func (rq *request) recordUpstream(code int) {
	rq.host.RecordOutcome(upstream.OutcomeResponse, code)
	rq.cluster.Stats.RecordResponse(code)
	rq.cluster.Stats.RqTime.Record(float64(time.Since(rq.upStart)) / float64(time.Millisecond))
	if code >= 500 {
		rq.host.Stats.RqError.Inc()
	} else {
		rq.host.Stats.RqSuccess.Inc()
	}
}

// router.Vars

func (rq *request) DownstreamRemoteAddr() netip.AddrPort { return rq.s.Info.DownstreamRemote }
func (rq *request) DownstreamLocalAddr() netip.AddrPort  { return rq.s.Info.DownstreamLocal }
func (rq *request) UpstreamRemoteAddr() netip.AddrPort {
	if rq.host == nil {
		return netip.AddrPort{}
	}
	return rq.host.AddrPort()
}
func (rq *request) Protocol() headers.Protocol { return rq.s.Req.Protocol }
func (rq *request) Hostname() string           { return rq.f.hostname }
func (rq *request) StartTime() time.Time       { return rq.s.Info.StartTime }
