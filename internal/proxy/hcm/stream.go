package hcm

import (
	"bytes"
	"time"

	"github.com/weftmesh/weft/internal/proxy/accesslog"
	"github.com/weftmesh/weft/internal/proxy/codec/http1"
	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
	"github.com/weftmesh/weft/internal/proxy/tracing"
)

// handle runs one request through the connection manager: header checks and
// rewrites, route resolution, the filter chain, and the stats at the end.
// It returns once the response is complete (or the stream was reset).
func (m *Manager) handle(s *httpfilter.Stream, keepAlive bool) {
	m.stats.rqTotal.Inc()
	m.stats.rqActive.Inc()
	s.Info.Protocol = s.Req.Protocol
	s.Info.DownstreamLocal = s.Conn.Local
	s.Info.DownstreamRemote = s.Conn.Remote
	s.SuppressEnvoyHeaders = m.suppressEnvoyHeaders
	if s.ContentLength == 0 {
		s.Info.MarkRequestDone() // the head was the whole request
	}
	var span tracing.Span // tracing.go
	if m.checkRequest(s) {
		m.mutateRequestHeaders(s)
		m.startSpan(&span, s)
		m.route(s)
	}
	if !s.W.HeadersSent() {
		m.unanswered(s)
	}
	m.finishStream(s)
	m.finishSpan(&span, s)
}

// readTimeouter is implemented by request bodies that know whether reading
// them hit one of the connection manager's request timers.
type readTimeouter interface {
	ReadTimeout() (t readTimer, fired bool)
}

// bodyProtocolErrorer is implemented by request bodies that know whether
// their framing was malformed (a bad chunked body).
type bodyProtocolErrorer interface{ ProtocolError() *http1.Error }

// aborter is implemented by response writers that know whether the stream
// was reset (Abort).
type aborter interface{ Aborted() bool }

// unanswered handles a stream the filter chain ended without a response:
// the request body was malformed (the codec's status, 400, with the DPE
// flag, as Envoy's codec error), a request timer fired while the body was
// read (Envoy's 408 "request timeout" / "stream timeout"), both closing the
// connection; the stream was reset (nothing is sent); or a filter failed to
// answer (500, a bug).
func (m *Manager) unanswered(s *httpfilter.Stream) {
	if b, ok := s.Body.(bodyProtocolErrorer); ok {
		if perr := b.ProtocolError(); perr != nil {
			m.stats.cxProtocolError.Inc()
			s.CloseConnection = true
			httpfilter.SendLocalReply(s, perr.Status, "", streaminfo.DownstreamProtocolError, perr.Details)
			return
		}
	}
	if b, ok := s.Body.(readTimeouter); ok {
		if t, fired := b.ReadTimeout(); fired {
			m.countTimeout(t)
			s.CloseConnection = true
			httpfilter.SendLocalReply(s, 408, t.body, t.flag, t.details)
			return
		}
	}
	if a, ok := s.W.(aborter); ok && a.Aborted() {
		return
	}
	httpfilter.SendLocalReply(s, 500, "", 0, "filter_chain_incomplete")
}

// route resolves the route and runs the filter chain.
func (m *Manager) route(s *httpfilter.Stream) {
	s.Route, s.VirtualHost = m.routes.Load().Route(&s.Req)
	if s.Req.UpgradeProto != nil && !m.upgradeAllowed(s) {
		m.stats.rqWsOnNonWs.Inc()
		s.CloseConnection = true
		httpfilter.SendLocalReply(s, 403, "", 0, "upgrade_failed")
		return
	}
	if s.Route == nil {
		m.stats.noRoute.Inc()
		httpfilter.SendLocalReply(s, 404, "", streaminfo.NoRouteFound, "route_not_found")
		return
	}
	m.runFilters(s)
}

// upgradeAllowed applies upgrade_configs: the route's setting for the
// upgrade type wins over the connection manager's.
func (m *Manager) upgradeAllowed(s *httpfilter.Stream) bool {
	hcmAllows := m.upgrades[string(s.Req.UpgradeProto)]
	if s.Route != nil {
		return s.Route.UpgradeAllowed(s.Req.UpgradeProto, hcmAllows)
	}
	return hcmAllows
}

