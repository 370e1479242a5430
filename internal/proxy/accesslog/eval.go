package accesslog

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/network"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// Entry is what one access log line is made of: a completed HTTP stream
// or a closed TCP connection. Every pointer may be nil except Info. An
// Entry is only read, and only during Log: loggers keep nothing of it.
type Entry struct {
	Info *streaminfo.Info
	// Req, Resp and Trailers are the HTTP request headers, the response
	// headers sent downstream and the response trailers (nil for TCP).
	Req      *headers.Request
	Resp     *headers.Response
	Trailers *headers.Map
	// Conn is the downstream connection (addresses, SNI, TLS).
	Conn *network.Conn
	// TCP marks a TCP proxy connection: the HTTP-only operators print "-"
	// (Envoy: "Not implemented" for TCP).
	TCP bool
}

// valKind is what evaluating a command produced.
type valKind uint8

const (
	valNone   valKind = iota // not available: "-", null or omitted
	valString                // text appended
	valNumber                // a decimal integer appended
)

// eval appends the command's value to dst and says what it is. Nothing is
// appended for valNone. Truncation (:Z) applies to strings.
func (c *command) eval(dst []byte, e *Entry) ([]byte, valKind) {
	start := len(dst)
	dst, k := c.evalRaw(dst, e)
	if k == valString {
		if len(dst) == start {
			return dst, valNone // Envoy prints an empty value as "-"
		}
		if c.maxLen > 0 && len(dst)-start > c.maxLen {
			dst = dst[:start+c.maxLen]
		}
	}
	return dst, k
}

func (c *command) evalRaw(dst []byte, e *Entry) ([]byte, valKind) {
	in := e.Info
	switch c.op {
	case opStartTime:
		if in.StartTime.IsZero() {
			return dst, valNone
		}
		return c.time.appendTime(dst, in.StartTime), valString
	case opReq, opResp, opTrailer:
		return c.header(dst, e)
	case opResponseCode:
		if e.TCP {
			return dst, valNone
		}
		return strconv.AppendInt(dst, int64(in.ResponseCode), 10), valNumber
	case opResponseFlags:
		return in.Flags.AppendTo(dst), valString
	case opResponseCodeDetails:
		return appendDetails(dst, e), valString
	case opConnTerminationDetails:
		return append(dst, in.ConnectionTerminationDetails...), valString
	case opBytesReceived:
		return strconv.AppendInt(dst, in.BytesReceived, 10), valNumber
	case opBytesSent:
		return strconv.AppendInt(dst, in.BytesSent, 10), valNumber
	case opUpstreamAttemptCount:
		return strconv.AppendInt(dst, int64(in.UpstreamAttempts), 10), valNumber
	case opDuration, opRequestDuration, opResponseDuration, opResponseTxDuration:
		return c.duration(dst, e)
	case opUpstreamHost, opUpstreamRemote:
		return append(dst, in.UpstreamHost...), valString
	case opUpstreamRemoteNoPort, opUpstreamRemotePort:
		ap, err := netip.ParseAddrPort(in.UpstreamHost)
		if err != nil {
			return dst, valNone
		}
		return appendAddr(dst, ap, c.op == opUpstreamRemotePort)
	case opUpstreamCluster:
		return append(dst, in.UpstreamCluster...), valString
	case opUpstreamTransportFailure:
		return append(dst, in.UpstreamTransportFailureReason...), valString
	case opRouteName:
		return append(dst, in.RouteName...), valString
	case opProtocol:
		if e.TCP || in.Protocol == 0 {
			return dst, valNone
		}
		return append(dst, in.Protocol.String()...), valString
	}
	return c.connection(dst, e)
}

