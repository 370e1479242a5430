package translate

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	mesh "istio.io/api/mesh/v1alpha1"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// Tracing follows Istio (pilot/pkg/networking/core/tracing.go and
// pilot/pkg/model/telemetry.go):
//
//   - Telemetry tracing applies root namespace → namespace → workload
//     (a Telemetry with a selector matching the proxy, in its namespace);
//     each level's entries whose match.mode covers the listener's side
//     (CLIENT: outbound, SERVER: inbound and gateways) override providers,
//     randomSamplingPercentage and disableSpanReporting, and add or
//     replace customTags by name.
//   - Without providers the mesh's defaultProviders.tracing apply; only the
//     first provider is used (as Istio). Without Telemetry tracing, tracing
//     is on when enableTracing is and a default provider exists.
//   - The sampling is randomSamplingPercentage, else
//     defaultConfig.tracing.sampling (0 or unset: Istio's 1 %);
//     disableSpanReporting keeps propagation and request ids but samples
//     nothing.
//   - The collector cluster is Istio's outbound|PORT||SERVICE: the mesh
//     service's cluster when the proxy sees that service, else a dedicated
//     cluster to SERVICE:PORT (STATIC for an IP, STRICT_DNS for a name),
//     so a collector at 127.0.0.1:4317 works without a ServiceEntry.

// defaultCollectorTimeout bounds an OTLP/HTTP export (Istio sets none;
// Envoy requires http_uri.timeout).
const defaultCollectorTimeout = 2 * time.Second

// traceSide is the side of the proxy a connection manager serves.
type traceSide uint8

const (
	traceClient traceSide = iota // outbound listeners
	traceServer                  // inbound listeners, gateways
)

// traceEntry is one Telemetry with its spec, for selection.
type traceEntry struct {
	obj  *config.Object
	spec *telemetry.Telemetry
}

// addTelemetry registers the workload selectors of Telemetry objects, so
// that proxies they select get their own scope.
func (idx *index) addTelemetry(s *model.Snapshot) {
	for _, obj := range s.List(config.Telemetry) {
		spec, ok := obj.Spec.(*telemetry.Telemetry)
		if !ok || len(spec.GetTracing()) == 0 {
			continue
		}
		if sel := spec.GetSelector().GetMatchLabels(); len(sel) > 0 {
			idx.addSelector(spec, obj.Namespace, sel)
		}
	}
}

// telemetryLevels returns the Telemetry objects that apply to the scope,
// root namespace first, then namespace, then workload (the first of each
// level by namespace and name, as the snapshot sorts them).
func (s *scope) telemetryLevels() []traceEntry {
	var root, ns, wl *traceEntry
	rootNs := s.idx.snap.RootNamespace
	for _, obj := range s.idx.snap.List(config.Telemetry) {
		spec, ok := obj.Spec.(*telemetry.Telemetry)
		if !ok || len(spec.GetTracing()) == 0 {
			continue
		}
		e := &traceEntry{obj: obj, spec: spec}
		hasSel := len(spec.GetSelector().GetMatchLabels()) > 0
		switch {
		case hasSel && obj.Namespace == s.ns:
			if id, ok := s.idx.selectorID[spec]; ok && s.matched[id] && wl == nil {
				wl = e
			}
		case !hasSel && obj.Namespace == rootNs && root == nil:
			root = e
		case !hasSel && obj.Namespace == s.ns && ns == nil:
			ns = e
		}
	}
	var out []traceEntry
	for _, e := range []*traceEntry{root, ns, wl} {
		if e != nil && (len(out) == 0 || out[len(out)-1].obj != e.obj) {
			out = append(out, *e)
		}
	}
	return out
}

// traceSpec is the merged tracing of one side.
type traceSpec struct {
	present   bool // some Telemetry tracing applies
	providers []string
	from      *config.Object // the Telemetry that set providers
	fromPath  string
	sampling  *float64
	disabled  bool
	tags      map[string]*telemetry.Tracing_CustomTag
}