// finishStream records the end of a stream.
func (m *Manager) finishStream(s *httpfilter.Stream) {
	s.Info.Duration = time.Since(s.Info.StartTime)
	m.stats.rqActive.Dec()
	m.stats.recordResponse(s.Info.ResponseCode)
	m.stats.rqTime.Record(float64(s.Info.Duration) / float64(time.Millisecond))
	for _, o := range m.observers {
		o.OnStreamDone(s)
	}
	if m.o.OnStreamDone != nil {
		m.o.OnStreamDone(s)
	}
	if len(m.accessLogs) > 0 {
		m.logStream(s)
	}
}

// logStream writes the stream's access log lines (access_log).
func (m *Manager) logStream(s *httpfilter.Stream) {
	e := accesslog.Entry{Info: &s.Info, Req: &s.Req, Conn: s.Conn}
	if s.W != nil && s.W.HeadersSent() {
		e.Resp, e.Trailers = &s.Resp, &s.RespTrailers
	}
	m.accessLogs.Log(&e)
}

func (m *Manager) draining() bool { return m.o.Drain != nil && m.o.Drain.Draining() }

// drainCloser is implemented by drain signals that can ask connection
// managers to close connections after their current request without
// draining (refusing) new ones: Envoy's DrainManager::drainClose(), true
// while health checks fail (/healthcheck/fail) as well as while draining.
type drainCloser interface{ DrainClose() bool }

// closeAfterResponse reports whether HTTP/1 responses must carry
// "connection: close" now: while draining, or while the drain signal says
// drainClose.
func (m *Manager) closeAfterResponse() bool {
	if m.draining() {
		return true
	}
	dc, ok := m.o.Drain.(drainCloser)
	return ok && dc.DrainClose()
}

// checkRequest applies the connection manager's request checks and answers
// the request itself when one fails. It reports whether processing goes on.
func (m *Manager) checkRequest(s *httpfilter.Stream) bool {
	r := &s.Req
	if r.Protocol == headers.HTTP10 {
		if !m.acceptHTTP10 {
			s.CloseConnection = true
			httpfilter.SendLocalReply(s, 426, "", streaminfo.DownstreamProtocolError, "low_version")
			return false
		}
		if r.Authority == nil && m.defaultHost10 != "" {
			r.Authority = []byte(m.defaultHost10)
		}
	}
	if len(r.Authority) == 0 {
		httpfilter.SendLocalReply(s, 400, "", streaminfo.DownstreamProtocolError, "missing_host_header")
		return false
	}
	if len(r.Path) == 0 || r.Path[0] != '/' && !(string(r.Path) == "*" && string(r.Method) == "OPTIONS") {
		httpfilter.SendLocalReply(s, 400, "", streaminfo.DownstreamProtocolError, "invalid_path")
		return false
	}
	if m.rejectUnderscores || m.dropUnderscores {
		for i := 0; i < len(r.Fields); i++ {
			if bytes.IndexByte(r.Fields[i].Name, '_') < 0 {
				continue
			}
			if m.rejectUnderscores {
				httpfilter.SendLocalReply(s, 400, "", streaminfo.DownstreamProtocolError, "unexpected_underscore")
				return false
			}
			r.Fields = append(r.Fields[:i], r.Fields[i+1:]...)
			i--
		}
	}
	if ct := r.Get(headers.ContentType); bytes.HasPrefix(ct, []byte("application/grpc")) {
		s.GRPC = true
		// Count the messages both ways (the grpc_stats filter's counts,
		// which istio.stats reports): the body reader and the response
		// writer inspect what passes.
		s.Info.RequestMessages.Start()
		s.Info.ResponseMessages.Start()
	}
	if !removeHopByHop(&r.Map, r.UpgradeProto != nil) {
		httpfilter.SendLocalReply(s, 400, "", streaminfo.DownstreamProtocolError, "http1.connection_header_rejected")
		return false
	}
	if e := r.Get(headers.Expect); e != nil && headers.EqualFold(e, "100-continue") {
		// The connection manager answered the expectation itself (Envoy's
		// proxy_100_continue off): it must not reach the upstream.
		r.Del(headers.Expect)
	}
	if r.UpgradeProto != nil && string(r.UpgradeProto) == "h2c" {
		// Envoy ignores HTTP/1 h2c upgrades and proxies the request as is.
		r.UpgradeProto = nil
		r.Del(headers.Upgrade)
		r.Del("http2-settings")
	}
	return true
}