// connection evaluates the operators about the downstream and upstream
// connections' addresses and TLS.
func (c *command) connection(dst []byte, e *Entry) ([]byte, valKind) {
	in := e.Info
	switch c.op {
	case opUpstreamLocal:
		return appendAddrPort(dst, in.UpstreamLocal)
	case opUpstreamLocalNoPort, opUpstreamLocalPort:
		return appendAddr(dst, in.UpstreamLocal, c.op == opUpstreamLocalPort)
	case opDownstreamRemote:
		return appendAddrPort(dst, in.DownstreamRemote)
	case opDownstreamRemoteNoPort, opDownstreamRemotePort:
		return appendAddr(dst, in.DownstreamRemote, c.op == opDownstreamRemotePort)
	case opDownstreamLocal:
		return appendAddrPort(dst, in.DownstreamLocal)
	case opDownstreamLocalNoPort, opDownstreamLocalPort:
		return appendAddr(dst, in.DownstreamLocal, c.op == opDownstreamLocalPort)
	}
	conn := e.Conn
	if conn == nil {
		return dst, valNone
	}
	switch c.op {
	case opDownstreamDirectRemote:
		return appendAddrPort(dst, conn.Remote)
	case opDownstreamDirectRemoteNoPort:
		return appendAddr(dst, conn.Remote, false)
	case opRequestedServerName:
		return append(dst, conn.ServerName...), valString
	case opDownstreamLocalURISAN:
		return appendJoined(dst, conn.LocalURIs), valString
	case opDownstreamPeerURISAN:
		if conn.TLS == nil || len(conn.TLS.PeerCertificates) == 0 {
			return dst, valNone
		}
		for i, u := range conn.TLS.PeerCertificates[0].URIs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst, _ = u.AppendBinary(dst)
		}
		return dst, valString
	}
	return dst, valNone
}

// appendDetails prints %RESPONSE_CODE_DETAILS%: the local reply's reason,
// or Envoy's "via_upstream" for a response the upstream sent.
func appendDetails(dst []byte, e *Entry) []byte {
	in := e.Info
	switch {
	case in.Details != "":
		return append(dst, in.Details...)
	case !e.TCP && in.FirstUpstreamByte > 0 && in.ResponseCode != 0:
		return append(dst, "via_upstream"...)
	}
	return dst
}

// header evaluates %REQ%, %RESP% and %TRAILER%: the first value of header
// name, else of alt.
func (c *command) header(dst []byte, e *Entry) ([]byte, valKind) {
	var v []byte
	var ok bool
	switch c.op {
	case opReq:
		if e.Req == nil {
			return dst, valNone
		}
		if v, ok = e.Req.Lookup(c.name); !ok && c.alt != "" {
			v, ok = e.Req.Lookup(c.alt)
		}
	case opResp:
		if e.Resp == nil {
			return dst, valNone
		}
		if v, ok = e.Resp.Lookup(c.name); !ok && c.alt != "" {
			v, ok = e.Resp.Lookup(c.alt)
		}
	case opTrailer:
		if e.Trailers == nil {
			return dst, valNone
		}
		if v, ok = e.Trailers.Lookup(c.name); !ok && c.alt != "" {
			v, ok = e.Trailers.Lookup(c.alt)
		}
	}
	if !ok {
		return dst, valNone
	}
	return append(dst, v...), valString
}

// duration evaluates the duration operators, in whole milliseconds
// (Envoy truncates to milliseconds).
func (c *command) duration(dst []byte, e *Entry) ([]byte, valKind) {
	in := e.Info
	var d time.Duration
	switch c.op {
	case opDuration:
		d = in.Duration
	case opRequestDuration:
		if e.TCP || in.LastDownstreamRxByte == 0 {
			return dst, valNone
		}
		d = in.LastDownstreamRxByte
	case opResponseDuration:
		if e.TCP || in.FirstUpstreamByte == 0 {
			return dst, valNone
		}
		d = in.FirstUpstreamByte
	case opResponseTxDuration:
		if e.TCP || in.FirstUpstreamByte == 0 || in.Duration < in.FirstUpstreamByte {
			return dst, valNone
		}
		d = in.Duration - in.FirstUpstreamByte
	}
	return strconv.AppendInt(dst, d.Milliseconds(), 10), valNumber
}

// appendAddrPort prints an address as Envoy does: "1.2.3.4:80",
// "[::1]:80"; IPv4-mapped IPv6 addresses print as IPv4.
func appendAddrPort(dst []byte, ap netip.AddrPort) ([]byte, valKind) {
	if !ap.IsValid() {
		return dst, valNone
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).AppendTo(dst), valString
}

// appendAddr prints the address without its port ("::1", not "[::1]"),
// or only the port (a number).
func appendAddr(dst []byte, ap netip.AddrPort, port bool) ([]byte, valKind) {
	if !ap.IsValid() {
		return dst, valNone
	}
	if port {
		return strconv.AppendUint(dst, uint64(ap.Port()), 10), valNumber
	}
	return ap.Addr().Unmap().AppendTo(dst), valString
}

func appendJoined(dst []byte, vs []string) []byte {
	for i, v := range vs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, v...)
	}
	return dst
}
