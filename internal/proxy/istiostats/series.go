package istiostats

import (
	"strconv"

	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// Reporter is the label reporter: which side of the request the proxy is.
type Reporter uint8

// Reporters, as Istio infers them from the listener direction.
const (
	// Source: a client sidecar or a gateway (outbound listeners).
	Source Reporter = iota
	// Destination: a server sidecar (inbound listeners).
	Destination
)

func (r Reporter) String() string {
	if r == Destination {
		return "destination"
	}
	return "source"
}

// protocol is the label request_protocol.
type protocol uint8

const (
	protoHTTP protocol = iota
	protoGRPC
	protoTCP
)

var protocolNames = [...]string{"http", "grpc", "tcp"}

// security is the label connection_security_policy.
type security uint8

const (
	secUnknown security = iota
	secNone
	secMutualTLS
)

var securityNames = [...]string{"unknown", "none", "mutual_tls"}

// service is what destination_service, destination_service_name say
// (empty: the reporter's default applies).
type service struct{ host, name string }

var noService = &service{}

// seriesKey is everything a label set depends on besides the proxy's own
// workload and the reporter (fixed per table). Pointers are interned by
// the caches, so a key is a handful of words compared without hashing
// strings, except local and remote.
type seriesKey struct {
	peer *Workload
	svc  *service
	// local is the proxy's principal on the connection the metrics are
	// about: the downstream one (destination side) or the upstream one
	// (source side); remote the upstream's principal (source side).
	// Both come from certificates the TLS handshake exchanged.
	local, remote string
	code          int32
	grpc          int32 // -1: no gRPC status
	flags         streaminfo.ResponseFlags
	proto         protocol
	sec           security
}

// httpSeries are the HTTP metrics of one label set.
type httpSeries struct {
	requests            *stats.Counter
	duration            *stats.Histogram
	reqBytes, respBytes *stats.Histogram
	// reqMsgs and respMsgs are the gRPC message counters, nil for
	// request_protocol "http" (Istio reports them for gRPC only).
	reqMsgs, respMsgs *stats.Counter
}

// tcpSeries are the TCP metrics of one label set.
type tcpSeries struct {
	opened, closed, sent, received *stats.Counter
}

// tags builds the labels of k for reporter r, in the order of Istio's
// stats plugin (populatePeerInfo), then the request labels.
func tags(r Reporter, self *Workload, k *seriesKey) []stats.Tag {
	src, dst := self, k.peer
	if r == Destination {
		src, dst = k.peer, self
	}
	t := make([]stats.Tag, 0, 25)
	add := func(name, value string) { t = append(t, stats.Tag{Name: name, Value: value}) }
	add("reporter", r.String())
	add("source_workload", src.Name)
	add("source_canonical_service", src.CanonicalService)
	add("source_canonical_revision", src.CanonicalRevision)
	add("source_workload_namespace", src.Namespace)
	srcPrincipal, dstPrincipal := src.Principal, dst.Principal
	if r == Destination {
		dstPrincipal = orUnknown(k.local)
	} else {
		// Istio's upstream.uri_san_local_certificate and
		// uri_san_peer_certificate; without a peer certificate the
		// endpoint's metadata (weft's addition) says who the host is.
		srcPrincipal = orUnknown(k.local)
		dstPrincipal = first(k.remote, dstPrincipal)
	}
	add("source_principal", srcPrincipal)
	add("source_app", src.App)
	add("source_version", src.Version)
	add("source_cluster", src.Cluster)
	add("destination_workload", dst.Name)
	add("destination_workload_namespace", dst.Namespace)
	add("destination_principal", dstPrincipal)
	add("destination_app", dst.App)
	add("destination_version", dst.Version)
	svcHost, svcName, svcNS := k.svc.host, k.svc.name, dst.Namespace
	if r == Destination {
		svcHost, svcName = first(svcHost, self.CanonicalService), first(svcName, self.CanonicalService)
		svcNS = self.Namespace
	} else {
		svcHost, svcName = orUnknown(svcHost), orUnknown(svcName)
	}
	add("destination_service", svcHost)
	add("destination_canonical_service", dst.CanonicalService)
	add("destination_canonical_revision", dst.CanonicalRevision)
	add("destination_service_name", svcName)
	add("destination_service_namespace", svcNS)
	add("destination_cluster", dst.Cluster)
	add("request_protocol", protocolNames[k.proto])
	if k.proto != protoTCP {
		add("response_code", strconv.Itoa(int(k.code)))
		grpc := ""
		if k.grpc >= 0 {
			grpc = strconv.Itoa(int(k.grpc))
		}
		add("grpc_response_status", grpc)
	}
	add("response_flags", k.flags.String())
	add("connection_security_policy", securityNames[k.sec])
	return t
}

// tables holds the series of one reporter.
type tables struct {
	http cowMap[seriesKey, *httpSeries]
	tcp  cowMap[seriesKey, *tcpSeries]
}

// httpSeries returns the series of k, creating its metrics on first use.
func (rec *Recorder) httpSeries(r Reporter, k seriesKey) *httpSeries {
	t := &rec.tables[r]
	if s, ok := t.http.load()[k]; ok {
		return s
	}
	return t.http.getOrAdd(k, func() *httpSeries {
		tg := tags(r, rec.self, &k)
		ser := &httpSeries{
			requests:  rec.store.CustomCounter(statNamespace, RequestsTotal, tg),
			duration:  rec.store.CustomHistogram(statNamespace, RequestDuration, tg),
			reqBytes:  rec.store.CustomHistogram(statNamespace, RequestBytes, tg),
			respBytes: rec.store.CustomHistogram(statNamespace, ResponseBytes, tg),
		}
		if k.proto == protoGRPC {
			ser.reqMsgs = rec.store.CustomCounter(statNamespace, RequestMessagesTotal, tg)
			ser.respMsgs = rec.store.CustomCounter(statNamespace, ResponseMessagesTotal, tg)
		}
		return ser
	})
}

// tcpSeries returns the TCP series of k, creating its metrics on first
// use.
func (rec *Recorder) tcpSeries(r Reporter, k seriesKey) *tcpSeries {
	t := &rec.tables[r]
	if s, ok := t.tcp.load()[k]; ok {
		return s
	}
	return t.tcp.getOrAdd(k, func() *tcpSeries {
		tg := tags(r, rec.self, &k)
		return &tcpSeries{
			opened:   rec.store.CustomCounter(statNamespace, TCPOpenedTotal, tg),
			closed:   rec.store.CustomCounter(statNamespace, TCPClosedTotal, tg),
			sent:     rec.store.CustomCounter(statNamespace, TCPSentBytesTotal, tg),
			received: rec.store.CustomCounter(statNamespace, TCPReceivedBytesTotal, tg),
		}
	})
}