// mergeTracing applies Istio's Telemetry merge for side.
func (s *scope) mergeTracing(side traceSide) traceSpec {
	out := traceSpec{tags: map[string]*telemetry.Tracing_CustomTag{}}
	for _, lvl := range s.telemetryLevels() {
		for i, t := range lvl.spec.GetTracing() {
			if !modeCovers(t.GetMatch().GetMode(), side) {
				continue
			}
			out.present = true
			if len(t.GetProviders()) > 0 {
				out.providers = out.providers[:0]
				for _, p := range t.GetProviders() {
					out.providers = append(out.providers, p.GetName())
				}
				out.from, out.fromPath = lvl.obj, fmt.Sprintf("spec.tracing[%d].providers[0].name", i)
			}
			if v := t.GetRandomSamplingPercentage(); v != nil {
				f := v.GetValue()
				out.sampling = &f
			}
			if v := t.GetDisableSpanReporting(); v != nil {
				out.disabled = v.GetValue()
			}
			for k, v := range t.GetCustomTags() {
				out.tags[k] = v
			}
		}
	}
	return out
}

func modeCovers(m telemetry.WorkloadMode, side traceSide) bool {
	switch m {
	case telemetry.WorkloadMode_CLIENT:
		return side == traceClient
	case telemetry.WorkloadMode_SERVER:
		return side == traceServer
	}
	return true
}

// hcmTracing returns the HCM tracing for side, or nil when tracing is
// off for the scope.
func (s *scope) hcmTracing(side traceSide) *hcmv3.HttpConnectionManager_Tracing {
	m := s.idx.snap.Mesh
	spec := s.mergeTracing(side)
	if !spec.present && !m.GetEnableTracing() {
		return nil
	}
	names := spec.providers
	if len(names) == 0 {
		names = m.GetDefaultProviders().GetTracing()
		spec.from = nil
	}
	if len(names) == 0 {
		return nil
	}
	prov := config.ExtensionProvider(m, names[0])
	provider, maxTag := s.traceProvider(prov)
	if provider == nil {
		s.warnProvider(spec, names[0], prov)
		return nil
	}
	sampling := m.GetDefaultConfig().GetTracing().GetSampling()
	if sampling <= 0 || sampling > 100 {
		sampling = 1 // Istio's default (PILOT_TRACE_SAMPLING)
	}
	if spec.sampling != nil {
		sampling = *spec.sampling
	}
	if spec.disabled {
		sampling = 0
	}
	t := &hcmv3.HttpConnectionManager_Tracing{
		ClientSampling:  &typev3.Percent{Value: 100},
		RandomSampling:  &typev3.Percent{Value: sampling},
		OverallSampling: &typev3.Percent{Value: 100},
		Provider:        provider,
		CustomTags:      customTags(spec.tags),
	}
	if maxTag > 0 {
		t.MaxPathTagLength = wrapperspb.UInt32(maxTag)
	}
	return t
}

// warnProvider reports a provider name that is unknown or not a tracing
// provider, naming the Telemetry field (or the mesh's default provider).
func (s *scope) warnProvider(spec traceSpec, name string, prov *mesh.MeshConfig_ExtensionProvider) {
	msg := fmt.Sprintf("tracing provider %q is not defined in the mesh configuration's extensionProviders: tracing is off", name)
	if prov != nil {
		msg = fmt.Sprintf("provider %q is not a tracing provider weft supports (opentelemetry, zipkin): tracing is off", name)
	}
	if spec.from != nil {
		s.st.warns.warnObject(spec.from, spec.fromPath, msg)
		return
	}
	s.st.warns.add(&config.Error{Path: "meshConfig.defaultProviders.tracing", Message: msg, Warning: true})
}

// customTags converts Telemetry custom tags, sorted by name.
func customTags(tags map[string]*telemetry.Tracing_CustomTag) []*tracingv3.CustomTag {
	names := make([]string, 0, len(tags))
	for k := range tags {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []*tracingv3.CustomTag
	for _, k := range names {
		ct := tags[k]
		tag := &tracingv3.CustomTag{Tag: k}
		switch {
		case ct.GetLiteral() != nil:
			tag.Type = &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: ct.GetLiteral().GetValue()}}
		case ct.GetEnvironment() != nil:
			e := ct.GetEnvironment()
			tag.Type = &tracingv3.CustomTag_Environment_{Environment: &tracingv3.CustomTag_Environment{Name: e.GetName(), DefaultValue: e.GetDefaultValue()}}
		case ct.GetHeader() != nil:
			h := ct.GetHeader()
			tag.Type = &tracingv3.CustomTag_RequestHeader{RequestHeader: &tracingv3.CustomTag_Header{Name: h.GetName(), DefaultValue: h.GetDefaultValue()}}
		default:
			continue // formatter tags: not supported by weft-proxy
		}
		out = append(out, tag)
	}
	return out
}

