package registry

import (
	"fmt"
	"net/netip"
	"sort"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// FileOptions configure the file registry (FromConfig and File).
type FileOptions struct {
	// Name is the registry's name (default "file").
	Name string
	// ClusterID, when set, labels every endpoint topology.istio.io/cluster
	// (Istio's AugmentLabels; Istio's default cluster is "Kubernetes").
	ClusterID string
}

// DefaultFileName is the file registry's default name.
const DefaultFileName = "file"

// FromConfig is the file registry as a pure function: it turns the
// ServiceEntry and WorkloadEntry objects among objs (other kinds are
// ignored) into services, with Istio's ServiceEntry semantics
// (pilot/pkg/serviceregistry/serviceentry: conversion.go, controller.go):
//
//   - one service per host of each ServiceEntry (wildcard hosts included),
//     with the ServiceEntry's addresses (a /32 or /128 CIDR becomes the
//     plain IP), ports (protocol from model.ParseProtocol, targetPort),
//     resolution (NONE → Passthrough, STATIC → ClientSideLB, DNS → DNS,
//     DNS_ROUND_ROBIN → DNSRoundRobin), location and exportTo;
//   - endpoints from spec.endpoints, or from the WorkloadEntries of the same
//     namespace that workloadSelector selects (workloadentry.go), or, for
//     DNS and DNS_ROUND_ROBIN with neither, the host itself;
//   - a host declared by several ServiceEntries of one namespace is merged
//     or resolved as Istio does (merge.go), with a warning.
//   - a service with no addresses gets auto-allocated virtual IPs
//     (AllocateAddresses, vip.go), unless its host is a wildcard or its
//     resolution is NONE.
//
// The result has at most one service per (hostname, namespace), sorted by
// hostname then namespace, endpoints sorted by address then port. It does
// not depend on the order of objs. Problems come back as config.Errors:
// Warning for what Istio accepts (the object still applies), and a plain
// error for a ServiceEntry weft cannot apply (it contributes nothing).
//
// The objects are expected to have passed validation; FromConfig still
// never panics on odd input. The returned values share no mutable state
// with objs.
func FromConfig(objs []*config.Object, o FileOptions) ([]*model.Service, []*config.Error) {
	b := &builder{o: o}
	ses, wes := b.partition(objs)
	idx := newWorkloadIndex(wes)
	groups := map[hostKey][]candidate{}
	var order []hostKey
	for _, se := range ses {
		for _, c := range b.convert(se, idx) {
			k := hostKey{c.svc.Hostname, c.svc.Namespace}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], c)
		}
	}
	out := make([]*model.Service, 0, len(order))
	for _, k := range order {
		svc, errs := mergeGroup(groups[k])
		out = append(out, svc)
		b.errs = append(b.errs, errs...)
	}
	sortServices(out)
	sortErrors(b.errs)
	return AllocateAddresses(out), b.errs // vip.go
}

type hostKey struct{ host, namespace string }

// builder carries the options and collects problems during one FromConfig.
type builder struct {
	o    FileOptions
	errs []*config.Error
}

func (b *builder) fail(obj *config.Object, path string, warning bool, format string, args ...any) {
	b.errs = append(b.errs, &config.Error{
		Source: obj.Source, Key: obj.Key(), Path: path, Warning: warning,
		Message: fmt.Sprintf(format, args...),
	})
}

// seInput is a ServiceEntry with its typed spec.
type seInput struct {
	obj  *config.Object
	spec *networking.ServiceEntry
}

// partition picks the ServiceEntries and WorkloadEntries out of objs, each
// sorted by namespace then name, so that everything after it is
// independent of the input order.
func (b *builder) partition(objs []*config.Object) ([]seInput, []weInput) {
	sorted := sortedObjects(objs)
	ses := make([]seInput, 0, len(sorted))
	wes := make([]weInput, 0, len(sorted))
	for _, obj := range sorted {
		switch obj.Kind {
		case config.ServiceEntry:
			spec, ok := obj.Spec.(*networking.ServiceEntry)
			if !ok || spec == nil {
				b.fail(obj, "spec", false, "spec is %T, want a networking.istio.io ServiceEntry; the object is skipped", obj.Spec)
				continue
			}
			ses = append(ses, seInput{obj: obj, spec: spec})
		case config.WorkloadEntry:
			spec, ok := obj.Spec.(*networking.WorkloadEntry)
			if !ok || spec == nil {
				b.fail(obj, "spec", false, "spec is %T, want a networking.istio.io WorkloadEntry; the object is skipped", obj.Spec)
				continue
			}
			wes = append(wes, b.workload(obj, spec))
		}
	}
	return ses, wes
}

