package routerfilter

import (
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/proxy/codec/http1"
	h2codec "github.com/weftmesh/weft/internal/proxy/codec/http2"
	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/upstream"
	"github.com/weftmesh/weft/internal/proxy/upstream/lb"
)

// Request mirroring (RouteAction.request_mirror_policies), as Envoy's
// shadow writer: for each policy whose runtime_fraction samples the
// request, a copy of the finalized request goes to the policy's cluster,
// its Host/:authority with "-shadow" appended to the host part (unless
// disable_shadow_host_suffix_append). It is fire-and-forget: the shadow
// runs on its own goroutine, never delays or changes the main response,
// and its response is read and discarded; failures only show in the
// shadow cluster's statistics. The request body goes along when it was
// buffered (replay.go); a body that could not be buffered is not shadowed
// (retry_or_shadow_abandoned). A policy naming an unknown cluster is
// skipped, as Envoy does. The shadow's deadline is the route timeout
// (DefaultTimeout when the route disables it).

// MaxShadows bounds the shadow requests in flight per router (one router
// per connection manager configuration). A shadow beyond the bound is
// dropped and counted in the shadow cluster's upstream_rq_shadow_overflow,
// so a slow or dead shadow cluster costs at most this many goroutines and
// connections.
const MaxShadows = 128

// shadowLimiter counts shadow requests in flight.
type shadowLimiter struct{ n atomic.Int64 }

func (l *shadowLimiter) tryAcquire() bool {
	if l.n.Add(1) > MaxShadows {
		l.n.Add(-1)
		return false
	}
	return true
}

func (l *shadowLimiter) release() { l.n.Add(-1) }

// shadow is one mirrored request, owned by its goroutine.
type shadow struct {
	req      headers.Request
	resp     headers.Response
	body     []byte
	cluster  *upstream.Cluster
	deadline time.Time
	done     func()
}

// mirror starts the shadow requests of the route's mirror policies.
func (rq *request) mirror() {
	s := rq.s
	for i := range rq.route.MirrorPolicies() {
		m := &rq.route.MirrorPolicies()[i]
		if !m.Sampled(rand.Uint64()) {
			continue
		}
		cl := rq.f.clusters.Get(m.Cluster)
		if cl == nil {
			continue
		}
		if rq.replay == nil && s.ContentLength != 0 {
			cl.Stats.Retry.Abandoned.Inc()
			continue
		}
		if !rq.f.shadows.tryAcquire() {
			cl.Stats.Retry.ShadowOverflow.Inc()
			continue
		}
		sh := rq.newShadow(m, cl)
		go sh.run()
	}
}

// newShadow copies the request for a shadow.
func (rq *request) newShadow(m *router.MirrorPolicy, cl *upstream.Cluster) *shadow {
	src := &rq.s.Req
	sh := &shadow{cluster: cl, deadline: rq.deadline, done: rq.f.shadows.release}
	if sh.deadline.IsZero() {
		sh.deadline = time.Now().Add(router.DefaultTimeout)
	}
	r := &sh.req
	r.Map.CopyFrom(&src.Map)
	r.Method = append([]byte(nil), src.Method...)
	r.Scheme = append([]byte(nil), src.Scheme...)
	r.Path = append([]byte(nil), src.Path...)
	r.Protocol = src.Protocol
	if m.DisableShadowHostSuffix {
		r.Authority = append([]byte(nil), src.Authority...)
	} else {
		r.Authority = router.ShadowAuthority(nil, src.Authority)
	}
	if rq.replay != nil {
		sh.body = append([]byte(nil), rq.replay.data...)
	}
	return sh
}

// run sends the shadow and discards its response.
func (sh *shadow) run() {
	defer sh.done()
	cl := sh.cluster
	if !cl.Breakers.TryRequest() {
		cl.Stats.Pool.RqPendingOverflw.Inc()
		return
	}
	defer cl.Breakers.ReleaseRequest()
	h := cl.Choose(&lb.Context{})
	if h == nil {
		return
	}
	cl.Stats.RqTotal.Inc()
	h.Stats.RqTotal.Inc()
	var code int
	switch proto := cl.Protocol(); {
	case proto == upstream.HTTP2, proto == upstream.Downstream && sh.req.Protocol == headers.HTTP2:
		code = sh.sendHTTP2(h)
	default:
		code = sh.sendHTTP1(h)
	}
	if code == 0 {
		code = 503 // a failed shadow counts as Envoy charges a reset
	}
	cl.Stats.RecordResponse(code)
	if code >= 500 {
		h.Stats.RqError.Inc()
	} else {
		h.Stats.RqSuccess.Inc()
	}
}

// sendHTTP1 runs the shadow exchange over HTTP/1.1; it returns the
// response status, 0 when there was none.
func (sh *shadow) sendHTTP1(h *upstream.Host) int {
	c, err := h.H1().Acquire(sh.deadline)
	if err != nil {
		return 0
	}
	c.NetConn().SetDeadline(sh.deadline)
	framing := http1.Framing{Kind: http1.BodyNone}
	if len(sh.body) > 0 || methodWantsLength(sh.req.Method) {
		framing = http1.Framing{Kind: http1.BodyLength, Length: int64(len(sh.body))}
	}
	if err := c.WriteRequestHead(&sh.req, framing); err != nil {
		c.Release(false)
		return 0
	}
	if len(sh.body) > 0 {
		if _, err := c.Write(sh.body); err != nil {
			c.Release(false)
			return 0
		}
	}
	if framing.Kind != http1.BodyNone {
		if err := c.EndBody(nil); err != nil {
			c.Release(false)
			return 0
		}
	}
	if err := c.Flush(); err != nil {
		c.Release(false)
		return 0
	}
	head, err := c.ReadResponse(&sh.resp, string(sh.req.Method) == "HEAD")
	if err != nil {
		c.Release(false)
		return 0
	}
	_, err = io.Copy(io.Discard, c.Body())
	c.Release(err == nil && head.KeepAlive && c.Body().Done())
	return sh.resp.Status
}

// sendHTTP2 runs the shadow exchange as an HTTP/2 stream.
func (sh *shadow) sendHTTP2(h *upstream.Host) int {
	cc, err := h.H2().Acquire(sh.deadline)
	if err != nil {
		return 0
	}
	defer cc.Done()
	cs, err := cc.Open(&sh.req, h2codec.OpenOptions{Body: sh.body, EndStream: true})
	if err != nil {
		return 0
	}
	defer cs.Close()
	cs.SetReadDeadline(sh.deadline)
	end, err := cs.ReadHeaders(&sh.resp)
	if err != nil {
		return 0
	}
	if !end {
		io.Copy(io.Discard, cs)
	}
	return sh.resp.Status
}
