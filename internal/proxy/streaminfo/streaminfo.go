// Package streaminfo records what happened to one request or connection:
// timings, byte counts, the upstream chosen and Envoy's response flags. The
// connection manager fills it in; access logs and metrics read it when the
// stream completes.
package streaminfo

import (
	"net/netip"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// ResponseFlags is a set of Envoy response flags.
type ResponseFlags uint32

// The flags, in Envoy's order (the order %RESPONSE_FLAGS% prints them).
const (
	FailedLocalHealthCheck ResponseFlags = 1 << iota
	NoHealthyUpstream
	UpstreamRequestTimeout
	LocalReset
	UpstreamRemoteReset
	UpstreamConnectionFailure
	UpstreamConnectionTermination
	UpstreamOverflow
	NoRouteFound
	DelayInjected
	FaultInjected
	RateLimited
	UnauthorizedExternalService
	RateLimitServiceError
	DownstreamConnectionTermination
	UpstreamRetryLimitExceeded
	StreamIdleTimeout
	InvalidEnvoyRequestHeaders
	DownstreamProtocolError
	UpstreamMaxStreamDurationReached
	ResponseFromCacheFilter
	NoFilterConfigFound
	DurationTimeout
	UpstreamProtocolError
	NoClusterFound
	OverloadManager
	DNSResolutionFailed
	DropOverload
	DownstreamRemoteReset
	UnconditionalDropOverload
	numFlags = iota
)

var flagNames = [numFlags]string{
	"LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE",
	"DC", "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF",
	"DO", "DR", "UDO",
}

// String renders the flags as Envoy does: short names joined by commas, or
// "-" when none is set.
func (f ResponseFlags) String() string {
	if f == 0 {
		return "-"
	}
	var b strings.Builder
	for i := 0; i < numFlags; i++ {
		if f&(1<<i) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(flagNames[i])
	}
	return b.String()
}

// AppendTo appends the String form to dst without allocating.
func (f ResponseFlags) AppendTo(dst []byte) []byte {
	if f == 0 {
		return append(dst, '-')
	}
	first := true
	for i := 0; i < numFlags; i++ {
		if f&(1<<i) == 0 {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, flagNames[i]...)
	}
	return dst
}

// ParseFlag returns the flag for an Envoy short name such as "UH".
func ParseFlag(name string) (ResponseFlags, bool) {
	for i, n := range flagNames {
		if n == name {
			return 1 << i, true
		}
	}
	return 0, false
}

// Info is what one HTTP stream (or TCP connection) did. It is owned by the
// goroutine serving the stream and handed, read-only, to observers when the
// stream completes.
type Info struct {
	StartTime time.Time
	// Duration is the time from StartTime to the last byte sent downstream.
	Duration time.Duration
	// FirstUpstreamByte is the time from StartTime to the upstream's first
	// response byte (0 when there was no upstream response).
	FirstUpstreamByte time.Duration

	Protocol     headers.Protocol
	ResponseCode int
	Flags        ResponseFlags
	// Details says why a local reply was sent, in Envoy's words
	// (%RESPONSE_CODE_DETAILS%), for example "route_not_found".
	Details string

	BytesReceived int64 // request body bytes from downstream
	BytesSent     int64 // response body bytes to downstream
	// RequestMessages and ResponseMessages count the gRPC messages of the
	// request body read from downstream and of the response body sent to
	// it; the connection manager starts them for gRPC requests.
	RequestMessages, ResponseMessages MessageCounter

	DownstreamRemote netip.AddrPort
	DownstreamLocal  netip.AddrPort

	RouteName       string
	UpstreamCluster string
	UpstreamHost    string // host:port of the upstream endpoint
	// UpstreamHostMetadata and UpstreamClusterMetadata are the EDS
	// endpoint's and the cluster's metadata (Envoy's upstream host
	// metadata and cluster info metadata), nil when none: read-only.
	UpstreamHostMetadata    *corev3.Metadata
	UpstreamClusterMetadata *corev3.Metadata
	// UpstreamPeerPrincipal and UpstreamLocalPrincipal are the first URI
	// SANs of the certificates the upstream connection's TLS handshake
	// exchanged, the upstream's and this proxy's (Envoy's
	// %UPSTREAM_PEER_URI_SAN% and %UPSTREAM_LOCAL_URI_SAN%), "" for a
	// plaintext connection or a certificate without URI.
	UpstreamPeerPrincipal, UpstreamLocalPrincipal string
	// DownstreamPeer is the downstream workload a filter identified (the
	// istio.stats filter's verified peer; Envoy keeps it in filter state
	// as "wasm.downstream_peer"), nil when unknown. Its type belongs to
	// the filter that sets it.
	DownstreamPeer any

	// Access-log fields (internal/proxy/accesslog).

	// LastDownstreamRxByte is the time from StartTime to the request's
	// last byte received from downstream (%REQUEST_DURATION%); 0 while the
	// request is not complete.
	LastDownstreamRxByte time.Duration
	// UpstreamLocal is the local address of the upstream connection the
	// last try used (%UPSTREAM_LOCAL_ADDRESS%).
	UpstreamLocal netip.AddrPort
	// UpstreamTransportFailureReason says why the upstream connection
	// failed (%UPSTREAM_TRANSPORT_FAILURE_REASON%).
	UpstreamTransportFailureReason string
	// ConnectionTerminationDetails says why the proxy closed the
	// connection for L4 reasons (%CONNECTION_TERMINATION_DETAILS%).
	ConnectionTerminationDetails string
	// UpstreamAttempts is the number of tries sent upstream (HTTP) or
	// connect attempts (TCP): %UPSTREAM_REQUEST_ATTEMPT_COUNT%.
	UpstreamAttempts int
}

// Reset clears the record for reuse.
func (i *Info) Reset() { *i = Info{} }

// SetFlag adds f to the recorded flags.
func (i *Info) SetFlag(f ResponseFlags) { i.Flags |= f }

// MarkRequestDone records the request's last byte as received now, once.
func (i *Info) MarkRequestDone() {
	if i.LastDownstreamRxByte == 0 && !i.StartTime.IsZero() {
		i.LastDownstreamRxByte = max(time.Since(i.StartTime), 1)
	}
}
