package dashboard

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// ServiceView is one service and the configuration in force for it.
type ServiceView struct {
	Host       string         `json:"host"`
	Namespace  string         `json:"namespace"`
	Ports      []PortView     `json:"ports"`
	Resolution string         `json:"resolution"`
	External   bool           `json:"external,omitempty"`
	Endpoints  []EndpointView `json:"endpoints"`
	Subsets    []SubsetView   `json:"subsets"`
	// VirtualServices are those whose hosts cover the service and that
	// are visible in its namespace (mesh and gateway ones).
	VirtualServices []ConfigView `json:"virtual_services"`
	// DestinationRule is the rule clients in the service's own namespace
	// use (Istio's lookup order: that namespace, then the root namespace;
	// the most specific host wins); nil when none applies.
	DestinationRule *ConfigView `json:"destination_rule"`
	// Problems are those of the service's own objects (ServiceEntry,
	// WorkloadEntries, the rules above).
	Problems []ProblemView `json:"problems"`
}

// PortView is a service port.
type PortView struct {
	Name     string `json:"name"`
	Number   uint32 `json:"number"`
	Protocol string `json:"protocol"`
}

// EndpointView is one endpoint of a service.
type EndpointView struct {
	Address   string            `json:"address"`
	Ports     map[string]uint32 `json:"ports,omitempty"`
	Workload  string            `json:"workload,omitempty"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Locality  string            `json:"locality,omitempty"`
	// Health is the registry's view: endpoints of the snapshot are
	// HEALTHY (file mode drops WorkloadEntries Istio would treat as
	// unhealthy, and reports them as problems).
	Health string `json:"health"`
	// Sidecar is the sync state of the proxy at the endpoint's address,
	// "" when none is connected.
	Sidecar string `json:"sidecar,omitempty"`
	// Subsets are the DestinationRule subsets the endpoint belongs to.
	Subsets []string `json:"subsets,omitempty"`
}

// SubsetView is one DestinationRule subset of a service.
type SubsetView struct {
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels"`
	Endpoints int               `json:"endpoints"`
}

// ConfigView is one Istio object: identity, a readable summary, the spec.
type ConfigView struct {
	Kind      string          `json:"kind"`
	Namespace string          `json:"namespace"`
	Name      string          `json:"name"`
	Source    string          `json:"source"`
	Summary   []string        `json:"summary"`
	Spec      json.RawMessage `json:"spec"`
}

// Endpoint health as shown.
const healthHealthy = "HEALTHY"

// serviceViews describes every service of the snapshot.
func serviceViews(in buildInput, proxies []ProxyView, problems []ProblemView) []ServiceView {
	byIP := map[string]string{}
	for _, p := range proxies {
		if p.IP != "" {
			byIP[p.IP] = worseState(byIP[p.IP], p.State)
		}
	}
	out := make([]ServiceView, 0, len(in.snap.Services))
	for _, svc := range in.snap.Services {
		out = append(out, serviceView(in, svc, byIP, problems))
	}
	return out
}

func serviceView(in buildInput, svc *model.Service, sidecars map[string]string, problems []ProblemView) ServiceView {
	sv := ServiceView{
		Host: svc.Hostname, Namespace: svc.Namespace, Resolution: resolutionName(svc.Resolution),
		External: svc.MeshExternal, Ports: []PortView{}, Endpoints: []EndpointView{}, Subsets: []SubsetView{},
		VirtualServices: []ConfigView{}, Problems: []ProblemView{},
	}
	for _, p := range svc.Ports {
		sv.Ports = append(sv.Ports, PortView{Name: p.Name, Number: p.Number, Protocol: string(p.Protocol)})
	}
	owned := map[config.Key]bool{svc.Source: true}
	for _, obj := range virtualServicesFor(in.snap, svc, in.domain) {
		owned[obj.Key()] = true
		sv.VirtualServices = append(sv.VirtualServices, configView(obj, vsSummary(obj.Spec.(*networking.VirtualService))))
	}
	var subsets []*networking.Subset
	if obj := destinationRuleFor(in.snap, svc, in.domain); obj != nil {
		owned[obj.Key()] = true
		dr := obj.Spec.(*networking.DestinationRule)
		subsets = dr.Subsets
		cv := configView(obj, drSummary(dr))
		sv.DestinationRule = &cv
	}
	for _, s := range subsets {
		sv.Subsets = append(sv.Subsets, SubsetView{Name: s.Name, Labels: s.Labels})
	}
	for _, ep := range svc.Endpoints {
		owned[ep.Source] = true
		ev := EndpointView{
			Address: ep.Address, Ports: ep.Ports, Workload: ep.WorkloadName, Namespace: ep.Namespace,
			Labels: ep.Labels, Locality: ep.Locality, Health: healthHealthy, Sidecar: sidecars[ep.Address],
		}
		for i, s := range subsets {
			if model.SelectorMatches(s.Labels, ep.Labels) {
				ev.Subsets = append(ev.Subsets, s.Name)
				sv.Subsets[i].Endpoints++
			}
		}
		sv.Endpoints = append(sv.Endpoints, ev)
	}
	for _, p := range problems {
		if owned[config.Key{Kind: config.Kind(p.Kind), Namespace: p.Namespace, Name: p.Name}] {
			sv.Problems = append(sv.Problems, p)
		}
	}
	return sv
}

