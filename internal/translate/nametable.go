package translate

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/cespare/xxhash/v2"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/nds"
)

// NameTableType is the NDS type URL (Istio's name table).
const NameTableType = nds.TypeURL

// Registry names in the name table (Istio's provider IDs).
const (
	registryKubernetes = "Kubernetes"
	registryExternal   = "External"
)

// NameTable returns the name table of proxy p, as Istio's NDS generator
// builds it (pilot/pkg/networking/core/... dns BuildNameTable): one entry
// per service the proxy sees (its scope: exportTo and Sidecar egress
// hosts), with
//
//   - the service's declared addresses that are IPs (CIDRs are skipped);
//   - else, when the proxy asks for auto-allocation (node metadata
//     DNS_AUTO_ALLOCATE), its auto-allocated addresses of the families the
//     proxy has (Istio's GetAllAddressesForProxy: IPv4 for a proxy with an
//     IPv4 address, IPv6 for one with an IPv6 address);
//   - else, for resolution NONE, its endpoints' IP addresses (Istio's
//     headless services);
//
// and no entry for a service with none of these. A host of the form
// NAME.NAMESPACE.svc.DOMAIN (DOMAIN the cluster domain, NAMESPACE the
// service's) is entered as Istio enters a Kubernetes service: registry
// "Kubernetes" with Shortname NAME and Namespace NAMESPACE, so that the
// agent also answers NAME (in that namespace), NAME.NAMESPACE and
// NAME.NAMESPACE.svc. weft's services of that form are ServiceEntries that
// stand in for Kubernetes services on one machine; other hosts are
// "External" and answered only as written.
func (t *Translator) NameTable(s *model.Snapshot, p *model.Proxy) nds.Table {
	st := t.c.state(s, t.o)
	sc, _ := st.scope(st.keyFor(p))
	return nameTable(sc.services, p, t.o.ClusterDomain)
}

func nameTable(services []*model.Service, p *model.Proxy, domain string) nds.Table {
	v4, v6 := proxyFamilies(p)
	out := nds.Table{}
	for _, svc := range services {
		ips := nameTableIPs(svc, p, v4, v6)
		if len(ips) == 0 {
			continue
		}
		ni := nds.NameInfo{IPs: ips, Registry: registryExternal}
		if name, ok := kubeShortName(svc, domain); ok {
			ni.Registry, ni.Shortname, ni.Namespace = registryKubernetes, name, svc.Namespace
		}
		if prev, ok := out[svc.Hostname]; ok {
			// One host seen in several namespaces (the scope keeps one per
			// host, so only through future registries): Istio merges the
			// addresses.
			ni.IPs = append(prev.IPs, ni.IPs...)
		}
		out[svc.Hostname] = ni
	}
	return out
}

// nameTableIPs returns the addresses the name table gives svc.
func nameTableIPs(svc *model.Service, p *model.Proxy, v4, v6 bool) []string {
	var out []string
	if len(svc.Addresses) > 0 {
		for _, a := range svc.Addresses {
			if _, err := netip.ParseAddr(a); err == nil {
				out = append(out, a)
			}
		}
		return out
	}
	if len(svc.AutoAllocated) > 0 {
		if !p.DNSAutoAllocate() {
			return nil
		}
		for _, a := range svc.AutoAllocated {
			ip, err := netip.ParseAddr(a)
			if err == nil && ((ip.Is4() && v4) || (ip.Is6() && v6)) {
				out = append(out, a)
			}
		}
		return out
	}
	if svc.Resolution == model.Passthrough {
		seen := map[string]bool{}
		for _, ep := range svc.Endpoints {
			if _, err := netip.ParseAddr(ep.Address); err == nil && !seen[ep.Address] {
				seen[ep.Address] = true
				out = append(out, ep.Address)
			}
		}
	}
	return out
}

// proxyFamilies reports whether the proxy has IPv4 and IPv6 addresses; a
// proxy with no parsable address counts as IPv4 only.
func proxyFamilies(p *model.Proxy) (v4, v6 bool) {
	for _, a := range p.IPs {
		if ip, err := netip.ParseAddr(a); err == nil {
			v4 = v4 || ip.Unmap().Is4()
			v6 = v6 || (ip.Is6() && !ip.Is4In6())
		}
	}
	if !v4 && !v6 {
		v4 = true
	}
	return v4, v6
}

// kubeShortName returns NAME when svc's host is NAME.NAMESPACE.svc.DOMAIN
// with NAMESPACE the service's own.
func kubeShortName(svc *model.Service, domain string) (string, bool) {
	suffix := "." + svc.Namespace + ".svc." + domain
	name, ok := strings.CutSuffix(svc.Hostname, suffix)
	if !ok || name == "" || strings.Contains(name, ".") || strings.HasPrefix(name, "*") {
		return "", false
	}
	return name, true
}

// addNameTable adds the name table to r for a proxy whose agent runs a
// DNS proxy (node metadata DNS_CAPTURE): one unnamed resource, as Istio
// sends it. Other proxies get no name table, so their NDS subscription
// (which they do not make) would never be answered.
func (t *Translator) addNameTable(r *Resources, sc *scope, p *model.Proxy) {
	if !p.DNSCapture() {
		return
	}
	nt := nameTable(sc.services, p, t.o.ClusterDomain)
	msg := nt.Message()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		// A dynamic message of strings always encodes; keep going without
		// a version rather than fail the proxy's other resources.
		b = []byte(fmt.Sprint(err))
	}
	r.NameTables = map[string]proto.Message{"": msg}
	r.Versions[NameTableType] = fmt.Sprintf("%016x", xxhash.Sum64(b))
}