// traceProvider builds Envoy's provider for an Istio extension provider
// (nil when it is not a supported tracing provider) and its
// maxTagLength.
func (s *scope) traceProvider(p *mesh.MeshConfig_ExtensionProvider) (*tracev3.Tracing_Http, uint32) {
	switch {
	case p.GetOpentelemetry() != nil:
		o := p.GetOpentelemetry()
		cluster := s.collectorCluster(o.GetService(), o.GetPort())
		c := &tracev3.OpenTelemetryConfig{}
		if h := o.GetHttp(); h != nil {
			path := h.GetPath()
			if path == "" {
				path = "/v1/traces"
			} else if path[0] != '/' {
				path = "/" + path
			}
			timeout := h.GetTimeout()
			if timeout == nil {
				timeout = durationpb.New(defaultCollectorTimeout)
			}
			c.HttpService = &corev3.HttpService{HttpUri: &corev3.HttpUri{
				Uri:              "http://" + net.JoinHostPort(o.GetService(), strconv.FormatUint(uint64(o.GetPort()), 10)) + path,
				HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: cluster},
				Timeout:          timeout,
			}}
		} else {
			c.GrpcService = &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster}}}
		}
		return &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry",
			ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(c)}}, o.GetMaxTagLength()
	case p.GetZipkin() != nil:
		z := p.GetZipkin()
		path := z.GetPath()
		if path == "" {
			path = "/api/v2/spans"
		}
		c := &tracev3.ZipkinConfig{
			CollectorCluster:         s.collectorCluster(z.GetService(), z.GetPort()),
			CollectorEndpoint:        path,
			CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON,
			CollectorHostname:        z.GetService(),
		}
		return &tracev3.Tracing_Http{Name: "envoy.tracers.zipkin",
			ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(c)}}, z.GetMaxTagLength()
	}
	return nil, 0
}

// collectorCluster is Istio's cluster name for a provider's service.
func (s *scope) collectorCluster(service string, port uint32) string {
	return "outbound|" + strconv.FormatUint(uint64(port), 10) + "||" + service
}

// tracingClusters returns the dedicated collector clusters the scope's
// tracing needs: one per provider whose service the scope does not see
// as a mesh service.
func (s *scope) tracingClusters() []hashed[*clusterv3.Cluster] {
	m := s.idx.snap.Mesh
	seen := map[string]bool{}
	var out []hashed[*clusterv3.Cluster]
	for _, side := range []traceSide{traceClient, traceServer} {
		spec := s.mergeTracing(side)
		names := spec.providers
		if len(names) == 0 {
			names = m.GetDefaultProviders().GetTracing()
		}
		if len(names) == 0 || (!spec.present && !m.GetEnableTracing()) {
			continue
		}
		p := config.ExtensionProvider(m, names[0])
		service, port, grpc := providerService(p)
		name := s.collectorCluster(service, port)
		if service == "" || seen[name] || s.byHost[service] != nil {
			continue
		}
		seen[name] = true
		out = append(out, hash(name, collectorClusterFor(name, service, port, grpc)))
	}
	return out
}

// providerService returns a tracing provider's service, port and whether
// it speaks gRPC (OTLP/gRPC needs HTTP/2).
func providerService(p *mesh.MeshConfig_ExtensionProvider) (string, uint32, bool) {
	switch {
	case p.GetOpentelemetry() != nil:
		o := p.GetOpentelemetry()
		return o.GetService(), o.GetPort(), o.GetHttp() == nil
	case p.GetZipkin() != nil:
		return p.GetZipkin().GetService(), p.GetZipkin().GetPort(), false
	}
	return "", 0, false
}

// collectorClusterFor is a dedicated cluster to service:port: STATIC for
// an IP address, STRICT_DNS for a name; HTTP/2 for gRPC collectors.
func collectorClusterFor(name, service string, port uint32, grpc bool) *clusterv3.Cluster {
	typ := clusterv3.Cluster_STRICT_DNS
	if _, err := netip.ParseAddr(service); err == nil {
		typ = clusterv3.Cluster_STATIC
	}
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(service, port)}},
			}}}},
		},
	}
	if typ == clusterv3.Cluster_STRICT_DNS {
		c.DnsLookupFamily = clusterv3.Cluster_V4_PREFERRED
		c.DnsRefreshRate = defaultDNSRefreshRate
	}
	proto := model.HTTP
	if grpc {
		proto = model.GRPC
	}
	applyConnectionPool(c, nil, model.Port{Number: port, Protocol: proto})
	return c
}
