package router

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// Vars supplies the per-stream values that header-value formats print and
// that hash policies read. The connection manager implements it; every method
// must be cheap and must not allocate. A nil Vars prints every variable as
// empty.
type Vars interface {
	// DownstreamRemoteAddr is the client address as Envoy's
	// downstreamAddressProvider().remoteAddress() reports it (the
	// x-forwarded-for address when use_remote_address trusts it).
	DownstreamRemoteAddr() netip.AddrPort
	// DownstreamLocalAddr is the local address of the downstream connection.
	DownstreamLocalAddr() netip.AddrPort
	// UpstreamRemoteAddr is the chosen upstream host's address, or the zero
	// AddrPort while no host is chosen.
	UpstreamRemoteAddr() netip.AddrPort
	// Protocol is the downstream protocol.
	Protocol() headers.Protocol
	// Hostname is the proxy's host name (%HOSTNAME%).
	Hostname() string
	// StartTime is when the stream's first byte was received.
	StartTime() time.Time
}

type segKind uint8

const (
	segLiteral segKind = iota
	segDownstreamRemote
	segDownstreamRemoteNoPort
	segDownstreamLocal
	segDownstreamLocalNoPort
	segUpstreamRemote
	segProtocol
	segReq
	segHostname
	segStartTime
)

// segment is one literal run or one %VARIABLE% of a format.
type segment struct {
	kind   segKind
	lit    []byte // segLiteral
	name   string // segReq: header name, lower case
	alt    string // segReq: alternative header (%REQ(A?B)%)
	maxLen int    // segReq: :N truncation, 0 for none
}

// format is a compiled header value with Envoy's substitution-format
// variables. A value without variables is kept as one literal.
type format struct {
	literal []byte    // the whole value when segs is nil
	segs    []segment // nil for a plain literal
}

var commands = map[string]segKind{
	"DOWNSTREAM_REMOTE_ADDRESS":              segDownstreamRemote,
	"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": segDownstreamRemoteNoPort,
	"DOWNSTREAM_LOCAL_ADDRESS":               segDownstreamLocal,
	"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":  segDownstreamLocalNoPort,
	"UPSTREAM_REMOTE_ADDRESS":                segUpstreamRemote,
	"PROTOCOL":                               segProtocol,
	"REQ":                                    segReq,
	"HOSTNAME":                               segHostname,
	"START_TIME":                             segStartTime,
}

// parseFormat compiles a header value. The syntax is Envoy's substitution
// format as header values use it: "%%" is a literal '%', and a command is
// %NAME%, %NAME(args)% or %NAME(args):N% with NAME made of A-Z, 0-9 and '_'.
// A '%' that starts no valid command, and any command weft-proxy does not
// implement, is an error.
func parseFormat(v, path string) (format, error) {
	if !bytes.ContainsRune([]byte(v), '%') {
		return format{literal: []byte(v)}, nil
	}
	var f format
	var lit []byte
	for i := 0; i < len(v); {
		if v[i] != '%' {
			lit = append(lit, v[i])
			i++
			continue
		}
		if i+1 < len(v) && v[i+1] == '%' {
			lit = append(lit, '%')
			i += 2
			continue
		}
		seg, n, err := parseCommand(v[i:], path, i)
		if err != nil {
			return format{}, err
		}
		if len(lit) > 0 {
			f.segs = append(f.segs, segment{kind: segLiteral, lit: lit})
			lit = nil
		}
		f.segs = append(f.segs, seg)
		i += n
	}
	if len(lit) > 0 {
		f.segs = append(f.segs, segment{kind: segLiteral, lit: lit})
	}
	if len(f.segs) == 1 && f.segs[0].kind == segLiteral {
		return format{literal: f.segs[0].lit}, nil
	}
	return f, nil
}