// removeHopByHop removes the connection-specific request headers: the
// fields Connection names, and the hop-by-hop fields of RFC 9110 §7.6.1.
// For an upgrade, "connection: upgrade" and Upgrade are kept (the router
// forwards them). "te: trailers" is kept, as Envoy keeps it (sanitize_te).
// It reports false when the Connection header must be refused (see
// nominationAllowed); the request is then answered 400.
func removeHopByHop(h *headers.Map, upgrade bool) bool {
	if !hasHopByHop(h) {
		// The common case: one pass over the fields, no deletion.
		if upgrade {
			h.Set(headers.Connection, "upgrade")
		}
		return true
	}
	var stack [2][]byte
	conns := stack[:0]
	for i := h.Index(headers.Connection, 0); i >= 0; i = h.Index(headers.Connection, i+1) {
		if !nominationAllowed(h.Fields[i].Value) {
			return false
		}
		conns = append(conns, h.Fields[i].Value)
	}
	h.Del(headers.Connection)
	for _, conn := range conns {
		deleteNominated(h, conn)
	}
	h.Del(headers.KeepAlive)
	h.Del(headers.ProxyConnection)
	h.Del(headers.TransferEncoding)
	if te := h.Get(headers.TE); te != nil && !headers.HasToken(te, "trailers") {
		h.Del(headers.TE)
	} else if te != nil {
		h.Set(headers.TE, "trailers")
	}
	if upgrade {
		h.Set(headers.Connection, "upgrade")
	} else {
		h.Del(headers.Upgrade)
	}
	return true
}

// hasHopByHop reports, in one pass, whether any connection-specific field
// is present, so that the common message pays no deletions.
func hasHopByHop(h *headers.Map) bool {
	for i := range h.Fields {
		switch string(h.Fields[i].Name) {
		case headers.Connection, headers.KeepAlive, headers.ProxyConnection,
			headers.TransferEncoding, headers.TE, headers.Upgrade:
			return true
		}
	}
	return false
}

// maxConnectionTokens is Envoy's limit on the tokens of a request's
// Connection header (Utility::sanitizeConnectionHeader: 10 or more fail the
// request).
const maxConnectionTokens = 10

// nominationAllowed applies the checks of Envoy's HTTP/1 codec on a request
// Connection header (Utility::sanitizeConnectionHeader, answered 400 with
// http1.connection_header_rejected): at most 9 tokens, and none naming
// x-forwarded-for, x-forwarded-host, x-forwarded-proto or a pseudo-header,
// whose removal by a proxy could hide where a request came from.
func nominationAllowed(conn []byte) bool {
	n := 0
	for rest := conn; len(rest) > 0; {
		var tok []byte
		tok, rest = headers.NextToken(rest)
		if len(tok) == 0 {
			continue
		}
		n++
		if n >= maxConnectionTokens || tok[0] == ':' ||
			headers.EqualFold(tok, headers.XForwardedFor) || headers.EqualFold(tok, headers.XForwardedHost) ||
			headers.EqualFold(tok, headers.XForwardedProto) {
			return false
		}
	}
	return true
}

// deleteNominated removes the fields a Connection header names, except the
// tokens with their own meaning (close, keep-alive, upgrade, te,
// http2-settings; TE is sanitized on its own).
func deleteNominated(h *headers.Map, conn []byte) {
	for rest := conn; len(rest) > 0; {
		var tok []byte
		tok, rest = headers.NextToken(rest)
		if len(tok) == 0 || headers.EqualFold(tok, "close") || headers.EqualFold(tok, "keep-alive") ||
			headers.EqualFold(tok, "upgrade") || headers.EqualFold(tok, "te") {
			continue
		}
		h.DelFold(tok)
	}
}

// prepareResponse applies the connection manager's response rules: remove
// hop-by-hop headers, set date and the server header.
func (m *Manager) prepareResponse(h *headers.Response, upgrade bool) {
	if hasHopByHop(&h.Map) {
		if conn := h.Get(headers.Connection); conn != nil {
			deleteNominated(&h.Map, conn)
		}
		h.Del(headers.Connection)
		h.Del(headers.KeepAlive)
		h.Del(headers.ProxyConnection)
		h.Del(headers.TransferEncoding)
		if !upgrade {
			h.Del(headers.Upgrade)
		}
	}
	if upgrade {
		h.Set(headers.Connection, "upgrade")
	}
	h.SetRef("date", m.date.get(time.Now()))
	switch m.serverHeader {
	case serverOverwrite:
		h.Set(headers.Server, m.serverName)
	case serverAppendIfAbsent:
		if !h.Has(headers.Server) {
			h.Set(headers.Server, m.serverName)
		}
	}
}
