package config

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// crossCheck applies the checks that need several objects, as Istio's
// analyzers do, to the decoded items (so that one run reports every
// problem; only valid objects are looked up):
//
//   - a route destination naming a subset that no DestinationRule for its
//     host defines is an error for the VirtualService (Istio's
//     VirtualServiceDestinationMismatchInDestinationRule; weft rejects the
//     object, since the route would send traffic nowhere);
//   - a destination host no ServiceEntry defines, a destination port the
//     ServiceEntry does not have, a missing port selector for a
//     multi-port ServiceEntry, and a gateway reference to no Gateway are
//     warnings (Istio's ReferencedResourceNotFound and
//     VirtualServiceDestinationPortSelectorRequired): in file mode the
//     registry is the ServiceEntries, and another registry may know the
//     host. A Workload (weft up's manifest) defines its service's host
//     and ports, as the ServiceEntry weft up generates from it will.
//
// Visibility (exportTo) is not taken into account: any namespace's
// DestinationRule or ServiceEntry counts, so the checks never reject
// configuration Istio would accept for a given proxy.
func crossCheck(items []*loaded, platform Platform) {
	x := newIndex(items)
	x.platform = platform
	for _, it := range items {
		vs, ok := it.obj.Spec.(*networking.VirtualService)
		if !ok {
			continue
		}
		for _, d := range destinationsOf(vs) {
			x.checkDestination(it, d)
		}
		x.checkGateways(it, vs)
		it.finish()
	}
}

// Platform describes the hosts a platform defines beside the
// ServiceEntries: on Kubernetes, the Services under ".svc.<domain>".
type Platform struct {
	// Suffix is the domain of the platform's hosts (".svc.cluster.local");
	// empty: none (file mode), every host needs a ServiceEntry.
	Suffix string
	// Hosts, when set, answers for a host under Suffix: its ports and
	// whether the platform has it; ok is false while the platform
	// cannot say (its caches have not synced), and such hosts are not
	// reported. Nil: hosts under Suffix are assumed to exist.
	Hosts func(host string) (ports []*networking.ServicePort, found, ok bool)
}

// index holds what the cross-object checks look up.
type index struct {
	// platform: the hosts a platform (Kubernetes) defines.
	platform Platform
	// subsets maps a DestinationRule's resolved host to the subsets of
	// each DestinationRule for it.
	subsets map[string][]drSubsets
	// services maps a ServiceEntry's resolved host to its ports.
	services map[string][]*networking.ServicePort
	// gateways is the set of "namespace/name" of the Gateways.
	gateways map[string]bool
}

// drSubsets are the subset names of one DestinationRule.
type drSubsets struct {
	key   Key
	names []string
	valid bool // an invalid rule is indexed to explain, never to satisfy
}

// newIndex indexes the valid DestinationRules, ServiceEntries and Gateways
// (and the invalid DestinationRules, to explain a missing subset).
func newIndex(items []*loaded) *index {
	x := &index{subsets: map[string][]drSubsets{}, services: map[string][]*networking.ServicePort{}, gateways: map[string]bool{}}
	for _, it := range items {
		if dr, ok := it.obj.Spec.(*networking.DestinationRule); ok {
			host := ResolveShortName(dr.GetHost(), it.obj.Namespace)
			var names []string
			for _, ss := range dr.GetSubsets() {
				names = append(names, ss.GetName())
			}
			x.subsets[host] = append(x.subsets[host], drSubsets{key: it.obj.Key(), names: names, valid: it.valid()})
		}
		if !it.valid() {
			continue
		}
		ns := it.obj.Namespace
		switch s := it.obj.Spec.(type) {
		case *networking.ServiceEntry:
			for _, h := range s.GetHosts() {
				host := ResolveShortName(h, ns)
				x.services[host] = append(x.services[host], s.GetPorts()...)
			}
		case *networking.Gateway:
			x.gateways[ns+"/"+it.obj.Name] = true
		}
		if w, ok := WorkloadOf(it.obj); ok && w.Service != "" { // weft up generates its ServiceEntry
			host := WorkloadHost(w.Service, ns)
			x.services[host] = append(x.services[host], w.ServicePorts()...)
		}
	}
	return x
}

// routeDest is one destination of a VirtualService with its path.
type routeDest struct {
	d    *networking.Destination
	path fieldPath
}

// destinationsOf lists every destination of a VirtualService: http, tcp
// and tls routes, and mirrors.
func destinationsOf(vs *networking.VirtualService) []routeDest {
	var out []routeDest
	for i, r := range vs.GetHttp() {
		p := specPath.f("http").i(i)
		for j, d := range r.GetRoute() {
			out = append(out, routeDest{d.GetDestination(), p.f("route").i(j).f("destination")})
		}
		if r.GetMirror() != nil {
			out = append(out, routeDest{r.GetMirror(), p.f("mirror")})
		}
		for j, m := range r.GetMirrors() {
			out = append(out, routeDest{m.GetDestination(), p.f("mirrors").i(j).f("destination")})
		}
	}
	for i, r := range vs.GetTcp() {
		for j, d := range r.GetRoute() {
			out = append(out, routeDest{d.GetDestination(), specPath.f("tcp").i(i).f("route").i(j).f("destination")})
		}
	}
	for i, r := range vs.GetTls() {
		for j, d := range r.GetRoute() {
			out = append(out, routeDest{d.GetDestination(), specPath.f("tls").i(i).f("route").i(j).f("destination")})
		}
	}
	return out
}

