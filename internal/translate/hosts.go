package translate

import (
	"slices"
	"strings"

	"github.com/weftmesh/weft/internal/model"
)

// serviceDomains returns the Host / :authority values under which a proxy
// in DNS domain proxyDomain may address svc on port, as Istio's
// generateVirtualHostDomains with the port appended: the FQDN and FQDN:port,
// the short names the proxy's DNS search path resolves (altHosts, each with
// and without the port) and the service's addresses. alt returns the short
// names alone (so that they can be dropped where they would shadow another
// service's FQDN).
func serviceDomains(svc *model.Service, port uint32, proxyDomain string) (domains, alt []string) {
	alt = altHosts(svc.Hostname, port, proxyDomain)
	domains = appendDomainPort(nil, svc.Hostname, port)
	domains = append(domains, alt...)
	for _, a := range svc.Addresses {
		if a == "" || a == "0.0.0.0" || a == "::" || strings.Contains(a, "/") {
			continue // unspecified and CIDR addresses are not Host values
		}
		domains = appendDomainPort(domains, a, port)
	}
	return domains, alt
}

// appendDomainPort appends domain and domain:port.
func appendDomainPort(domains []string, domain string, port uint32) []string {
	return append(domains, ipv6Compliant(domain), hostPort(domain, port))
}

// altHosts returns the short forms of hostname a proxy in DNS domain
// proxyDomain (e.g. "default.svc.cluster.local") can use, with and without
// the port, as Istio's GenerateAltVirtualHosts:
//   - Kubernetes-style proxy domains (".svc."): for a service of the same
//     namespace "name", "name.ns.svc", "name.ns"; of another namespace
//     "name.ns", "name.ns.svc"; nothing for names outside the cluster
//     domain;
//   - other domains: the part of hostname not shared with the proxy's
//     domain, and that part plus the first shared label.
func altHosts(hostname string, port uint32, proxyDomain string) []string {
	if strings.Contains(proxyDomain, ".svc.") {
		if strings.HasSuffix(hostname, removeSvcNamespace(proxyDomain)) {
			return kubernetesAltHosts(hostname, port, proxyDomain)
		}
		return nil
	}
	unique, shared := uniqueAndSharedDomain(hostname, proxyDomain)
	if len(shared) == 0 {
		return nil
	}
	u := strings.Join(unique, ".")
	out := appendDomainPort(nil, u, port)
	if len(unique) == 2 {
		out = appendDomainPort(out, u+"."+shared[0], port)
	}
	return out
}

// removeSvcNamespace strips the namespace label from a Kubernetes DNS
// domain: "ns.svc.cluster.local" → ".svc.cluster.local".
func removeSvcNamespace(domain string) string {
	if i := strings.Index(domain, ".svc."); i > 0 {
		return domain[i:]
	}
	return domain
}

// kubernetesAltHosts implements the ".svc." case of altHosts.
func kubernetesAltHosts(hostname string, port uint32, proxyDomain string) []string {
	id := strings.Index(proxyDomain, ".svc.")
	ih := strings.Index(hostname, ".svc.")
	if ih <= 0 {
		return nil
	}
	ns := strings.Index(hostname, ".")
	if ns+1 >= len(hostname) || ns+1 > ih {
		return nil
	}
	name, nsName := hostname[:ns], hostname[:ih]
	if hostname[ns+1:ih] == proxyDomain[:id] { // same namespace
		return []string{
			name, hostPort(name, port),
			nsName + ".svc", hostPort(nsName+".svc", port),
			nsName, hostPort(nsName, port),
		}
	}
	return []string{
		nsName, hostPort(nsName, port),
		nsName + ".svc", hostPort(nsName+".svc", port),
	}
}

// uniqueAndSharedDomain splits hostname into the labels it does not share
// with proxyDomain's suffix and those it shares ("foo.ns1.svc.cluster.local"
// and "ns2.svc.cluster.local" give [foo ns1] and [svc cluster local]).
func uniqueAndSharedDomain(hostname, proxyDomain string) (unique, shared []string) {
	h := strings.Split(hostname, ".")
	d := strings.Split(proxyDomain, ".")
	n := 0
	for n < len(h) && n < len(d) && h[len(h)-1-n] == d[len(d)-1-n] {
		n++
	}
	if n == 0 {
		return h, nil
	}
	return slices.Clone(h[:len(h)-n]), slices.Clone(h[len(h)-n:])
}

// domainSet tracks the domains already given to a virtual host of one
// route configuration: Envoy rejects a domain that appears twice, and the
// first virtual host to claim it keeps it (Istio's dedupeDomains).
type domainSet struct {
	used  map[string]bool
	fqdns map[string]bool // every service and VirtualService host, with and without port
}

func newDomainSet() *domainSet {
	return &domainSet{used: map[string]bool{}, fqdns: map[string]bool{}}
}

// dedupe returns domains without those already used and without short
// names (from alt) that are another service's full name, and marks the
// rest used.
func (d *domainSet) dedupe(domains, alt []string) []string {
	out := domains[:0:0]
	for _, dom := range domains {
		l := strings.ToLower(dom)
		if d.used[l] || (slices.Contains(alt, dom) && d.fqdns[dom]) {
			continue
		}
		d.used[l] = true
		out = append(out, dom)
	}
	return out
}