// sortedObjects returns the ServiceEntries and WorkloadEntries of objs
// sorted by key, then version; of two objects with one key (which a Store
// never produces) the first in that order is kept.
func sortedObjects(objs []*config.Object) []*config.Object {
	out := make([]*config.Object, 0, len(objs))
	for _, o := range objs {
		if o != nil && (o.Kind == config.ServiceEntry || o.Kind == config.WorkloadEntry) {
			out = append(out, o)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Key(), out[j].Key()
		if a != b {
			return keyLess(a, b)
		}
		return out[i].Version < out[j].Version
	})
	uniq := out[:0]
	for i, o := range out {
		if i > 0 && o.Key() == out[i-1].Key() {
			continue
		}
		uniq = append(uniq, o)
	}
	return uniq
}

// convert turns one ServiceEntry into a candidate per host.
func (b *builder) convert(se seInput, idx *workloadIndex) []candidate {
	obj, spec := se.obj, se.spec
	res, ok := b.resolution(se)
	if !ok {
		return nil
	}
	ports := convertPorts(spec.Ports)
	hosts := b.hosts(se)
	dnsFallback := isDNS(spec) && len(spec.Endpoints) == 0 && spec.WorkloadSelector == nil
	if dnsFallback {
		for _, h := range hosts {
			if model.IsWildcardHost(h.name) {
				b.fail(obj, h.path, false, "resolution %s with no endpoints and no workloadSelector resolves the host itself, which a wildcard host cannot be; add endpoints or use resolution NONE (Istio rejects this too). The ServiceEntry is skipped", spec.Resolution)
				return nil
			}
		}
	}
	var eps []*model.Endpoint
	if !dnsFallback {
		eps = b.endpoints(se, ports, idx)
	}
	attrs := mergeAttrs{
		resolution: spec.Resolution.String(),
		exportTo:   canonicalSet(spec.ExportTo),
		labels:     canonicalMap(obj.Labels),
		selector:   canonicalMap(spec.GetWorkloadSelector().GetLabels()),
	}
	addrs := addresses(spec.Addresses)
	exportTo := append([]string(nil), spec.ExportTo...)
	out := make([]candidate, 0, len(hosts))
	for _, h := range hosts {
		svc := &model.Service{
			Hostname:     h.name,
			Namespace:    obj.Namespace,
			Addresses:    addrs,
			Ports:        ports,
			Resolution:   res,
			MeshExternal: spec.Location == networking.ServiceEntry_MESH_EXTERNAL,
			ExportTo:     exportTo,
			Endpoints:    eps,
			Source:       obj.Key(),
		}
		if dnsFallback {
			svc.Endpoints = []*model.Endpoint{hostEndpoint(obj, h.name, ports)}
		}
		out = append(out, candidate{
			svc: svc, provider: External, attrs: attrs,
			who: obj.Key().String(), src: obj.Source, path: h.path,
			order: "weft orders the ServiceEntries of a namespace by name, where Istio uses creation time",
		})
	}
	return out
}

// resolution maps spec.resolution (Istio's convertServices).
func (b *builder) resolution(se seInput) (model.Resolution, bool) {
	switch se.spec.Resolution {
	case networking.ServiceEntry_NONE:
		return model.Passthrough, true
	case networking.ServiceEntry_STATIC:
		return model.ClientSideLB, true
	case networking.ServiceEntry_DNS:
		return model.DNS, true
	case networking.ServiceEntry_DNS_ROUND_ROBIN:
		return model.DNSRoundRobin, true
	case networking.ServiceEntry_DYNAMIC_DNS:
		b.fail(se.obj, "spec.resolution", false, "resolution DYNAMIC_DNS is not supported by weft yet; use DNS with explicit hosts. The ServiceEntry is skipped")
	default:
		b.fail(se.obj, "spec.resolution", false, "unknown resolution %d; the ServiceEntry is skipped", se.spec.Resolution)
	}
	return 0, false
}

func isDNS(spec *networking.ServiceEntry) bool {
	return spec.Resolution == networking.ServiceEntry_DNS || spec.Resolution == networking.ServiceEntry_DNS_ROUND_ROBIN
}

