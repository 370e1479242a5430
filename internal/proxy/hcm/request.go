package hcm

import (
	"bytes"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
)

// mutateRequestHeaders applies Envoy's request header rules
// (ConnectionManagerUtility::mutateRequestHeaders): x-forwarded-for and the
// trusted client address, x-forwarded-proto, x-envoy-internal /
// x-envoy-external-address and the internal-only headers, and x-request-id.
//
//   - use_remote_address: the trusted client address is the
//     xff_num_trusted_hops-th address from the right of the incoming XFF
//     (when N > 0 and it parses), else the peer. The peer is appended to XFF
//     (unless skip_xff_append), except that a loopback peer appends the
//     proxy's own address (Envoy's local_info address). x-forwarded-proto is
//     overwritten unless trusted hops vouch for the one received.
//   - otherwise XFF is left alone; the trusted client address is its
//     (N+1)-th address from the right (Envoy's default XFF original IP
//     detection), used for logs and to decide "internal".
//
// A request is internal only when the decision rests on a single address
// (use_remote_address without an incoming XFF, or an XFF of exactly one
// address) and that address is internal; then x-envoy-internal: true is set.
// Otherwise the x-envoy-* control headers only internal callers may send
// are removed. An edge request (not internal, with use_remote_address) gets
// x-envoy-external-address and, unless preserve_external_request_id, a new
// x-request-id.
func (m *Manager) mutateRequestHeaders(s *httpfilter.Stream) {
	r := &s.Req
	r.Del(headers.XEnvoyInternal)
	remote := s.Conn.Remote.Addr().Unmap()
	xff := r.Get(headers.XForwardedFor)
	var client netip.Addr
	trusted := false // the client address is a single, trustworthy one
	if m.useRemoteAddress {
		trusted = xff == nil
		if m.xffTrustedHops > 0 {
			client, _, _ = xffFromRight(xff, m.xffTrustedHops-1)
		}
		if !client.IsValid() {
			client = remote
		}
		if !m.skipXFFAppend {
			appended := remote
			if remote.IsLoopback() {
				appended = m.localAddr
			}
			var buf [64]byte
			r.AppendValue(headers.XForwardedFor, ",", appended.AppendTo(buf[:0]))
		}
		if m.xffTrustedHops == 0 || !r.Has(headers.XForwardedProto) {
			r.SetBytes(headers.XForwardedProto, r.Scheme)
		}
	} else {
		client, trusted, _ = xffFromRight(xff, m.xffTrustedHops)
	}
	if !r.Has(headers.XForwardedProto) {
		r.SetBytes(headers.XForwardedProto, r.Scheme)
	}
	m.mutateXFCC(s)
	internal := trusted && client.IsValid() && isInternal(client)
	if !client.IsValid() {
		client = remote
	}
	if client != remote {
		s.Info.DownstreamRemote = netip.AddrPortFrom(client, 0)
	}
	edge := !internal && m.useRemoteAddress
	if internal {
		r.Set(headers.XEnvoyInternal, "true")
	} else {
		cleanInternalHeaders(&r.Map, edge)
	}
	if edge {
		var buf [64]byte
		r.SetBytes(headers.XEnvoyExternal, client.AppendTo(buf[:0]))
	}
	if m.generateRequestID {
		if id := r.Get(headers.XRequestID); id == nil || edge && !m.preserveExternalID {
			r.SetRef(headers.XRequestID, appendUUID(r.Alloc(36)[:0]))
		}
	}
}

// xffFromRight is Envoy's Utility::getLastAddressFromXFF: it skips the last
// skip addresses of an x-forwarded-for value and parses the one before them.
// single reports that the value held exactly one address and none was
// skipped.
func xffFromRight(xff []byte, skip int) (a netip.Addr, single, ok bool) {
	if xff == nil {
		return netip.Addr{}, false, false
	}
	end := len(xff)
	for ; skip > 0; skip-- {
		i := bytes.LastIndexByte(xff[:end], ',')
		if i < 0 {
			return netip.Addr{}, false, false
		}
		end = i
	}
	v := xff[:end]
	i := bytes.LastIndexByte(v, ',')
	if i >= 0 && i+1 < len(v) {
		v = v[i+1:]
	}
	a, ok = parseAddr(headers.TrimOWS(v))
	if !ok {
		return netip.Addr{}, false, false
	}
	return a.Unmap(), i < 0 && end == len(xff), true
}