// checkDestination checks one destination's subset, host and port.
func (x *index) checkDestination(it *loaded, rd routeDest) {
	d := rd.d
	if d == nil || d.GetHost() == "" || strings.Contains(d.GetHost(), "*") {
		return
	}
	host := ResolveShortName(d.GetHost(), it.obj.Namespace)
	if subset := d.GetSubset(); subset != "" {
		if msg := x.subsetProblem(host, subset); msg != "" {
			it.problem(rd.path.f("subset"), msg, false)
		}
	}
	ports, known := x.servicePorts(host)
	onPlatform := x.platform.Suffix != "" && strings.HasSuffix(host, x.platform.Suffix)
	if !known && onPlatform && x.platform.Hosts != nil {
		p, found, ok := x.platform.Hosts(host)
		switch {
		case !ok:
			return // the platform cannot say yet
		case !found:
			it.problem(rd.path.f("host"), fmt.Sprintf("host %s is not a Service of the cluster, nor defined by any ServiceEntry", describeHost(d.GetHost(), host)), true)
			return
		}
		ports, known = p, true
	}
	switch {
	case !known && onPlatform:
		// A Kubernetes Service, and no registry to ask: the
		// configuration cannot say.
	case !known:
		it.problem(rd.path.f("host"), fmt.Sprintf("host %s is not defined by any ServiceEntry", describeHost(d.GetHost(), host)), true)
	case d.GetPort() != nil && !hasPort(ports, d.GetPort().GetNumber()):
		it.problem(rd.path.f("port").f("number"), fmt.Sprintf("port %d is not a port of %s (its ports: %s)", d.GetPort().GetNumber(), host, portList(ports)), true)
	case d.GetPort() == nil && distinctPorts(ports) > 1:
		it.problem(rd.path, fmt.Sprintf("%s has several ports (%s): set destination.port.number", host, portList(ports)), true)
	}
}

// subsetProblem says why a subset of host is not defined, or "".
func (x *index) subsetProblem(host, subset string) string {
	var defined, rules, invalid []string
	for drHost, list := range x.subsets {
		if !hostSubsetOf(host, drHost) {
			continue
		}
		for _, dr := range list {
			name := dr.key.Namespace + "/" + dr.key.Name
			has := contains(dr.names, subset)
			switch {
			case has && dr.valid:
				return ""
			case has:
				invalid = append(invalid, name)
			case dr.valid:
				rules = append(rules, name)
			default:
				rules = append(rules, name+" (invalid)")
			}
			defined = append(defined, dr.names...)
		}
	}
	switch {
	case len(invalid) > 0:
		sort.Strings(invalid)
		return fmt.Sprintf("subset %q is defined only by DestinationRule %s, which is invalid (see its errors)", subset, strings.Join(invalid, ", "))
	case len(rules) == 0:
		return fmt.Sprintf("subset %q: no DestinationRule for host %s defines subsets", subset, host)
	}
	sort.Strings(rules)
	sort.Strings(defined)
	return fmt.Sprintf("subset %q is not defined by the DestinationRule for host %s (%s defines: %s)",
		subset, host, strings.Join(rules, ", "), strings.Join(defined, ", "))
}

// servicePorts returns the ports of the ServiceEntries whose hosts cover
// host, and whether there is one.
func (x *index) servicePorts(host string) ([]*networking.ServicePort, bool) {
	if ports, ok := x.services[host]; ok {
		return ports, true
	}
	var ports []*networking.ServicePort
	known := false
	for seHost, p := range x.services {
		if strings.HasPrefix(seHost, "*") && hostSubsetOf(host, seHost) {
			ports, known = append(ports, p...), true
		}
	}
	return ports, known
}

// checkGateways warns about gateway references to no Gateway.
func (x *index) checkGateways(it *loaded, vs *networking.VirtualService) {
	for i, g := range vs.GetGateways() {
		if g == "mesh" {
			continue
		}
		ref := gatewayRef(g, it.obj.Namespace)
		if !x.gateways[ref] {
			it.problem(specPath.f("gateways").i(i), fmt.Sprintf("gateway %s is not defined", ref), true)
		}
	}
}

// gatewayRef resolves a gateway reference to "namespace/name": a bare
// name is in the VirtualService's namespace, "name.namespace" is legacy.
func gatewayRef(g, ns string) string {
	if strings.Contains(g, "/") {
		return g
	}
	if name, gwNS, dotted := strings.Cut(g, "."); dotted {
		return strings.SplitN(gwNS, ".", 2)[0] + "/" + name
	}
	return ns + "/" + g
}

// describeHost names a host as written and, if different, resolved.
func describeHost(written, resolved string) string {
	if written == resolved {
		return written
	}
	return fmt.Sprintf("%s (%s)", written, resolved)
}

// hasPort reports whether ports has number n.
func hasPort(ports []*networking.ServicePort, n uint32) bool {
	for _, p := range ports {
		if p.GetNumber() == n {
			return true
		}
	}
	return false
}

// distinctPorts counts the distinct port numbers.
func distinctPorts(ports []*networking.ServicePort) int {
	seen := map[uint32]bool{}
	for _, p := range ports {
		seen[p.GetNumber()] = true
	}
	return len(seen)
}

// portList formats port numbers for a message.
func portList(ports []*networking.ServicePort) string {
	seen := map[uint32]bool{}
	var nums []int
	for _, p := range ports {
		if !seen[p.GetNumber()] {
			seen[p.GetNumber()] = true
			nums = append(nums, int(p.GetNumber()))
		}
	}
	sort.Ints(nums)
	s := make([]string, len(nums))
	for i, n := range nums {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}
