package istiostats

import (
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/network"
)

var (
	_ httpfilter.Filter         = (*HTTPFilter)(nil)
	_ httpfilter.StreamObserver = (*HTTPFilter)(nil)
)

var (
	mxHeaderName   = []byte(headerPeerMetadata)
	mxIDHeaderName = []byte(headerPeerMetadataID)
)

// HTTPFilter is the istio.stats HTTP filter of one connection manager.
type HTTPFilter struct {
	rec      *Recorder
	reporter Reporter
	// hostFallback is !disable_host_header_fallback.
	hostFallback bool
}

// DecodeHeaders handles the metadata exchange headers. Destination side:
// the source is identified (the headers checked against the peer
// certificate) and the headers removed, so that the application never
// sees them. Source side: headers the application sent are removed and
// the proxy's own are added (Istio's peer_metadata filter).
func (f *HTTPFilter) DecodeHeaders(s *httpfilter.Stream) httpfilter.Status {
	r := &s.Req
	if f.reporter == Destination {
		s.Info.DownstreamPeer = f.rec.inbound.identify(s.Conn, r.Get(headerPeerMetadata))
		r.Del(headerPeerMetadata)
		r.Del(headerPeerMetadataID)
		return httpfilter.Continue
	}
	r.Del(headerPeerMetadata)
	r.Del(headerPeerMetadataID)
	r.AddRef(mxIDHeaderName, f.rec.mxID)
	r.AddRef(mxHeaderName, f.rec.mxValue)
	return httpfilter.Continue
}

// OnStreamDone records the stream's metrics: one series lookup (no
// allocation once the label set is known) and a few atomic adds.
func (f *HTTPFilter) OnStreamDone(s *httpfilter.Stream) {
	k := seriesKey{code: int32(s.Info.ResponseCode), grpc: -1, flags: s.Info.Flags, proto: protoHTTP}
	if s.GRPC {
		k.proto = protoGRPC
		k.grpc = grpcStatus(s)
	}
	k.svc = f.rec.serviceOf(s.Info.UpstreamCluster, s.Info.UpstreamClusterMetadata, s.Req.Authority, f.hostFallback)
	if f.reporter == Destination {
		peer, _ := s.Info.DownstreamPeer.(*Workload)
		if peer == nil { // answered before the filter ran
			peer = f.rec.inbound.identify(s.Conn, s.Req.Get(headerPeerMetadata))
		}
		k.peer = peer
		k.local, k.sec = localSecurity(s.Conn)
	} else {
		k.peer = f.rec.endpointPeer(s.Info.UpstreamHostMetadata)
		k.local, k.remote = s.Info.UpstreamLocalPrincipal, s.Info.UpstreamPeerPrincipal
	}
	ser := f.rec.httpSeries(f.reporter, k)
	ser.requests.Inc()
	ser.duration.Record(float64(s.Info.Duration) / float64(time.Millisecond))
	ser.reqBytes.Record(float64(s.Info.BytesReceived))
	ser.respBytes.Record(float64(s.Info.BytesSent))
	if ser.reqMsgs != nil {
		// The messages the connection manager counted on the bodies
		// (Envoy's grpc_stats filter state, which Istio reports).
		ser.reqMsgs.Add(s.Info.RequestMessages.Count())
		ser.respMsgs.Add(s.Info.ResponseMessages.Count())
	}
}

// localSecurity returns the proxy's principal on c and the
// connection_security_policy: mutual_tls when both sides presented a
// certificate (Istio: peer and local SAN both known), else none.
func localSecurity(c *network.Conn) (string, security) {
	if c == nil || c.TLS == nil || len(c.LocalURIs) == 0 {
		return "", secNone
	}
	local := c.LocalURIs[0]
	if peerURI(c) == nil {
		return local, secNone
	}
	return local, secMutualTLS
}

// grpcStatus returns the grpc-status of the response (trailers, or a
// trailers-only response's headers), or -1.
func grpcStatus(s *httpfilter.Stream) int32 {
	v := s.RespTrailers.Get(headers.GRPCStatus)
	if v == nil {
		v = s.Resp.Get(headers.GRPCStatus)
	}
	if len(v) == 0 {
		return -1
	}
	n := int32(0)
	for _, c := range v {
		if c < '0' || c > '9' || n > 1000 {
			return -1
		}
		n = n*10 + int32(c-'0')
	}
	return n
}
