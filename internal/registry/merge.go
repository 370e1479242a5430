package registry

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// This file holds Istio's rule for one hostname declared more than once in
// one namespace, shared by the file registry (several ServiceEntries) and
// the Aggregate (several registries). Istio spreads the rule over three
// places; weft applies their combined effect once, when services are built:
//
//   - pilot/pkg/model/push_context.go initServiceRegistry: the first
//     service wins (Istio sorts by creation time), except that a Kubernetes
//     service takes precedence over a service of another registry.
//   - pilot/pkg/model/sidecar.go appendSidecarServices / canMergeServices:
//     a later service with the same ports is dropped; one with different
//     ports is merged into the first (ports whose number the first lacks are
//     added) when both agree on namespace, resolution, registry, labels,
//     workload selector and exportTo; otherwise it is dropped. A
//     non-Kubernetes service never merges into a Kubernetes one.
//   - Endpoints are indexed by (hostname, namespace) across every
//     declaration (the EDS endpoint shards), so the surviving service gets
//     the endpoints of all of them, on the port names they share with it.
//   - pilot/pkg/serviceregistry/aggregate/controller.go: Kubernetes
//     services of the same hostname from several clusters merge their
//     addresses (ClusterVIPs).

// candidate is one declaration of a (hostname, namespace).
type candidate struct {
	svc      *model.Service
	provider Provider
	// attrs are what must agree for Istio to merge ports (canMergeServices).
	attrs mergeAttrs
	// who names the declaration in messages, e.g. "ServiceEntry default/a"
	// or "registry kube (Kubernetes)".
	who string
	// order says how the caller ordered the declarations, for warnings.
	order string
	// src and path place warnings about this declaration.
	src  config.Source
	path string
}

// mergeAttrs are the attributes Istio's canMergeServices compares, in a
// canonical form. Fields the source cannot know are "".
type mergeAttrs struct {
	resolution string
	exportTo   string
	labels     string
	selector   string
}

// firstDifference names the first attribute on which a and b differ, or "".
func (a mergeAttrs) firstDifference(b mergeAttrs) string {
	switch {
	case a.resolution != b.resolution:
		return fmt.Sprintf("resolution %s differs from %s", b.resolution, a.resolution)
	case a.exportTo != b.exportTo:
		return fmt.Sprintf("exportTo [%s] differs from [%s]", b.exportTo, a.exportTo)
	case a.labels != b.labels:
		return fmt.Sprintf("metadata labels {%s} differ from {%s}", b.labels, a.labels)
	case a.selector != b.selector:
		return fmt.Sprintf("workloadSelector {%s} differs from {%s}", b.selector, a.selector)
	}
	return ""
}

// serviceAttrs are the merge attributes a model.Service carries itself
// (used across registries, where labels and selectors are not known).
func serviceAttrs(s *model.Service) mergeAttrs {
	return mergeAttrs{resolution: resolutionName(s.Resolution), exportTo: canonicalSet(s.ExportTo)}
}

// resolutionName is the ServiceEntry spelling of a resolution.
func resolutionName(r model.Resolution) string {
	switch r {
	case model.ClientSideLB:
		return "STATIC"
	case model.DNS:
		return "DNS"
	case model.DNSRoundRobin:
		return "DNS_ROUND_ROBIN"
	case model.Passthrough:
		return "NONE"
	}
	return "resolution(" + strconv.Itoa(int(r)) + ")"
}

// canonicalSet renders a set of strings sorted and deduplicated.
func canonicalSet(in []string) string {
	s := append([]string(nil), in...)
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return strings.Join(out, ",")
}

// canonicalMap renders a map as sorted "k=v" pairs.
func canonicalMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(m[k])
	}
	return b.String()
}

// mergeGroup merges the declarations of one (hostname, namespace); cands
// are in precedence order (cands[0] wins). It returns a new service (the
// inputs are not modified) and a warning per declaration that was merged
// or dropped.
func mergeGroup(cands []candidate) (*model.Service, []*config.Error) {
	if len(cands) == 1 {
		return cands[0].svc, nil
	}
	win := cands[0]
	out := *win.svc
	out.Ports = append([]model.Port(nil), win.svc.Ports...)
	out.Addresses = append([]string(nil), win.svc.Addresses...)
	var errs []*config.Error
	for _, c := range cands[1:] {
		if msg := mergeInto(&out, win, c); msg != "" {
			errs = append(errs, &config.Error{
				Source: c.src, Key: c.svc.Source, Path: c.path, Warning: true,
				Message: fmt.Sprintf("host %q in namespace %q is also declared by %s, which takes precedence (%s); %s",
					out.Hostname, out.Namespace, win.who, precedenceReason(win, c), msg),
			})
		}
	}
	out.Endpoints = mergeEndpoints(cands, out.Ports)
	return &out, errs
}

// precedenceReason says why win comes before c.
func precedenceReason(win, c candidate) string {
	if win.provider == Kubernetes && c.provider != Kubernetes {
		return "a Kubernetes Service always does, as in Istio"
	}
	return c.order
}