// parseAddr parses an IP address; dotted-quad IPv4, the common case, without
// allocating.
func parseAddr(b []byte) (netip.Addr, bool) {
	var ip [4]byte
	n, octet, digits := 0, 0, 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9' && digits < 3 && !(digits > 0 && octet == 0):
			octet = octet*10 + int(c-'0')
			digits++
		case c == '.' && digits > 0 && n < 3 && octet <= 255:
			ip[n] = byte(octet)
			n, octet, digits = n+1, 0, 0
		default:
			a, err := netip.ParseAddr(string(b)) // IPv6, or invalid
			return a, err == nil
		}
	}
	if n != 3 || digits == 0 || octet > 255 {
		return netip.Addr{}, false
	}
	ip[3] = byte(octet)
	return netip.AddrFrom4(ip), true
}

// isInternal applies Envoy's default internal address ranges: RFC 1918,
// loopback, link-local and IPv6 unique local addresses.
func isInternal(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast()
}

// cleanInternalHeaders removes, from a request that is not internal, the
// x-envoy-* headers only trusted callers may set (Envoy's
// ConnectionManagerUtility::cleanInternalHeaders); an edge request also
// loses the ones naming the calling service.
func cleanInternalHeaders(h *headers.Map, edge bool) {
	for _, n := range internalOnlyHeaders {
		h.Del(n)
	}
	if edge {
		for _, n := range edgeOnlyHeaders {
			h.Del(n)
		}
	}
}

var internalOnlyHeaders = []string{
	"x-envoy-retriable-status-codes", "x-envoy-retriable-header-names",
	"x-envoy-retry-on", "x-envoy-retry-grpc-on", "x-envoy-max-retries",
	"x-envoy-upstream-alt-stat-name", "x-envoy-upstream-rq-timeout-ms",
	"x-envoy-upstream-rq-per-try-timeout-ms", "x-envoy-upstream-rq-timeout-alt-response",
	"x-envoy-expected-rq-timeout-ms", "x-envoy-force-trace", "x-envoy-ip-tags",
	"x-envoy-original-url", "x-envoy-hedge-on-per-try-timeout",
}

var edgeOnlyHeaders = []string{
	"x-envoy-decorator-operation", "x-envoy-downstream-service-cluster",
	"x-envoy-downstream-service-node",
}

// localAddress is the address the proxy appends to x-forwarded-for for a
// loopback peer: like Envoy's local_info address
// (Network::Utility::getLocalAddress), the first non-loopback IPv4 address
// of the host's interfaces, else 127.0.0.1.
func localAddress() netip.Addr {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if ip = ip.Unmap(); ok && ip.Is4() && !ip.IsLoopback() {
			return ip
		}
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}

// appendUUID appends a random (version 4) UUID. math/rand/v2's top-level
// generator is the runtime's per-thread ChaCha8: unique enough for request
// ids, lock-free and allocation-free.
func appendUUID(dst []byte) []byte {
	const hex = "0123456789abcdef"
	var b [16]byte
	a, c := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		b[i], b[8+i] = byte(a>>(8*i)), byte(c>>(8*i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	for i, x := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hex[x>>4], hex[x&15])
	}
	return dst
}

// dateCache holds the date header value, formatted once per second.
type dateCache struct{ v atomic.Pointer[dateValue] }

type dateValue struct {
	sec int64
	b   []byte
}

func (d *dateCache) get(now time.Time) []byte {
	sec := now.Unix()
	if v := d.v.Load(); v != nil && v.sec == sec {
		return v.b
	}
	v := &dateValue{sec: sec, b: now.UTC().AppendFormat(nil, http.TimeFormat)}
	d.v.Store(v)
	return v.b
}
