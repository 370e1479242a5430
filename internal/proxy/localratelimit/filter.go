package localratelimit

import (
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// Envoy's local reply of a rate-limited request.
const (
	Body    = "local_rate_limited"
	Details = "local_rate_limited"
)

// The DRAFT_VERSION_03 response headers.
const (
	HeaderLimit     = "x-ratelimit-limit"
	HeaderRemaining = "x-ratelimit-remaining"
	HeaderReset     = "x-ratelimit-reset"
)

// Options configure the filters and per-route configurations Register
// builds.
type Options struct {
	// Scope is the root of the stats tree (nil: a private store).
	Scope *stats.Scope
	// Now is the token buckets' clock (nil: time.Now).
	Now func() time.Time
	// Random returns uniform draws for filter_enabled and filter_enforced
	// (nil: math/rand/v2's Uint64).
	Random func() uint64
}

// Register adds envoy.filters.http.local_ratelimit to r: the filter, and
// its per-route configuration (the same LocalRateLimit message, each with
// its own bucket) for typed_per_filter_config.
func Register(r *httpfilter.Registry, o Options) {
	r.Register(&lrlv3.LocalRateLimit{}, false, func(cfg proto.Message, _ httpfilter.Deps) (httpfilter.Filter, error) {
		return New(cfg.(*lrlv3.LocalRateLimit), o)
	})
	r.RegisterPerRoute(&lrlv3.LocalRateLimit{}, func(cfg proto.Message) (any, error) {
		return Compile(cfg.(*lrlv3.LocalRateLimit), CompileOptions{Scope: o.Scope, Now: o.Now, PerRoute: true})
	})
}

// Filter is one configured local rate limit filter. It is safe for
// concurrent use.
type Filter struct {
	cfg    *Config
	random func() uint64
}

// New builds the filter from its connection-manager-level configuration.
func New(cfg *lrlv3.LocalRateLimit, o Options) (*Filter, error) {
	c, err := Compile(cfg, CompileOptions{Scope: o.Scope, Now: o.Now})
	if err != nil {
		return nil, err
	}
	f := &Filter{cfg: c, random: o.Random}
	if f.random == nil {
		f.random = rand.Uint64
	}
	return f, nil
}

// DecodeHeaders takes a token from the most specific configuration's
// bucket (see the package doc). It does not allocate, except to wrap the
// response writer when x-ratelimit headers are enabled.
func (f *Filter) DecodeHeaders(s *httpfilter.Stream) httpfilter.Status {
	c := f.cfg
	if pr, ok := s.FilterConfig.(*Config); ok && pr != nil {
		c = pr // the route's (or virtual host's) configuration and bucket
	}
	if !c.enabled.Hit(f.random()) {
		return httpfilter.Continue
	}
	c.c.enabled.Inc()
	if c.bucket == nil {
		c.c.ok.Inc()
		return httpfilter.Continue
	}
	ok, remaining, reset := c.bucket.Take()
	if c.xRateLimit {
		s.W = &xRateLimitWriter{ResponseWriter: s.W, limit: c.bucket.Max(), remaining: remaining, reset: reset}
	}
	if ok {
		c.c.ok.Inc()
		return httpfilter.Continue
	}
	c.c.rateLimited.Inc()
	if !c.enforced.Hit(f.random()) {
		c.notEnforced.Apply(&s.Req.Map, &s.Req, nil)
		return httpfilter.Continue
	}
	c.c.enforced.Inc()
	httpfilter.Send(s, httpfilter.LocalReply{
		Status: c.status, Body: Body, Flag: streaminfo.RateLimited, Details: Details, Headers: &c.responseHeaders,
	})
	return httpfilter.Stop
}

// xRateLimitWriter adds the x-ratelimit headers to the response head. It
// passes through the optional interfaces the connection manager and the
// router look for on a response writer.
type xRateLimitWriter struct {
	httpfilter.ResponseWriter
	limit, remaining uint32
	reset            time.Duration
}

// WriteHeaders adds x-ratelimit-limit, -remaining and -reset.
func (w *xRateLimitWriter) WriteHeaders(h *headers.Response, endStream bool) error {
	var buf [20]byte
	h.SetBytes(HeaderLimit, strconv.AppendUint(buf[:0], uint64(w.limit), 10))
	h.SetBytes(HeaderRemaining, strconv.AppendUint(buf[:0], uint64(w.remaining), 10))
	h.SetBytes(HeaderReset, strconv.AppendInt(buf[:0], int64(w.reset/time.Second), 10))
	return w.ResponseWriter.WriteHeaders(h, endStream)
}

var errNotHijackable = errors.New("response writer cannot be hijacked")

// Hijack passes through to an HTTP/1 writer.
func (w *xRateLimitWriter) Hijack() (net.Conn, []byte, error) {
	if h, ok := w.ResponseWriter.(httpfilter.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errNotHijackable
}

// Aborted passes through the connection manager's reset check.
func (w *xRateLimitWriter) Aborted() bool {
	a, ok := w.ResponseWriter.(interface{ Aborted() bool })
	return ok && a.Aborted()
}

// StreamIdleTimeout passes through the connection manager's
// stream_idle_timeout for the router.
func (w *xRateLimitWriter) StreamIdleTimeout() time.Duration {
	t, ok := w.ResponseWriter.(interface{ StreamIdleTimeout() time.Duration })
	if !ok {
		return 0
	}
	return t.StreamIdleTimeout()
}
