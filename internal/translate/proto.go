package translate

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Type URLs of the resources, the keys of Resources.Versions.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// Envoy's extension names, as Istio writes them (pkg/wellknown).
const (
	hcmFilterName    = "envoy.filters.network.http_connection_manager"
	tcpProxyName     = "envoy.filters.network.tcp_proxy"
	routerFilterName = "envoy.filters.http.router"
	tlsInspectorName = "envoy.filters.listener.tls_inspector"
	httpOptionsName  = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

type anyMsg = anypb.Any

// deterministic marshals maps in key order, so that equal resources have
// equal bytes (and equal versions).
var deterministic = proto.MarshalOptions{Deterministic: true}

// mustAny packs m. Marshalling a message built here cannot fail; a failure
// is a bug and panics.
func mustAny(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, deterministic); err != nil {
		panic(fmt.Sprintf("translate: packing %T: %v", m, err))
	}
	return a
}

// zeroDuration is Istio's "no timeout".
var zeroDuration = durationpb.New(0)

// socketAddress returns an address for host (an IP or a DNS name) and port.
func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// adsSource is the config source of every dynamic resource: the ADS stream
// the resource came on, API v3.
func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

// clusterName is Istio's subset key: "outbound|PORT|SUBSET|HOST".
func clusterName(direction string, port uint32, subset, host string) string {
	return direction + "|" + strconv.FormatUint(uint64(port), 10) + "|" + subset + "|" + host
}

// outboundCluster is clusterName("outbound", ...).
func outboundCluster(port uint32, subset, host string) string {
	return clusterName("outbound", port, subset, host)
}

// inboundCluster is Istio's inbound cluster name, "inbound|PORT||".
func inboundCluster(port uint32) string { return clusterName("inbound", port, "", "") }

// listenerName is Istio's "ADDRESS_PORT".
func listenerName(addr string, port uint32) string {
	return addr + "_" + strconv.FormatUint(uint64(port), 10)
}

// hostPort joins a host and a port ("host:port"; IPv6 in brackets).
func hostPort(host string, port uint32) string {
	return ipv6Compliant(host) + ":" + strconv.FormatUint(uint64(port), 10)
}

// ipv6Compliant brackets IPv6 addresses, as Istio's util.IPv6Compliant.
func ipv6Compliant(host string) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		return "[" + host + "]"
	}
	return host
}

// cidr parses an address or CIDR ("10.0.0.1", "10.0.0.0/24") into a
// CidrRange; ok is false when it is neither.
func cidr(s string) (*corev3.CidrRange, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}, true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return nil, false
	}
	return &corev3.CidrRange{AddressPrefix: a.String(), PrefixLen: wrapperspb.UInt32(uint32(a.BitLen()))}, true
}
