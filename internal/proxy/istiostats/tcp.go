package istiostats

import (
	"github.com/weftmesh/weft/internal/proxy/network"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
	"github.com/weftmesh/weft/internal/proxy/tcpproxy"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

var _ tcpproxy.Observer = (*NetworkFilter)(nil)

// NetworkFilter is the istio.stats network filter before a tcp_proxy: it
// records istio_tcp_* for each relayed connection.
type NetworkFilter struct {
	rec      *Recorder
	reporter Reporter
}

// Opened implements tcpproxy.Observer: it counts the connection opened and
// returns the function that records its bytes and its close. Peers are
// identified as for HTTP, without metadata exchange: the destination side
// knows the source's principal and namespace from its certificate only.
// (Istio also reports bytes every tcp_reporting_duration while a
// connection lasts; weft-proxy reports them when it closes.)
func (f *NetworkFilter) Opened(c *network.Conn, info *streaminfo.Info, cl *upstream.Cluster, h *upstream.Host) func(received, sent int64) {
	k := seriesKey{proto: protoTCP, grpc: -1}
	k.svc = f.rec.serviceOf(cl.Name(), cl.Config().GetMetadata(), nil, false)
	if f.reporter == Destination {
		k.peer = f.rec.inbound.identify(c, nil)
		k.local, k.sec = localSecurity(c)
	} else {
		k.peer = f.rec.endpointPeer(h.Metadata())
		k.local, k.remote = info.UpstreamLocalPrincipal, info.UpstreamPeerPrincipal
	}
	ser := f.rec.tcpSeries(f.reporter, k)
	ser.opened.Inc()
	return func(received, sent int64) {
		ser.received.Add(uint64(received))
		ser.sent.Add(uint64(sent))
		ser.closed.Inc()
	}
}
