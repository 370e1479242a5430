package translate

import (
	"sort"
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
//     destination_*. Inbound clusters list the services the port serves
//     (inboundServices), as Istio's inbound clusters do.
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
// cluster: one {host, name, namespace} per service, in the order given
// (nil without services).
func clusterServiceMetadata(svcs ...*model.Service) *corev3.Metadata {
	if len(svcs) == 0 {
		return nil
	}
	list := make([]*structpb.Value, len(svcs))
	for i, svc := range svcs {
		name, _, _ := strings.Cut(svc.Hostname, ".")
		list[i] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"host":      structpb.NewStringValue(svc.Hostname),
			"name":      structpb.NewStringValue(name),
			"namespace": structpb.NewStringValue(svc.Namespace),
		}})
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{istioMetadataKey: {Fields: map[string]*structpb.Value{
		"services": structpb.NewListValue(&structpb.ListValue{Values: list}),
	}}}}
}

// inboundServices returns the services whose endpoints among instances
// (the proxy's own) receive traffic on port, once each, sorted by
// hostname: Istio's inbound clusters list them in filter_metadata.istio
// .services, so that the destination reporter's destination_service is
// the first one's FQDN rather than the Host header.
func inboundServices(instances []instance, port uint32) []*model.Service {
	var out []*model.Service
	seen := map[*model.Service]bool{}
	for _, in := range instances {
		for _, sp := range in.svc.Ports {
			if in.ep.PortFor(sp) == port && !seen[in.svc] {
				seen[in.svc] = true
				out = append(out, in.svc)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hostname < out[j].Hostname })
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