// mergeInto applies declaration c to out (a copy of win's service) and
// returns what happened, for the warning; "" when nothing worth a warning
// did (Kubernetes services of several clusters).
func mergeInto(out *model.Service, win, c candidate) string {
	switch {
	case win.provider == Kubernetes && c.provider == Kubernetes:
		out.Addresses = appendMissing(out.Addresses, c.svc.Addresses)
		return ""
	case win.provider == Kubernetes:
		return "this declaration is ignored; its endpoints join on the port names both declare"
	case portsEqual(win.svc.Ports, c.svc.Ports):
		return "the ports are the same, so the services merge: its endpoints join the service"
	}
	if win.provider != c.provider {
		return fmt.Sprintf("this declaration is ignored (registry %s differs from %s); its endpoints join on the port names both declare", c.provider, win.provider)
	}
	if d := win.attrs.firstDifference(c.attrs); d != "" {
		return "this declaration is ignored (" + d + "; Istio merges only declarations that agree); its endpoints join on the port names both declare"
	}
	var added []string
	for _, p := range c.svc.Ports {
		if _, ok := portNumbered(out.Ports, p.Number); !ok {
			out.Ports = append(out.Ports, p)
			added = append(added, fmt.Sprintf("%s/%d", p.Name, p.Number))
		}
	}
	if len(added) == 0 {
		return "the services merge (no new port numbers); its endpoints join the service"
	}
	return fmt.Sprintf("the services merge: ports %s are added and its endpoints join the service", strings.Join(added, ", "))
}

func portsEqual(a, b []model.Port) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func portNumbered(ports []model.Port, n uint32) (model.Port, bool) {
	for _, p := range ports {
		if p.Number == n {
			return p, true
		}
	}
	return model.Port{}, false
}

func portNamed(ports []model.Port, name string) (model.Port, bool) {
	for _, p := range ports {
		if p.Name == name {
			return p, true
		}
	}
	return model.Port{}, false
}

func appendMissing(dst, src []string) []string {
	for _, s := range src {
		found := false
		for _, d := range dst {
			if d == s {
				found = true
				break
			}
		}
		if !found {
			dst = append(dst, s)
		}
	}
	return dst
}

// mergeEndpoints gathers the endpoints of every declaration for the merged
// ports. An endpoint joins when its declaration shares at least one port
// name with the merged service; its port for each shared name is the one
// its own declaration gives it (written into Ports when the merged port
// would give another). An endpoint a later declaration repeats (same
// source, address and ports) is kept once.
//
// Difference from Istio, forced by model.Endpoint: Istio places such an
// endpoint only on the ports whose names its declaration has; here it also
// serves the merged service's other ports (at their target port).
func mergeEndpoints(cands []candidate, ports []model.Port) []*model.Endpoint {
	type seenKey struct {
		src   config.Key
		addr  string
		ports string
	}
	seen := map[seenKey]int{} // → index of the declaration that added it
	var out []*model.Endpoint
	for i, c := range cands {
		shared := sharedPorts(c.svc.Ports, ports)
		if len(shared) == 0 {
			continue
		}
		for _, e := range c.svc.Endpoints {
			e = rehome(e, shared)
			k := seenKey{e.Source, e.Address, portsKey(e, ports)}
			if first, dup := seen[k]; dup && first != i {
				continue
			}
			seen[k] = i
			out = append(out, e)
		}
	}
	sortEndpoints(out, ports)
	return out
}

// portPair is a declaration's port and the merged service's port of the
// same name.
type portPair struct{ own, merged model.Port }

func sharedPorts(own, merged []model.Port) []portPair {
	var out []portPair
	for _, p := range own {
		if m, ok := portNamed(merged, p.Name); ok {
			out = append(out, portPair{own: p, merged: m})
		}
	}
	return out
}

// rehome returns e, or a copy of it whose Ports make every shared merged
// port resolve to the port e had in its own declaration.
func rehome(e *model.Endpoint, shared []portPair) *model.Endpoint {
	same := true
	for _, sp := range shared {
		if e.PortFor(sp.own) != e.PortFor(sp.merged) {
			same = false
			break
		}
	}
	if same {
		return e
	}
	c := *e
	c.Ports = make(map[string]uint32, len(e.Ports)+len(shared))
	for k, v := range e.Ports {
		c.Ports[k] = v
	}
	for _, sp := range shared {
		c.Ports[sp.merged.Name] = e.PortFor(sp.own)
	}
	return &c
}

// portsKey renders an endpoint's port for each service port.
func portsKey(e *model.Endpoint, ports []model.Port) string {
	var b strings.Builder
	for _, p := range ports {
		b.WriteString(strconv.FormatUint(uint64(e.PortFor(p)), 10))
		b.WriteByte(',')
	}
	return b.String()
}

// sortEndpoints orders endpoints by address, then their port for each
// service port in order, then source. The sort is stable, so endpoints
// equal in all of these keep the (deterministic) order they were built in.
func sortEndpoints(eps []*model.Endpoint, ports []model.Port) {
	sort.SliceStable(eps, func(i, j int) bool {
		a, b := eps[i], eps[j]
		if a.Address != b.Address {
			return a.Address < b.Address
		}
		for _, p := range ports {
			if pa, pb := a.PortFor(p), b.PortFor(p); pa != pb {
				return pa < pb
			}
		}
		return keyLess(a.Source, b.Source)
	})
}

func keyLess(a, b config.Key) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	return a.Kind < b.Kind
}

// sortServices orders services by hostname, then namespace.
func sortServices(s []*model.Service) {
	sort.SliceStable(s, func(i, j int) bool {
		if s[i].Hostname != s[j].Hostname {
			return s[i].Hostname < s[j].Hostname
		}
		return s[i].Namespace < s[j].Namespace
	})
}

// sortErrors orders problems by object, then path, then message.
func sortErrors(errs []*config.Error) {
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i], errs[j]
		if a.Key != b.Key {
			return keyLess(a.Key, b.Key)
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Message < b.Message
	})
}