func resolutionName(r model.Resolution) string {
	switch r {
	case model.DNS:
		return "DNS"
	case model.DNSRoundRobin:
		return "DNS_ROUND_ROBIN"
	case model.Passthrough:
		return "NONE"
	}
	return "STATIC"
}

// fqdn resolves a short host name in namespace ns, as Istio's
// ResolveShortnameToFQDN (and weft's translation) do.
func fqdn(h, ns, domain string) string {
	if h == "" || h == "*" || strings.Contains(h, ".") || strings.Contains(h, ":") {
		return h
	}
	return h + "." + ns + ".svc." + domain
}

// virtualServicesFor returns the VirtualServices whose hosts cover the
// service and that its namespace sees (exportTo).
func virtualServicesFor(s *model.Snapshot, svc *model.Service, domain string) []*config.Object {
	var out []*config.Object
	for _, obj := range s.List(config.VirtualService) {
		vs, ok := obj.Spec.(*networking.VirtualService)
		if !ok || !model.ExportedTo(vs.ExportTo, obj.Namespace, svc.Namespace) {
			continue
		}
		for _, h := range vs.Hosts {
			if model.HostMatches(fqdn(h, obj.Namespace, domain), svc.Hostname) {
				out = append(out, obj)
				break
			}
		}
	}
	return out
}

// destinationRuleFor returns the DestinationRule clients in the service's
// namespace use: Istio's lookup for a proxy of that namespace without a
// workload selector — that namespace first, then the root namespace; the
// most specific host wins, then the first by name.
func destinationRuleFor(s *model.Snapshot, svc *model.Service, domain string) *config.Object {
	for _, ns := range []string{svc.Namespace, s.RootNamespace} {
		var best *config.Object
		bestHost := ""
		for _, obj := range s.List(config.DestinationRule) {
			dr, ok := obj.Spec.(*networking.DestinationRule)
			if !ok || obj.Namespace != ns || dr.WorkloadSelector != nil || !model.ExportedTo(dr.ExportTo, obj.Namespace, svc.Namespace) {
				continue
			}
			h := fqdn(dr.Host, obj.Namespace, domain)
			if !model.HostSubsetOf(svc.Hostname, h) {
				continue
			}
			if best == nil || (h != bestHost && model.HostSubsetOf(h, bestHost)) {
				best, bestHost = obj, h
			}
		}
		if best != nil {
			return best
		}
	}
	return nil
}

func configView(obj *config.Object, summary []string) ConfigView {
	spec, err := protojson.Marshal(obj.Spec)
	if err != nil {
		spec = []byte(`null`)
	}
	return ConfigView{
		Kind: string(obj.Kind), Namespace: obj.Namespace, Name: obj.Name, Source: obj.Source.String(),
		Summary: summary, Spec: spec,
	}
}