// parseCommand parses the command at the start of s (s[0] == '%') and
// returns it with the number of bytes it spans.
func parseCommand(s, path string, pos int) (segment, int, error) {
	i := 1
	for i < len(s) && (s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9' || s[i] == '_') {
		i++
	}
	name := s[1:i]
	var args string
	hasArgs := false
	if i < len(s) && s[i] == '(' {
		end := bytes.IndexByte([]byte(s[i:]), ')')
		if end < 0 {
			return segment{}, 0, errAt(path, "unterminated '(' in variable at position %d", pos)
		}
		args, hasArgs = s[i+1:i+end], true
		i += end + 1
	}
	maxLen := 0
	if i < len(s) && s[i] == ':' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(s[i+1 : j])
		if err != nil || n <= 0 {
			return segment{}, 0, errAt(path, "invalid length after ':' in variable at position %d", pos)
		}
		maxLen, i = n, j
	}
	if name == "" || i >= len(s) || s[i] != '%' {
		return segment{}, 0, errAt(path, "no valid %%VARIABLE%% at position %d; write %%%% for a literal '%%'", pos)
	}
	kind, ok := commands[name]
	if !ok {
		return segment{}, 0, errAt(path, "variable %%%s%% is not supported by weft-proxy", name)
	}
	seg := segment{kind: kind}
	switch {
	case kind == segReq:
		if err := parseReqArgs(&seg, args, hasArgs, maxLen); err != nil {
			return segment{}, 0, errAt(path, "%%REQ%%: %v", err)
		}
	case hasArgs || maxLen != 0:
		return segment{}, 0, errAt(path, "variable %%%s%% takes no arguments or length here", name)
	}
	return seg, i + 1, nil
}

func parseReqArgs(seg *segment, args string, hasArgs bool, maxLen int) error {
	if !hasArgs || args == "" {
		return fmt.Errorf("a header name is required, as in %%REQ(x-foo)%%")
	}
	name, alt := args, ""
	if i := bytes.IndexByte([]byte(args), '?'); i >= 0 {
		name, alt = args[:i], args[i+1:]
		if name == "" || alt == "" {
			return fmt.Errorf("both names are required in %%REQ(a?b)%%")
		}
	}
	seg.name = string(bytes.ToLower([]byte(name)))
	seg.alt = string(bytes.ToLower([]byte(alt)))
	seg.maxLen = maxLen
	return nil
}

// appendFormat appends the formatted value to dst. req may be nil (no
// request headers known). Values that are not available print as empty, as
// Envoy's header formatter does (it omits empty values rather than printing
// "-").
func (f *format) appendFormat(dst []byte, req *headers.Request, vars Vars) []byte {
	if f.segs == nil {
		return append(dst, f.literal...)
	}
	for i := range f.segs {
		dst = f.segs[i].appendTo(dst, req, vars)
	}
	return dst
}

func (s *segment) appendTo(dst []byte, req *headers.Request, vars Vars) []byte {
	if s.kind == segLiteral {
		return append(dst, s.lit...)
	}
	if s.kind == segReq {
		return s.appendReq(dst, req)
	}
	if vars == nil {
		return dst
	}
	switch s.kind {
	case segDownstreamRemote:
		return appendAddrPort(dst, vars.DownstreamRemoteAddr(), true)
	case segDownstreamRemoteNoPort:
		return appendAddrPort(dst, vars.DownstreamRemoteAddr(), false)
	case segDownstreamLocal:
		return appendAddrPort(dst, vars.DownstreamLocalAddr(), true)
	case segDownstreamLocalNoPort:
		return appendAddrPort(dst, vars.DownstreamLocalAddr(), false)
	case segUpstreamRemote:
		return appendAddrPort(dst, vars.UpstreamRemoteAddr(), true)
	case segProtocol:
		if p := vars.Protocol(); p != 0 {
			return append(dst, p.String()...)
		}
	case segHostname:
		return append(dst, vars.Hostname()...)
	case segStartTime:
		if t := vars.StartTime(); !t.IsZero() {
			// Envoy's default START_TIME format: %Y-%m-%dT%H:%M:%E3SZ in UTC.
			return t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
		}
	}
	return dst
}

// appendReq prints the first value of the request header (Envoy's %REQ%),
// falling back to the alternative header, truncated to maxLen.
func (s *segment) appendReq(dst []byte, req *headers.Request) []byte {
	if req == nil {
		return dst
	}
	v, ok := lookupRequest(req, s.name)
	if !ok && s.alt != "" {
		v, _ = lookupRequest(req, s.alt)
	}
	if s.maxLen > 0 && len(v) > s.maxLen {
		v = v[:s.maxLen]
	}
	return append(dst, v...)
}

// appendAddrPort prints an address as Envoy does: "1.2.3.4:80", "[::1]:80",
// or without the port "1.2.3.4", "::1". IPv4-mapped IPv6 addresses print as
// IPv4, as Envoy converts them. An invalid address prints nothing.
func appendAddrPort(dst []byte, ap netip.AddrPort, withPort bool) []byte {
	if !ap.IsValid() {
		return dst
	}
	a := ap.Addr().Unmap()
	if !withPort {
		return a.AppendTo(dst)
	}
	return netip.AddrPortFrom(a, ap.Port()).AppendTo(dst)
}
