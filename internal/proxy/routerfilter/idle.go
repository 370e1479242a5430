package routerfilter

import (
	"time"

	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
	"github.com/weftmesh/weft/internal/proxy/upstream/pool"
)

// Stream idle timeout on forwarded requests.
//
// Envoy resets a stream on which nothing has moved for the route's
// idle_timeout, or the connection manager's stream_idle_timeout when the
// route sets none: 408 "stream timeout" with flag SI before the response
// started, a reset after. The route timeout usually comes first (15 s by
// default against 5 min), so the idle timer only costs something when it
// can fire before the route deadline: then every upstream read re-arms it.

// streamIdleTimeouter is implemented by response writers that know the
// connection manager's stream_idle_timeout.
type streamIdleTimeouter interface{ StreamIdleTimeout() time.Duration }

// streamIdleTimeout is the idle timeout that applies to the stream (and to
// an upgraded tunnel): the route's idle_timeout when set (0 disables it),
// else the connection manager's stream_idle_timeout.
func (rq *request) streamIdleTimeout() time.Duration {
	if d, ok := rq.route.IdleTimeout(); ok {
		return d
	}
	if w, ok := rq.s.W.(streamIdleTimeouter); ok {
		return w.StreamIdleTimeout()
	}
	return 0
}

// setupIdle decides whether reads must re-arm the idle timeout.
func (rq *request) setupIdle() {
	rq.idle = rq.streamIdleTimeout()
	rq.idleArmed = rq.idle > 0 && (rq.deadline.IsZero() || time.Until(rq.deadline) > rq.idle)
}

// armRead sets an HTTP/1 upstream connection's read deadline before a read:
// the stream idle timeout from now, capped by the route deadline.
func (rq *request) armRead(c *pool.H1Conn) {
	if !rq.idleArmed {
		return
	}
	d := time.Now().Add(rq.idle)
	if !rq.deadline.IsZero() && rq.deadline.Before(d) {
		d = rq.deadline
	}
	c.NetConn().SetReadDeadline(d)
}

// idleExpired reports whether a timeout is the idle timeout rather than the
// route deadline.
func (rq *request) idleExpired() bool {
	return rq.idleArmed && (rq.deadline.IsZero() || time.Now().Before(rq.deadline))
}

// sendIdleTimeout answers a stream that idled out before its response.
func (rq *request) sendIdleTimeout() {
	rq.cluster.Stats.RqTimeout.Inc()
	httpfilter.SendLocalReply(rq.s, 408, "stream timeout", streaminfo.StreamIdleTimeout, "stream_idle_timeout")
}
