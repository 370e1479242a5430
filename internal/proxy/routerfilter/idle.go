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
	if !rq.idleArmed && rq.perTryIdle == 0 {
		return
	}
	c.NetConn().SetReadDeadline(rq.readDeadline())
}

// readDeadline is the deadline of the next upstream read: the try's
// deadline (route deadline or per-try timeout), or, when they come first,
// the stream idle timeout or the per-try idle timeout from now.
func (rq *request) readDeadline() time.Time {
	d := rq.tryDeadline
	if !rq.idleArmed && rq.perTryIdle == 0 {
		return d
	}
	now := time.Now()
	if rq.idleArmed {
		d = earliest(d, now.Add(rq.idle))
	}
	if rq.perTryIdle > 0 {
		d = earliest(d, now.Add(rq.perTryIdle))
	}
	return d
}

// earliest returns the earlier deadline, a zero deadline meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// timeoutKind says which timer a read or pool timeout was.
type timeoutKind uint8

const (
	toRoute      timeoutKind = iota // the route timeout (or grpc-timeout)
	toPerTry                        // per_try_timeout
	toPerTryIdle                    // per_try_idle_timeout
	toStreamIdle                    // the route's idle_timeout or stream_idle_timeout
)

// timeoutKind classifies a timeout that just happened by the deadlines
// that have passed: the route deadline, the try's deadline, else the
// shorter of the idle timeouts that were armed.
func (rq *request) timeoutKind() timeoutKind {
	now := time.Now()
	switch {
	case !rq.deadline.IsZero() && !now.Before(rq.deadline):
		return toRoute
	case rq.tryDeadline != rq.deadline && !rq.tryDeadline.IsZero() && !now.Before(rq.tryDeadline):
		return toPerTry
	case rq.perTryIdle > 0 && (!rq.idleArmed || rq.perTryIdle <= rq.idle):
		return toPerTryIdle
	case rq.idleArmed:
		return toStreamIdle
	}
	return toRoute
}

// idleExpired reports whether a timeout is the stream idle timeout rather
// than the route deadline or a per-try timeout.
func (rq *request) idleExpired() bool { return rq.timeoutKind() == toStreamIdle }

// sendIdleTimeout answers a stream that idled out before its response.
func (rq *request) sendIdleTimeout() {
	rq.cluster.Stats.RqTimeout.Inc()
	httpfilter.SendLocalReply(rq.s, 408, "stream timeout", streaminfo.StreamIdleTimeout, "stream_idle_timeout")
}