// vsSummary describes a VirtualService's routes, one line each.
func vsSummary(vs *networking.VirtualService) []string {
	gws := "mesh"
	if len(vs.Gateways) > 0 {
		gws = strings.Join(vs.Gateways, ", ")
	}
	out := []string{"hosts " + strings.Join(vs.Hosts, ", ") + " · gateways " + gws}
	for i, r := range vs.Http {
		line := fmt.Sprintf("http[%d]", i)
		if r.Name != "" {
			line += " " + r.Name
		}
		if m := httpMatches(r.Match); m != "" {
			line += " when " + m
		}
		line += ": " + routeDestinations(r)
		out = append(out, line)
	}
	for i, r := range vs.Tcp {
		out = append(out, fmt.Sprintf("tcp[%d]: %s", i, destinations(r.Route)))
	}
	for i, r := range vs.Tls {
		out = append(out, fmt.Sprintf("tls[%d]: %s", i, destinations(r.Route)))
	}
	return out
}

func httpMatches(ms []*networking.HTTPMatchRequest) string {
	var parts []string
	for _, m := range ms {
		var conds []string
		if u := stringMatch(m.Uri); u != "" {
			conds = append(conds, "uri "+u)
		}
		for _, name := range sortedKeys(m.Headers) {
			conds = append(conds, "header "+name+" "+stringMatch(m.Headers[name]))
		}
		if len(m.SourceLabels) > 0 {
			conds = append(conds, "source "+labelsString(m.SourceLabels))
		}
		if m.Port != 0 {
			conds = append(conds, fmt.Sprintf("port %d", m.Port))
		}
		if len(conds) == 0 {
			conds = append(conds, "any")
		}
		parts = append(parts, strings.Join(conds, " and "))
	}
	return strings.Join(parts, " or ")
}

func stringMatch(m *networking.StringMatch) string {
	switch v := m.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		return "= " + v.Exact
	case *networking.StringMatch_Prefix:
		return "prefix " + v.Prefix
	case *networking.StringMatch_Regex:
		return "~ " + v.Regex
	}
	return ""
}

// routeDestinations describes where an HTTP route sends requests and the
// policies it carries.
func routeDestinations(r *networking.HTTPRoute) string {
	var s string
	switch {
	case r.Redirect != nil:
		s = "redirect"
	case r.DirectResponse != nil:
		s = fmt.Sprintf("direct response %d", r.DirectResponse.Status)
	default:
		s = destinations(r.Route)
	}
	var extra []string
	if r.Timeout != nil {
		extra = append(extra, "timeout "+r.Timeout.AsDuration().String())
	}
	if r.Retries != nil {
		extra = append(extra, fmt.Sprintf("retries %d", r.Retries.Attempts))
	}
	if r.Fault != nil {
		extra = append(extra, "fault")
	}
	if r.Mirror != nil || len(r.Mirrors) > 0 {
		extra = append(extra, "mirror")
	}
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	return s
}

// weighted is a route destination with a weight (HTTP, TCP and TLS route
// destinations share the shape).
type weighted interface {
	GetDestination() *networking.Destination
	GetWeight() int32
}

func destinations[T weighted](ds []T) string {
	var parts []string
	for _, d := range ds {
		dst := d.GetDestination()
		s := dst.GetHost()
		if p := dst.GetPort().GetNumber(); p != 0 {
			s += fmt.Sprintf(":%d", p)
		}
		if dst.GetSubset() != "" {
			s += " subset " + dst.GetSubset()
		}
		if d.GetWeight() != 0 {
			s += fmt.Sprintf(" %d%%", d.GetWeight())
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "no destination"
	}
	return strings.Join(parts, ", ")
}

// drSummary describes a DestinationRule: its subsets and which traffic
// policy fields it sets.
func drSummary(dr *networking.DestinationRule) []string {
	out := []string{"host " + dr.Host}
	if tp := dr.TrafficPolicy; tp != nil {
		out = append(out, "traffic policy: "+strings.Join(setFields(tp), ", "))
	}
	for _, s := range dr.Subsets {
		line := "subset " + s.Name + " " + labelsString(s.Labels)
		if s.TrafficPolicy != nil {
			line += " · policy: " + strings.Join(setFields(s.TrafficPolicy), ", ")
		}
		out = append(out, line)
	}
	return out
}

// setFields lists the JSON names of a message's populated fields.
func setFields(m proto.Message) []string {
	var out []string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		out = append(out, fd.JSONName())
		return true
	})
	sort.Strings(out)
	return out
}

func labelsString(l map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(l) {
		parts = append(parts, k+"="+l[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
