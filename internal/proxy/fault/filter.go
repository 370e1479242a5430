package fault

import (
	"math/rand/v2"
	"sync"
	"time"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// The request headers of header-controlled faults (Envoy's fault filter
// docs, "Controlling fault injection via HTTP headers").
const (
	HeaderAbortRequest           = "x-envoy-fault-abort-request"
	HeaderAbortGRPCRequest       = "x-envoy-fault-abort-grpc-request"
	HeaderAbortRequestPercentage = "x-envoy-fault-abort-request-percentage"
	HeaderDelayRequest           = "x-envoy-fault-delay-request"
	HeaderDelayRequestPercentage = "x-envoy-fault-delay-request-percentage"
)

// Envoy's local reply of an injected abort.
const (
	AbortBody    = "fault filter abort"
	AbortDetails = "fault_filter_abort"
)

// Options configure the filters Register builds.
type Options struct {
	// Scope is the connection manager's scope (http.<stat_prefix>.); the
	// counters go under its "fault." child.
	Scope *stats.Scope
	// Random returns uniformly distributed draws for the percentages
	// (nil: math/rand/v2's Uint64). Tests fix it.
	Random func() uint64
}

// Register adds envoy.filters.http.fault to r: the filter type, and its
// per-route configuration (the same HTTPFault message) for
// typed_per_filter_config.
func Register(r *httpfilter.Registry, o Options) {
	r.Register(&faultv3.HTTPFault{}, false, func(cfg proto.Message, _ httpfilter.Deps) (httpfilter.Filter, error) {
		return New(cfg.(*faultv3.HTTPFault), o)
	})
	r.RegisterPerRoute(&faultv3.HTTPFault{}, func(cfg proto.Message) (any, error) {
		return Compile(cfg.(*faultv3.HTTPFault))
	})
}

// Filter is one configured fault filter. It is safe for concurrent use.
type Filter struct {
	settings *Settings
	random   func() uint64
	c        counters
	timers   sync.Pool // *time.Timer, stopped
}

// counters are the filter's stats (see the package doc).
type counters struct {
	delays, aborts, overflow *stats.Counter
	active                   *stats.Gauge
}

// New builds the filter from its listener-level configuration.
func New(cfg *faultv3.HTTPFault, o Options) (*Filter, error) {
	st, err := Compile(cfg)
	if err != nil {
		return nil, err
	}
	f := &Filter{settings: st, random: o.Random}
	if f.random == nil {
		f.random = rand.Uint64
	}
	sc := o.Scope
	if sc == nil {
		sc = stats.NewStore().Root()
	}
	sc = sc.Scope("fault")
	f.c = counters{
		delays:   sc.Counter("delays_injected"),
		aborts:   sc.Counter("aborts_injected"),
		overflow: sc.Counter("faults_overflow"),
		active:   sc.Gauge("active_faults"),
	}
	return f, nil
}

// DecodeHeaders injects the configured faults into the request (see the
// package doc). During a delay it blocks the stream's goroutine on a timer
// and ends early, resetting the stream, when the downstream goes away.
func (f *Filter) DecodeHeaders(s *httpfilter.Stream) httpfilter.Status {
	st := f.settings
	if pr, ok := s.FilterConfig.(*Settings); ok && pr != nil {
		st = pr // the route's configuration replaces the filter's
	}
	if st.Empty() || !st.applies(s) {
		return httpfilter.Continue
	}
	active := false
	defer func() {
		if active {
			f.c.active.Dec()
		}
	}()
	if d, ok := st.delayFor(&s.Req, f.random); ok {
		if active = f.tryActivate(st); active {
			f.c.delays.Inc()
			s.Info.SetFlag(streaminfo.DelayInjected)
			if !f.wait(s, d) {
				s.Info.SetFlag(streaminfo.DownstreamConnectionTermination)
				s.W.Abort()
				return httpfilter.Stop
			}
		}
	}
	lr, ok := st.abortFor(&s.Req, f.random)
	if !ok {
		return httpfilter.Continue
	}
	if !active {
		if active = f.tryActivate(st); !active {
			return httpfilter.Continue
		}
	}
	f.c.aborts.Inc()
	httpfilter.Send(s, lr)
	return httpfilter.Stop
}

// tryActivate counts a fault in progress unless max_active_faults is
// reached (then faults_overflow counts the request). Like Envoy's, the
// limit is fuzzy: concurrent requests may pass it by a few.
func (f *Filter) tryActivate(st *Settings) bool {
	if st.maxActive >= 0 && f.c.active.Value() >= st.maxActive {
		f.c.overflow.Inc()
		return false
	}
	f.c.active.Inc()
	return true
}

// wait sleeps d on a pooled timer; false when the stream's context ended
// first (the downstream went away or the server stops).
func (f *Filter) wait(s *httpfilter.Stream, d time.Duration) bool {
	t, _ := f.timers.Get().(*time.Timer)
	if t == nil {
		t = time.NewTimer(d)
	} else {
		t.Reset(d)
	}
	defer func() {
		t.Stop()
		f.timers.Put(t)
	}()
	var done <-chan struct{}
	if s.Ctx != nil {
		done = s.Ctx.Done()
	}
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// applies reports whether the request is subject to the settings:
// upstream_cluster (compared with the route's cluster; a weighted_clusters
// route, whose cluster the router picks later, never matches) and headers.
func (st *Settings) applies(s *httpfilter.Stream) bool {
	if st.upstreamCluster != "" {
		cs := s.Route.Clusters()
		if len(cs) != 1 || cs[0].Name != st.upstreamCluster {
			return false
		}
	}
	return st.headers.Empty() || st.headers.Match(&s.Req)
}

// delayFor decides the delay of one request: the percentage draw first
// (capped by x-envoy-fault-delay-request-percentage with header_delay),
// then the duration (fixed, or x-envoy-fault-delay-request milliseconds;
// a missing, invalid or zero header means no delay).
func (st *Settings) delayFor(req *headers.Request, random func() uint64) (time.Duration, bool) {
	dc := st.delay
	if dc == nil {
		return 0, false
	}
	pct := dc.pct
	if dc.fromHeader {
		if n, ok := parseUint(req.Get(HeaderDelayRequestPercentage)); ok {
			pct = pct.Capped(n)
		}
	}
	if !pct.Hit(random()) {
		return 0, false
	}
	if !dc.fromHeader {
		return dc.fixed, true
	}
	ms, ok := parseUint(req.Get(HeaderDelayRequest))
	if !ok || ms == 0 || ms > uint64(maxHeaderDelay/time.Millisecond) {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// maxHeaderDelay bounds x-envoy-fault-delay-request so that the duration
// cannot overflow.
const maxHeaderDelay = 24 * time.Hour

// abortFor decides the abort of one request and returns the reply: the
// percentage draw (capped by x-envoy-fault-abort-request-percentage with
// header_abort), then the status: HTTP http_status, or HTTP 200 with
// grpc-status grpc_status; with header_abort, x-envoy-fault-abort-request
// (an HTTP status in [200, 600)) wins over
// x-envoy-fault-abort-grpc-request.
func (st *Settings) abortFor(req *headers.Request, random func() uint64) (httpfilter.LocalReply, bool) {
	ac := st.abort
	if ac == nil {
		return httpfilter.LocalReply{}, false
	}
	pct := ac.pct
	if ac.fromHeader {
		if n, ok := parseUint(req.Get(HeaderAbortRequestPercentage)); ok {
			pct = pct.Capped(n)
		}
	}
	if !pct.Hit(random()) {
		return httpfilter.LocalReply{}, false
	}
	lr := httpfilter.LocalReply{Body: AbortBody, Flag: streaminfo.FaultInjected, Details: AbortDetails}
	status, grpcStatus, isGRPC := ac.httpStatus, ac.grpcStatus, ac.isGRPC
	if ac.fromHeader {
		status, isGRPC = 0, false
		if n, ok := parseUint(req.Get(HeaderAbortRequest)); ok && n >= 200 && n < 600 {
			status = int(n)
		} else if n, ok := parseUint(req.Get(HeaderAbortGRPCRequest)); ok && n <= 1<<31-1 {
			grpcStatus, isGRPC = int(n), true
		} else {
			return httpfilter.LocalReply{}, false
		}
	}
	if isGRPC {
		// Envoy answers a gRPC abort with HTTP 200 and the grpc-status.
		lr.Status, lr.GRPCStatus, lr.HasGRPCStatus = 200, grpcStatus, true
		return lr, true
	}
	lr.Status = status
	return lr, true
}

// parseUint parses a non-empty run of decimal digits (no sign, no spaces),
// as absl::SimpleAtoi accepts header values here; false on overflow.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
