package translate

import (
	"cmp"
	"slices"
	"strings"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/model"
)

// Istio's standard metrics: the istio.stats filter, and the metadata it
// reads to label requests (internal/proxy/istiostats).
//
//   - HTTP connection managers (outbound, inbound, gateway) get the
//     istio.stats HTTP filter last before the router; tcp_proxy chains get
//     the istio.stats network filter right before tcp_proxy. The reporter
//     is left UNSPECIFIED: the proxy infers it from the listener's
//     traffic_direction (INBOUND: "destination", OUTBOUND: "source"), as
//     Istio does.
//   - Istio's configuration type, stats.PluginConfig, has no Go type in
//     go-control-plane: it is sent in a TypedStruct with that type_url, the
//     way Envoy accepts any extension's configuration.
//   - EDS endpoints carry filter_metadata.istio.workload
//     ("name;namespace;canonical-service;canonical-revision;cluster", as
//     Istio's endpoint builder writes it) plus app and version (weft's
//     additions: Istio's endpoint encoding has none), and outbound clusters
//     filter_metadata.istio.services [{host, name, namespace}], as Istio's
//     cluster builder sets them, so that the client side fills
//     destination_*; inbound clusters list the services the workload
//     serves on their port, so that the server side does too.
const (
	statsFilterName  = "istio.stats"
	statsConfigType  = "type.googleapis.com/stats.PluginConfig"
	istioMetadataKey = "istio"
	// defaultClusterID is Istio's CLUSTER_ID for a single cluster, the
	// value weft-proxy sidecars report for themselves.
	defaultClusterID = "Kubernetes"
)

var statsConfigAny = mustAny(&xdstypev3.TypedStruct{TypeUrl: statsConfigType, Value: &structpb.Struct{}})

// statsHTTPFilter is the istio.stats HTTP filter.
func statsHTTPFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: statsFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: statsConfigAny}}
}

// statsNetworkFilter is the istio.stats network filter (before tcp_proxy).
func statsNetworkFilter() *listenerv3.Filter {
	return &listenerv3.Filter{Name: statsFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: statsConfigAny}}
}

// withStats returns a chain's network filters with istio.stats before a
// terminal tcp_proxy.
func withStats(filters ...*listenerv3.Filter) []*listenerv3.Filter {
	if n := len(filters); n > 0 && filters[n-1].GetName() == tcpProxyName {
		out := make([]*listenerv3.Filter, 0, n+1)
		out = append(out, filters[:n-1]...)
		return append(out, statsNetworkFilter(), filters[n-1])
	}
	return filters
}

// endpointWorkload is Istio's filter_metadata.istio.workload of an
// endpoint, with the canonical labels derived as Istio's injector derives
// them (service.istio.io/canonical-name, app.kubernetes.io/name, app, the
// workload name; service.istio.io/canonical-revision,
// app.kubernetes.io/version, version, "latest").
func endpointWorkload(ep *model.Endpoint) *structpb.Struct {
	l := ep.Labels
	canonical := firstNonEmpty(l["service.istio.io/canonical-name"], l["app.kubernetes.io/name"], l["app"], ep.WorkloadName)
	revision := firstNonEmpty(l["service.istio.io/canonical-revision"], l["app.kubernetes.io/version"], l["version"], "latest")
	f := map[string]*structpb.Value{
		"workload": structpb.NewStringValue(strings.Join([]string{ep.WorkloadName, ep.Namespace, canonical, revision, defaultClusterID}, ";")),
	}
	if v := l["app"]; v != "" {
		f["app"] = structpb.NewStringValue(v)
	}
	if v := l["version"]; v != "" {
		f["version"] = structpb.NewStringValue(v)
	}
	return &structpb.Struct{Fields: f}
}

// endpointMetadata is an endpoint's metadata: the transport socket match
// (mtls.go) and Istio's workload metadata.
func endpointMetadata(ep *model.Endpoint) *corev3.Metadata {
	md := endpointTLSMetadata(ep)
	if md == nil {
		md = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	}
	md.FilterMetadata[istioMetadataKey] = endpointWorkload(ep)
	return md
}

// clusterServiceMetadata is Istio's filter_metadata.istio.services of a
// cluster: the service of an outbound cluster, the services a workload
// serves on the port of an inbound cluster.
func clusterServiceMetadata(svcs ...*model.Service) *corev3.Metadata {
	list := make([]*structpb.Value, 0, len(svcs))
	for _, svc := range svcs {
		name, _, _ := strings.Cut(svc.Hostname, ".")
		list = append(list, structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"host":      structpb.NewStringValue(svc.Hostname),
			"name":      structpb.NewStringValue(name),
			"namespace": structpb.NewStringValue(svc.Namespace),
		}}))
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{istioMetadataKey: {Fields: map[string]*structpb.Value{
		"services": structpb.NewListValue(&structpb.ListValue{Values: list}),
	}}}}
}

// inboundServices are the services proxy p serves on port, ordered by
// host: the inbound cluster's filter_metadata.istio.services, as Istio's
// cluster builder (addTelemetryMetadata) lists every service whose target
// port is the inbound cluster's. The destination side's istio.stats reads
// destination_service from it (Istio disables the Host header fallback
// inbound), so requests from outside the mesh are labelled with the
// service too.
func (st *snapState) inboundServices(p *model.Proxy, port uint32) []*model.Service {
	var out []*model.Service
	for _, in := range st.instancesOf(p) {
		if slices.Contains(out, in.svc) {
			continue
		}
		for _, sp := range in.svc.Ports {
			if in.ep.PortFor(sp) == port {
				out = append(out, in.svc)
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b *model.Service) int {
		return cmp.Or(cmp.Compare(a.Hostname, b.Hostname), cmp.Compare(a.Namespace, b.Namespace))
	})
	return out
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
