package hcm

import (
	"math/rand/v2"
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
// x-envoy-external-address, and x-request-id.
func (m *Manager) mutateRequestHeaders(s *httpfilter.Stream) {
	r := &s.Req
	remote := s.Conn.Remote.Addr()
	xff := r.Get(headers.XForwardedFor)
	var client netip.Addr
	if m.useRemoteAddress {
		client = remote
		if m.xffTrustedHops > 0 {
			if a, ok := xffFromRight(xff, m.xffTrustedHops); ok {
				client = a
			}
		}
		if !m.skipXFFAppend {
			var buf [64]byte
			r.AppendValue(headers.XForwardedFor, ",", remote.AppendTo(buf[:0]))
		}
		r.SetBytes(headers.XForwardedProto, r.Scheme)
	} else {
		client = remote
		if a, ok := xffFromRight(xff, m.xffTrustedHops+1); ok {
			client = a
		}
		if !r.Has(headers.XForwardedProto) {
			r.SetBytes(headers.XForwardedProto, r.Scheme)
		}
	}
	if client != remote {
		s.Info.DownstreamRemote = netip.AddrPortFrom(client, 0)
	}
	internal := isInternal(client)
	external := m.useRemoteAddress && !internal
	if m.useRemoteAddress {
		if internal {
			r.Set(headers.XEnvoyInternal, "true")
		} else {
			cleanInternalHeaders(&r.Map)
			var buf [64]byte
			r.SetBytes(headers.XEnvoyExternal, client.AppendTo(buf[:0]))
		}
	}
	if m.generateRequestID {
		if id := r.Get(headers.XRequestID); id == nil || external && !m.preserveExternalID {
			r.SetRef(headers.XRequestID, appendUUID(r.Alloc(36)[:0]))
		}
	}
}

// xffFromRight returns the n-th address (1-based) from the right end of an
// x-forwarded-for value.
func xffFromRight(xff []byte, n int) (netip.Addr, bool) {
	if len(xff) == 0 || n <= 0 {
		return netip.Addr{}, false
	}
	end := len(xff)
	for i := len(xff) - 1; i >= -1; i-- {
		if i >= 0 && xff[i] != ',' {
			continue
		}
		n--
		if n == 0 {
			a, err := netip.ParseAddr(string(headers.TrimOWS(xff[i+1 : end])))
			return a.Unmap(), err == nil
		}
		end = i
	}
	return netip.Addr{}, false
}

// isInternal applies Envoy's default internal address ranges: RFC 1918,
// loopback, link-local and IPv6 unique local addresses.
func isInternal(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast()
}

// cleanInternalHeaders removes the x-envoy-* request headers that only
// internal callers may set (Envoy does this for external requests).
func cleanInternalHeaders(h *headers.Map) {
	for _, n := range internalOnlyHeaders {
		h.Del(n)
	}
}

var internalOnlyHeaders = []string{
	"x-envoy-decorator-operation", "x-envoy-downstream-service-cluster",
	"x-envoy-downstream-service-node", "x-envoy-expected-rq-timeout-ms",
	"x-envoy-external-address", "x-envoy-force-trace", "x-envoy-internal",
	"x-envoy-ip-tags", "x-envoy-max-retries", "x-envoy-retry-grpc-on",
	"x-envoy-retry-on", "x-envoy-upstream-alt-stat-name",
	"x-envoy-upstream-rq-per-try-timeout-ms", "x-envoy-upstream-rq-timeout-alt-response",
	"x-envoy-upstream-rq-timeout-ms", "x-envoy-hedge-on-per-try-timeout",
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