type hostRef struct{ name, path string }

// hosts returns the ServiceEntry's hosts, a host repeated within it once.
func (b *builder) hosts(se seInput) []hostRef {
	out := make([]hostRef, 0, len(se.spec.Hosts))
	seen := make(map[string]bool, len(se.spec.Hosts))
	for i, h := range se.spec.Hosts {
		path := fmt.Sprintf("spec.hosts[%d]", i)
		if seen[h] {
			b.fail(se.obj, path, true, "host %q is listed twice; the repetition is ignored", h)
			continue
		}
		seen[h] = true
		out = append(out, hostRef{name: h, path: path})
	}
	return out
}

// convertPorts maps spec.ports: the protocol is the explicit one, else the
// port name's prefix (model.ParseProtocol). Istio's ServiceEntry
// conversion reads only the explicit protocol; weft applies the same
// name-prefix rule to every port, on purpose, so that "http-web" means
// HTTP wherever it is written.
func convertPorts(in []*networking.ServicePort) []model.Port {
	out := make([]model.Port, 0, len(in))
	for _, p := range in {
		if p == nil {
			continue
		}
		out = append(out, model.Port{
			Name:       p.Name,
			Number:     p.Number,
			Protocol:   model.ParseProtocol(p.Protocol, p.Name),
			TargetPort: p.TargetPort,
		})
	}
	return out
}

// addresses maps spec.addresses as Istio's convertServices does: IPs as
// written, a CIDR of one address as that address, other CIDRs as written;
// anything else (which validation rejects) is dropped.
func addresses(in []string) []string {
	var out []string
	for _, a := range in {
		if _, err := netip.ParseAddr(a); err == nil {
			out = append(out, a)
			continue
		}
		if p, err := netip.ParsePrefix(a); err == nil {
			if p.Bits() == p.Addr().BitLen() {
				a = p.Addr().String()
			}
			out = append(out, a)
		}
	}
	return out
}

// endpoints builds the endpoints one ServiceEntry gives each of its hosts:
// the selected WorkloadEntries when it has a workloadSelector (Istio then
// ignores spec.endpoints, which validation forbids beside a selector), else
// spec.endpoints.
func (b *builder) endpoints(se seInput, ports []model.Port, idx *workloadIndex) []*model.Endpoint {
	obj, spec := se.obj, se.spec
	var out []*model.Endpoint
	if sel := spec.WorkloadSelector; sel != nil {
		if len(spec.Endpoints) > 0 {
			b.fail(obj, "spec.endpoints", true, "endpoints are ignored when workloadSelector is set (Istio rejects both together); keep one of them")
		}
		if len(sel.Labels) == 0 {
			b.fail(obj, "spec.workloadSelector.labels", true, "an empty selector selects no WorkloadEntry (Istio's rule); add labels")
			return nil
		}
		for _, we := range idx.selectFor(obj.Namespace, sel.Labels) {
			if we.hostnameAddress && !isDNS(spec) {
				b.fail(we.obj, "spec.address", true, "address %q is not an IP, so only ServiceEntries with resolution DNS or DNS_ROUND_ROBIN use this WorkloadEntry; %s (resolution %s) selects it and ignores it", we.spec.Address, obj.Key(), spec.Resolution)
				continue
			}
			if we.unhealthy {
				continue
			}
			out = append(out, b.workloadEndpoint(we.spec, we.labels, obj.Namespace, we.workloadName, we.obj.Key(), ports))
		}
	} else {
		for _, ep := range spec.Endpoints {
			if ep == nil {
				continue
			}
			out = append(out, b.workloadEndpoint(ep, ep.Labels, obj.Namespace, "", obj.Key(), ports))
		}
	}
	sortEndpoints(out, ports)
	return out
}

// hostEndpoint is Istio's endpoint for a DNS ServiceEntry with neither
// endpoints nor a selector: the host itself, on each port's target port
// (else its number), TLS disabled.
func hostEndpoint(obj *config.Object, host string, ports []model.Port) *model.Endpoint {
	pm := make(map[string]uint32, len(ports))
	for _, p := range ports {
		pm[p.Name] = p.Number
		if p.TargetPort != 0 {
			pm[p.Name] = p.TargetPort
		}
	}
	return &model.Endpoint{
		Address:   host,
		Ports:     pm,
		TLSMode:   TLSModeDisabled,
		Namespace: obj.Namespace,
		Source:    obj.Key(),
	}
}
