package translate

import (
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// meshGateway is Istio's name for "the sidecars of the mesh" in
// VirtualService gateways.
const meshGateway = "mesh"

// index is what translation derives once per snapshot: the Istio objects
// decoded into their specs with host names resolved to FQDNs (as Istio's
// ResolveShortnameToFQDN), DestinationRules merged per namespace and host,
// and the label selectors whose match decides a proxy's view. It is
// read-only after newIndex.
type index struct {
	snap   *model.Snapshot
	domain string // cluster domain, e.g. "cluster.local"

	virtualServices []*vsEntry
	// destRules by namespace; within a namespace in snapshot order.
	destRules map[string][]*drEntry
	// sidecars by namespace, in snapshot order.
	sidecars map[string][]*sidecarEntry
	gateways []*gwEntry

	// selectors are the label selectors that make a proxy's outbound view
	// depend on its labels (VirtualService match sourceLabels,
	// DestinationRule workloadSelector); selectorID finds one by the
	// message that holds it.
	selectors  []labelSelector
	selectorID map[any]int
}

// labelSelector is one selector; ns restricts it to proxies of a namespace
// ("" = any).
type labelSelector struct {
	ns     string
	labels map[string]string
}

// vsEntry is one VirtualService.
type vsEntry struct {
	obj  *config.Object
	spec *networking.VirtualService
	// hosts are spec.hosts resolved to FQDNs.
	hosts []string
	// gateways are spec.gateways resolved to "ns/name" ("mesh" kept); an
	// empty spec.gateways means mesh.
	gateways map[string]bool
	// metadata is the route metadata naming the VirtualService (Istio's
	// filter_metadata.istio.config), shared by its routes.
	metadata *corev3.Metadata
}

// drEntry is one DestinationRule, or several of one namespace and host
// merged as Istio merges them (subsets appended, the first traffic policy
// wins).
type drEntry struct {
	obj      *config.Object // the first of the merged rules
	spec     *networking.DestinationRule
	host     string
	selector map[string]string
}

// sidecarEntry is one Sidecar resource.
type sidecarEntry struct {
	obj  *config.Object
	spec *networking.Sidecar
}

// gwEntry is one Gateway.
type gwEntry struct {
	obj  *config.Object
	spec *networking.Gateway
	name string // "ns/name"
}

// newIndex decodes the snapshot's configuration.
func newIndex(s *model.Snapshot, domain string) *index {
	idx := &index{
		snap:       s,
		domain:     domain,
		destRules:  map[string][]*drEntry{},
		sidecars:   map[string][]*sidecarEntry{},
		selectorID: map[any]int{},
	}
	for _, obj := range s.List(config.VirtualService) {
		if spec, ok := obj.Spec.(*networking.VirtualService); ok {
			idx.addVirtualService(obj, spec)
		}
	}
	idx.addDestinationRules(s.List(config.DestinationRule))
	idx.addTelemetrySelectors(s) // accesslog_telemetry.go
	for _, obj := range s.List(config.Sidecar) {
		if spec, ok := obj.Spec.(*networking.Sidecar); ok {
			idx.sidecars[obj.Namespace] = append(idx.sidecars[obj.Namespace], &sidecarEntry{obj: obj, spec: spec})
		}
	}
	idx.addTelemetry(s) // tracing.go
	for _, obj := range s.List(config.Gateway) {
		if spec, ok := obj.Spec.(*networking.Gateway); ok {
			idx.gateways = append(idx.gateways, &gwEntry{obj: obj, spec: spec, name: obj.Namespace + "/" + obj.Name})
		}
	}
	return idx
}

// addVirtualService indexes one VirtualService and registers its
// sourceLabels selectors.
func (idx *index) addVirtualService(obj *config.Object, spec *networking.VirtualService) {
	e := &vsEntry{obj: obj, spec: spec, gateways: map[string]bool{}, metadata: configMetadata(obj, "virtual-service")}
	for _, h := range spec.Hosts {
		e.hosts = append(e.hosts, idx.fqdn(h, obj.Namespace))
	}
	for _, g := range spec.Gateways {
		e.gateways[resolveGateway(g, obj.Namespace)] = true
	}
	if len(spec.Gateways) == 0 {
		e.gateways[meshGateway] = true
	}
	for _, h := range spec.Http {
		for _, m := range h.Match {
			idx.addSelector(m, "", m.SourceLabels)
		}
	}
	for _, t := range spec.Tcp {
		for _, m := range t.Match {
			idx.addSelector(m, "", m.SourceLabels)
		}
	}
	for _, t := range spec.Tls {
		for _, m := range t.Match {
			idx.addSelector(m, "", m.SourceLabels)
		}
	}
	idx.virtualServices = append(idx.virtualServices, e)
}

// addDestinationRules indexes DestinationRules, merging those of one
// namespace, host and exportTo that have no workload selector (Istio's
// mergeDestinationRule).
func (idx *index) addDestinationRules(objs []*config.Object) {
	merged := map[string]*drEntry{}
	for _, obj := range objs {
		spec, ok := obj.Spec.(*networking.DestinationRule)
		if !ok {
			continue
		}
		host := idx.fqdn(spec.Host, obj.Namespace)
		sel := spec.GetWorkloadSelector().GetMatchLabels()
		if spec.WorkloadSelector != nil {
			idx.addSelector(spec, obj.Namespace, sel)
			idx.destRules[obj.Namespace] = append(idx.destRules[obj.Namespace],
				&drEntry{obj: obj, spec: spec, host: host, selector: sel})
			continue
		}
		key := obj.Namespace + "\x00" + host + "\x00" + strings.Join(spec.ExportTo, ",")
		if prev := merged[key]; prev != nil {
			prev.spec = mergeDestinationRules(prev.spec, spec)
			continue
		}
		e := &drEntry{obj: obj, spec: spec, host: host}
		merged[key] = e
		idx.destRules[obj.Namespace] = append(idx.destRules[obj.Namespace], e)
	}
}

// configMetadata is Istio's BuildConfigInfoMetadata: filter_metadata
// "istio" with config "/apis/GROUP/VERSION/namespaces/NS/KIND/NAME".
func configMetadata(obj *config.Object, kind string) *corev3.Metadata {
	gv := obj.APIVersion
	if gv == "" {
		gv = "networking.istio.io/v1"
	}
	st := &structpb.Struct{Fields: map[string]*structpb.Value{
		"config": structpb.NewStringValue("/apis/" + gv + "/namespaces/" + obj.Namespace + "/" + kind + "/" + obj.Name),
	}}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": st}}
}

// mergeDestinationRules returns a new rule: a's, with b's subsets whose
// names a does not have, and b's traffic policy when a has none.
func mergeDestinationRules(a, b *networking.DestinationRule) *networking.DestinationRule {
	out := &networking.DestinationRule{
		Host:          a.Host,
		TrafficPolicy: a.TrafficPolicy,
		Subsets:       append([]*networking.Subset(nil), a.Subsets...),
		ExportTo:      a.ExportTo,
	}
	if out.TrafficPolicy == nil {
		out.TrafficPolicy = b.TrafficPolicy
	}
	have := map[string]bool{}
	for _, s := range a.Subsets {
		have[s.Name] = true
	}
	for _, s := range b.Subsets {
		if !have[s.Name] {
			out.Subsets = append(out.Subsets, s)
		}
	}
	return out
}

// addSelector registers a non-empty selector held by msg.
func (idx *index) addSelector(msg any, ns string, labels map[string]string) {
	if len(labels) == 0 {
		return
	}
	idx.selectorID[msg] = len(idx.selectors)
	idx.selectors = append(idx.selectors, labelSelector{ns: ns, labels: labels})
}

// matchedSelectors returns the ids of the selectors proxy p satisfies, in
// order: with the proxy type, namespace and Sidecar, they decide its view.
func (idx *index) matchedSelectors(p *model.Proxy) []int {
	var out []int
	for i, s := range idx.selectors {
		if (s.ns == "" || s.ns == p.Namespace) && model.SelectorMatches(s.labels, p.Labels) {
			out = append(out, i)
		}
	}
	return out
}

// fqdn resolves a host name written in namespace ns: short names ("reviews")
// become "reviews.ns.svc.DOMAIN"; names with a dot, "*" and IP addresses
// stay, as Istio's ResolveShortnameToFQDN.
func (idx *index) fqdn(h, ns string) string {
	if h == "" || h == "*" || strings.Contains(h, ".") || strings.Contains(h, ":") {
		return h
	}
	return h + "." + ns + ".svc." + idx.domain
}

// resolveGateway turns a VirtualService gateways entry into "ns/name"
// ("mesh" stays), a bare name meaning the VirtualService's namespace.
func resolveGateway(g, ns string) string {
	if g == meshGateway || strings.Contains(g, "/") {
		return g
	}
	return ns + "/" + g
}

// sidecarFor returns the Sidecar resource that applies to p: the first in
// p's namespace whose workloadSelector matches p, else the first in p's
// namespace without a selector, else the first without a selector in the
// root namespace (Istio's order; objects are in name order as creation time
// is not known). nil when none applies.
func (idx *index) sidecarFor(p *model.Proxy) *sidecarEntry {
	var nsDefault *sidecarEntry
	for _, sc := range idx.sidecars[p.Namespace] {
		sel := sc.spec.GetWorkloadSelector().GetLabels()
		if sc.spec.WorkloadSelector == nil || len(sel) == 0 {
			if nsDefault == nil {
				nsDefault = sc
			}
			continue
		}
		if model.SelectorMatches(sel, p.Labels) {
			return sc
		}
	}
	if nsDefault != nil {
		return nsDefault
	}
	for _, sc := range idx.sidecars[idx.snap.RootNamespace] {
		if sc.spec.WorkloadSelector == nil || len(sc.spec.GetWorkloadSelector().GetLabels()) == 0 {
			return sc
		}
	}
	return nil
}

// gatewaysFor returns the names ("ns/name", sorted) of the Gateways whose
// selector matches the labels of router p. Gateways of every namespace
// apply (Istio's default, PILOT_SCOPE_GATEWAY_TO_NAMESPACE=false).
func (idx *index) gatewaysFor(p *model.Proxy) []string {
	var out []string
	for _, g := range idx.gateways {
		if model.SelectorMatches(g.spec.Selector, p.Labels) {
			out = append(out, g.name)
		}
	}
	sort.Strings(out)
	return out
}

// gateway returns the Gateway named "ns/name", or nil.
func (idx *index) gateway(name string) *gwEntry {
	for _, g := range idx.gateways {
		if g.name == name {
			return g
		}
	}
	return nil
}

// sourceOf returns where the object key came from, for warnings about
// registry services (whose model.Service keeps only the key); the zero
// Source when the snapshot does not hold the object.
func (idx *index) sourceOf(key config.Key) config.Source {
	for _, obj := range idx.snap.List(key.Kind) {
		if obj.Namespace == key.Namespace && obj.Name == key.Name {
			return obj.Source
		}
	}
	return config.Source{File: "registry"}
}

// serviceWarning is a warning about a registry service.
func (idx *index) serviceWarning(svc *model.Service, path, msg string) *config.Error {
	return &config.Error{Source: idx.sourceOf(svc.Source), Key: svc.Source, Path: path, Message: msg, Warning: true}
}
