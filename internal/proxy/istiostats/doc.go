// Package istiostats is the istio.stats filter of weft-proxy: Istio's
// standard metrics (https://istio.io/latest/docs/reference/config/metrics/)
// with Istio's names, types, buckets and labels, recorded by an HTTP filter
// at the end of each stream and by a network filter before tcp_proxy, as
// istio/proxy's stats plugin (source/extensions/filters/http/istio_stats)
// records them:
//
//	istio_requests_total                 counter
//	istio_request_duration_milliseconds  histogram (Envoy's default buckets, as Istio's bootstrap)
//	istio_request_bytes                  histogram
//	istio_response_bytes                 histogram
//	istio_request_messages_total         counter (gRPC)
//	istio_response_messages_total        counter (gRPC)
//	istio_tcp_connections_opened_total   counter
//	istio_tcp_connections_closed_total   counter
//	istio_tcp_sent_bytes_total           counter
//	istio_tcp_received_bytes_total       counter
//
// The metrics live in the proxy's stats store under the custom stat
// namespace "istiocustom", so /stats shows them with dotted names and
// /stats/prometheus as istio_* families, as Envoy does.
//
// Labels come from three places. The proxy's own workload comes from its
// bootstrap node metadata (WORKLOAD_NAME, NAMESPACE, LABELS, CLUSTER_ID).
// On the destination side (reporter="destination", inbound), the source's
// principal and namespace come from the mTLS peer certificate, and its other
// labels from Istio's metadata exchange headers (x-envoy-peer-metadata,
// x-envoy-peer-metadata-id) that the client sidecar adds; they are believed
// only when their namespace and service account are the certificate's, and
// are always removed before the request reaches the application. On the
// source side (reporter="source", outbound and gateways), the destination's
// labels come from the upstream host's EDS metadata (filter_metadata.istio
// .workload, "name;namespace;canonical-service;canonical-revision;cluster")
// and destination_service from the cluster's metadata
// (filter_metadata.istio.services) or the Host header; source_principal
// and destination_principal come from the certificates the upstream
// connection's TLS handshake exchanged (Istio's
// upstream.uri_san_local_certificate and uri_san_peer_certificate,
// computed once per pooled connection: "unknown" and the endpoint
// metadata's principal on a plaintext connection). On the destination
// side, destination_service is the first of the inbound cluster's
// istio.services (weft-control lists the services the port serves, as
// Istio does), else the Host header.
//
// gRPC streams also count istio_request_messages_total and
// istio_response_messages_total: the connection manager counts the
// length-prefixed messages of the request body it reads and of the
// response body it writes (streaminfo.MessageCounter, Envoy's
// grpc_stats FrameInspector, without copying), and the filter adds the
// counts when the stream ends.
//
// TCP connections (the network filter) are identified like HTTP streams
// without the metadata exchange: on the destination side the source's
// principal and namespace come from its certificate, its other labels are
// "unknown" (Istio's TCP metadata exchange over ALPN
// "istio-peer-exchange" is not implemented).
//
// Recording is off the allocation path: label sets (series) are built once
// per (peer, service, response code, flags, ...) and cached in
// copy-on-write maps read without locks; recording is a few atomic adds.
package istiostats

// Metric names (Istio's).
const (
	RequestsTotal          = "istio_requests_total"
	RequestDuration        = "istio_request_duration_milliseconds"
	RequestBytes           = "istio_request_bytes"
	ResponseBytes          = "istio_response_bytes"
	RequestMessagesTotal   = "istio_request_messages_total"
	ResponseMessagesTotal  = "istio_response_messages_total"
	TCPOpenedTotal         = "istio_tcp_connections_opened_total"
	TCPClosedTotal         = "istio_tcp_connections_closed_total"
	TCPSentBytesTotal      = "istio_tcp_sent_bytes_total"
	TCPReceivedBytesTotal  = "istio_tcp_received_bytes_total"
	statNamespace          = "istiocustom"
	unknown                = "unknown"
	latest                 = "latest"
	headerPeerMetadata     = "x-envoy-peer-metadata"
	headerPeerMetadataID   = "x-envoy-peer-metadata-id"
	canonicalNameLabel     = "service.istio.io/canonical-name"
	canonicalRevisionLabel = "service.istio.io/canonical-revision"
)
