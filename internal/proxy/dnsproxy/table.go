package dnsproxy

import (
	"net/netip"
	"strings"

	"github.com/weftmesh/weft/internal/nds"
)

// table is one immutable lookup table built from a name table: every name
// the proxy answers (lower case, with the trailing dot) and its addresses.
type table struct {
	names map[string]*record
}

// record is what one name resolves to.
type record struct {
	a    []netip.Addr // IPv4
	aaaa []netip.Addr // IPv6
}

// domainInfo is the proxy's place, for short names: its namespace and its
// domain without the namespace ("svc.cluster.local").
type domainInfo struct {
	namespace string
	domain    string
	firstPart string // "svc"
}

// newDomainInfo splits the proxy's DNS domain the way Istio's agent does
// (NewLocalDNSServer): a leading namespace label is dropped.
func newDomainInfo(namespace, domain string) domainInfo {
	parts := strings.Split(strings.Trim(domain, "."), ".")
	if len(parts) > 0 && parts[0] == namespace {
		parts = parts[1:]
	}
	d := domainInfo{namespace: namespace, domain: strings.Join(parts, ".")}
	if len(parts) > 0 {
		d.firstPart = parts[0]
	}
	return d
}

// buildTable turns a name table into a lookup table. Each host is
// answered as written; a Kubernetes entry with a short name and a
// namespace is also answered, as Istio's agent does (GenerateAltHosts),
// as NAME.NAMESPACE, NAME.NAMESPACE.svc and, for a proxy of the same
// namespace, NAME — but only when its host is in the proxy's domain
// (another cluster's NAME.NAMESPACE would be ambiguous). A name written as
// a host wins over the same name derived as a short form; hosts are
// visited in sorted order, so the result does not depend on map order.
func buildTable(nt nds.Table, d domainInfo) *table {
	t := &table{names: make(map[string]*record, len(nt))}
	hosts := nt.Hosts()
	recs := make([]*record, len(hosts))
	for i, h := range hosts {
		recs[i] = newRecord(nt[h].IPs)
		if recs[i] != nil {
			t.names[fqdn(h)] = recs[i]
		}
	}
	for i, h := range hosts {
		if recs[i] == nil {
			continue
		}
		for _, alt := range altNames(h, nt[h], d) {
			if _, taken := t.names[alt]; !taken {
				t.names[alt] = recs[i]
			}
		}
	}
	return t
}

// newRecord parses the addresses; nil when none parses (Istio skips such
// entries as malformed).
func newRecord(ips []string) *record {
	r := &record{}
	for _, s := range ips {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		if ip.Is4() {
			r.a = append(r.a, ip)
		} else {
			r.aaaa = append(r.aaaa, ip)
		}
	}
	if len(r.a) == 0 && len(r.aaaa) == 0 {
		return nil
	}
	return r
}

// altNames are the short forms of a Kubernetes entry (see buildTable).
func altNames(host string, ni nds.NameInfo, d domainInfo) []string {
	if ni.Registry != "Kubernetes" || ni.Shortname == "" || ni.Namespace == "" {
		return nil
	}
	if d.domain == "" || !strings.HasSuffix(strings.ToLower(host), d.domain) {
		return nil
	}
	short, ns := strings.ToLower(ni.Shortname), strings.ToLower(ni.Namespace)
	out := []string{short + "." + ns + "."}
	if d.firstPart != "" {
		out = append(out, short+"."+ns+"."+d.firstPart+".")
	}
	if ns == d.namespace {
		out = append(out, short+".")
	}
	return out
}

// fqdn lower-cases a name and ends it with a dot.
func fqdn(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

// lookup finds the record of qname (lower case, trailing dot): the name
// itself, else the closest wildcard host ("*.example.com." for
// "a.b.example.com."), as Istio's agent looks wildcards up.
func (t *table) lookup(qname string) (*record, bool) {
	if r, ok := t.names[qname]; ok {
		return r, true
	}
	for rest := qname; ; {
		i := strings.IndexByte(rest, '.')
		if i < 0 || i == len(rest)-1 {
			return nil, false
		}
		rest = rest[i+1:]
		if r, ok := t.names["*."+rest]; ok {
			return r, true
		}
	}
}

// searchBase returns the name qname stands for when a resolver appended
// the first search domain to a name of the table (Istio's agent answers
// "hello.default.svc.cluster.local.default.svc.cluster.local." with a CNAME
// to "hello.default.svc.cluster.local." and its addresses, which saves the
// client a round of search-list queries). Only the first search domain is
// tried, as Istio does: resolvers try it first.
func (t *table) searchBase(qname string, search []string) (string, *record, bool) {
	if len(search) == 0 {
		return "", nil, false
	}
	s := strings.Trim(strings.ToLower(search[0]), ".")
	if s == "" {
		return "", nil, false
	}
	base, ok := strings.CutSuffix(qname, "."+s+".")
	if !ok || base == "" || strings.HasSuffix(base, "."+s) {
		return "", nil, false
	}
	base += "."
	r, found := t.lookup(base)
	return base, r, found
}
