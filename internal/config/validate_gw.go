package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// unixPrefix marks a unix domain socket address.
const unixPrefix = "unix://"

// validateGateway applies Istio's Gateway rules (ValidateGateway,
// validateServer, validateTLSOptions).
func validateGateway(meta Meta, gw *networking.Gateway, is *issues) {
	if !isDNSLabel(meta.Name) {
		is.err("metadata.name", fmt.Sprintf("invalid gateway name %q: it must be a DNS label (no dots)", meta.Name))
	}
	if len(gw.GetServers()) == 0 {
		is.err(specPath.f("servers"), "a gateway needs at least one server")
	}
	portNames := map[string]bool{}
	for i, s := range gw.GetServers() {
		p := specPath.f("servers").i(i)
		if s == nil {
			is.err(p, "a server may not be null")
			continue
		}
		validateServer(s, p, is)
		if s.GetPort() != nil {
			if portNames[s.GetPort().GetName()] {
				is.err(p.f("port").f("name"), fmt.Sprintf("server port names must be unique: %q is used twice", s.GetPort().GetName()))
			}
			portNames[s.GetPort().GetName()] = true
			if !protocolIsHTTP(s.GetPort().GetProtocol()) && s.GetTls().GetHttpsRedirect() {
				is.warn(p.f("tls").f("httpsRedirect"), "httpsRedirect only applies to HTTP servers")
			}
		}
	}
	labelsProblems(is, specPath.f("selector"), gw.GetSelector())
}

// validateServer checks one gateway server.
func validateServer(s *networking.Server, p fieldPath, is *issues) {
	if len(s.GetHosts()) == 0 {
		is.err(p.f("hosts"), "a server needs at least one host")
	}
	for i, h := range s.GetHosts() {
		for _, msg := range namespaceSlashHostProblems(h, true) {
			is.err(p.f("hosts").i(i), msg)
		}
	}
	portOK := validateServerPort(s.GetPort(), s.GetBind(), p.f("port"), is)
	validateBind(s.GetPort(), s.GetBind(), p.f("bind"), is)
	validateServerTLS(s.GetTls(), p.f("tls"), is)
	if !portOK {
		return
	}
	proto := s.GetPort().GetProtocol()
	switch {
	case protocolIsTLS(proto) && s.GetTls() == nil:
		is.err(p.f("tls"), fmt.Sprintf("a server with protocol %s needs TLS settings", strings.ToUpper(proto)))
	case !protocolIsTLS(proto) && s.GetTls() != nil && protocolIsHTTP(proto):
		t := s.GetTls()
		if !t.GetHttpsRedirect() || t.GetServerCertificate() != "" || t.GetPrivateKey() != "" || t.GetCaCertificates() != "" {
			is.err(p.f("tls"), "a plain-text HTTP server can only have tls.httpsRedirect")
		}
	case !protocolIsTLS(proto) && s.GetTls() != nil:
		is.err(p.f("tls"), fmt.Sprintf("a server with protocol %s cannot have TLS settings", strings.ToUpper(proto)))
	}
}

// validateServerPort checks a server port; it reports whether the port is
// usable for the protocol checks that follow.
func validateServerPort(port *networking.Port, bind string, p fieldPath, is *issues) bool {
	if port == nil {
		is.err(p, "a server needs a port")
		return false
	}
	ok := true
	if protocolProblem(port.GetProtocol()) != "" || port.GetProtocol() == "" {
		is.err(p.f("protocol"), fmt.Sprintf("invalid protocol %q: use HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, MONGO, REDIS or MYSQL", port.GetProtocol()))
		ok = false
	}
	if port.GetNumber() > 0 || !strings.HasPrefix(bind, unixPrefix) {
		if msg := portProblem(port.GetNumber()); msg != "" {
			is.err(p.f("number"), msg)
			ok = false
		}
	}
	if port.GetTargetPort() > 0 { //nolint:staticcheck // deprecated field, still accepted
		is.err(p.f("targetPort"), "targetPort has no effect on gateways")
	}
	if port.GetName() == "" {
		is.err(p.f("name"), "a server port needs a name")
	}
	return ok
}

// validateBind checks a server's bind address: an IP, or unix:// with
// port 0.
func validateBind(port *networking.Port, bind string, p fieldPath, is *issues) {
	if sock, ok := strings.CutPrefix(bind, unixPrefix); ok {
		is.check(p, unixAddressProblem(sock))
		if port.GetNumber() != 0 {
			is.err(p, "the port number must be 0 for a unix domain socket")
		}
		return
	}
	if bind != "" {
		is.check(p, ipProblem(bind))
	}
}

// validateServerTLS checks server TLS settings (validateTLSOptions).
func validateServerTLS(t *networking.ServerTLSSettings, p fieldPath, is *issues) {
	if t == nil {
		return
	}
	mode := t.GetMode()
	if (t.GetMinProtocolVersion() == networking.ServerTLSSettings_TLSV1_0 || t.GetMinProtocolVersion() == networking.ServerTLSSettings_TLSV1_1) && len(t.GetCipherSuites()) == 0 {
		is.warn(p.f("minProtocolVersion"), "TLS versions below 1.2 need compatible cipherSuites: the defaults no longer include them")
	}
	switch mode {
	case networking.ServerTLSSettings_ISTIO_MUTUAL:
		for _, f := range []struct{ name, v string }{
			{"serverCertificate", t.GetServerCertificate()}, {"privateKey", t.GetPrivateKey()},
			{"caCertificates", t.GetCaCertificates()}, {"credentialName", t.GetCredentialName()},
		} {
			if f.v != "" {
				is.err(p.f(f.name), fmt.Sprintf("ISTIO_MUTUAL TLS cannot have %s", f.name))
			}
		}
		return
	case networking.ServerTLSSettings_PASSTHROUGH, networking.ServerTLSSettings_AUTO_PASSTHROUGH:
		if t.GetServerCertificate() != "" || t.GetPrivateKey() != "" || t.GetCaCertificates() != "" || t.GetCredentialName() != "" || t.GetCaCrl() != "" {
			is.warn(p, fmt.Sprintf("%s mode does not use certificates: they are ignored", mode))
		}
		return
	}
	if t.GetCredentialName() != "" || len(t.GetCredentialNames()) > 0 || len(t.GetTlsCertificates()) > 0 {
		if t.GetCaCrl() != "" && t.GetCredentialName() != "" {
			is.err(p.f("caCrl"), "caCrl cannot be set with credentialName: put the CRL in the credential")
		}
		return
	}
	switch mode {
	case networking.ServerTLSSettings_SIMPLE:
		requireTLSFiles(t, p, "SIMPLE", false, is)
		if t.GetCaCrl() != "" {
			is.err(p.f("caCrl"), "caCrl is not supported with SIMPLE TLS")
		}
	case networking.ServerTLSSettings_MUTUAL, networking.ServerTLSSettings_OPTIONAL_MUTUAL:
		requireTLSFiles(t, p, mode.String(), true, is)
	}
}

// requireTLSFiles reports the certificate files a TLS mode needs.
func requireTLSFiles(t *networking.ServerTLSSettings, p fieldPath, mode string, needCA bool, is *issues) {
	if t.GetServerCertificate() == "" {
		is.err(p.f("serverCertificate"), mode+" TLS needs a server certificate (or credentialName)")
	}
	if t.GetPrivateKey() == "" {
		is.err(p.f("privateKey"), mode+" TLS needs a private key (or credentialName)")
	}
	if needCA && t.GetCaCertificates() == "" {
		is.err(p.f("caCertificates"), mode+" TLS needs a client CA bundle (or credentialName)")
	}
}

// namespaceSlashHostProblems checks a "namespace/host" entry of a gateway
// server or a sidecar egress listener
// (agent.ValidateNamespaceSlashWildcardHostname). Gateways also accept a
// plain host and an IP; sidecars accept "~" as the namespace.
func namespaceSlashHostProblems(entry string, gateway bool) []string {
	ns, host, ok := strings.Cut(entry, "/")
	if !ok {
		if gateway {
			return hostPartProblems(entry, true)
		}
		return []string{"a host must be of the form namespace/dnsName"}
	}
	var out []string
	if ns == "" || host == "" {
		out = append(out, "the namespace and the dnsName of a host entry cannot be empty")
	}
	if ns != "*" && ns != "." && (gateway || ns != "~") && !isDNSLabel(ns) {
		out = append(out, fmt.Sprintf("invalid namespace %q", ns))
	}
	return append(out, hostPartProblems(host, gateway)...)
}

// hostPartProblems checks the dnsName part of a namespace/host entry: a
// fully qualified name or wildcard (short names are not allowed), or an IP
// for gateways.
func hostPartProblems(host string, gateway bool) []string {
	var out []string
	if host != "*" && !strings.Contains(host, ".") && !(gateway && isIP(host)) {
		out = append(out, fmt.Sprintf("short names (%q) are not allowed here: write a fully qualified name", host))
	}
	if msg := wildcardDomainProblem(host); msg != "" && !(gateway && isIP(host)) {
		out = append(out, msg)
	}
	if msg := partialWildcardProblem(host); msg != "" {
		out = append(out, msg)
	}
	return out
}

// validateSidecar applies Istio's Sidecar rules (ValidateSidecar).
func validateSidecar(sc *networking.Sidecar, is *issues) {
	if sel := sc.GetWorkloadSelector(); sel != nil {
		selectorProblems(is, specPath.f("workloadSelector").f("labels"), sel.GetLabels())
	}
	if len(sc.GetEgress()) == 0 && len(sc.GetIngress()) == 0 && sc.GetOutboundTrafficPolicy() == nil && sc.GetInboundConnectionPool() == nil {
		is.err(specPath, "empty sidecar configuration: set egress, ingress, outboundTrafficPolicy or inboundConnectionPool")
		return
	}
	ports := map[uint32]bool{}
	for i, in := range sc.GetIngress() {
		validateSidecarIngress(in, ports, specPath.f("ingress").i(i), is)
	}
	validateConnectionPool(sc.GetInboundConnectionPool(), specPath.f("inboundConnectionPool"), is)
	validateSidecarEgress(sc.GetEgress(), is)
	validateOutboundTrafficPolicy(sc.GetOutboundTrafficPolicy(), specPath.f("outboundTrafficPolicy"), is)
}

// validateSidecarIngress checks one ingress listener.
func validateSidecarIngress(in *networking.IstioIngressListener, ports map[uint32]bool, p fieldPath, is *issues) {
	if in == nil {
		is.err(p, "an ingress listener may not be null")
		return
	}
	if in.GetPort() == nil {
		is.err(p.f("port"), "an ingress listener needs a port")
		return
	}
	sidecarPortProblems(in.GetPort(), p.f("port"), is)
	if in.GetBind() != "" {
		is.check(p.f("bind"), ipProblem(in.GetBind()))
	}
	if ports[in.GetPort().GetNumber()] {
		is.err(p.f("port").f("number"), "ports of IP-bound listeners must be unique")
	}
	ports[in.GetPort().GetNumber()] = true
	if ep := in.GetDefaultEndpoint(); ep != "" {
		defaultEndpointProblems(ep, p.f("defaultEndpoint"), is)
	}
	if t := in.GetTls(); t != nil {
		tp := p.f("tls")
		if len(t.GetSubjectAltNames()) > 0 {
			is.err(tp.f("subjectAltNames"), "subjectAltNames is not supported in sidecar ingress TLS")
		}
		if t.GetHttpsRedirect() {
			is.err(tp.f("httpsRedirect"), "httpsRedirect is not supported in a sidecar")
		}
		if t.GetCredentialName() != "" {
			is.err(tp.f("credentialName"), "credentialName is not supported in a sidecar")
		}
		if m := t.GetMode(); m == networking.ServerTLSSettings_ISTIO_MUTUAL || m == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
			is.err(tp.f("mode"), fmt.Sprintf("mode %s is not allowed in sidecar ingress TLS", m))
		}
		validateServerTLS(t, tp, is)
	}
	validateConnectionPool(in.GetConnectionPool(), p.f("connectionPool"), is)
}

// defaultEndpointProblems checks an ingress defaultEndpoint: a loopback or
// any-address IP with a port, ":port", or a unix socket.
func defaultEndpointProblems(ep string, p fieldPath, is *issues) {
	if sock, ok := strings.CutPrefix(ep, unixPrefix); ok {
		is.check(p, unixAddressProblem(sock))
		return
	}
	host, portText, err := net.SplitHostPort(ep)
	if err != nil {
		is.err(p, fmt.Sprintf("invalid defaultEndpoint %q: %v", ep, err))
		return
	}
	switch host {
	case "", "127.0.0.1", "0.0.0.0", "::1", "::":
	default:
		is.err(p, "defaultEndpoint must be 127.0.0.1:PORT, 0.0.0.0:PORT, [::1]:PORT, [::]:PORT, :PORT or unix:///path")
	}
	port, err := strconv.ParseUint(portText, 10, 32)
	if err != nil {
		is.err(p, fmt.Sprintf("the defaultEndpoint port %q is not a number", portText))
		return
	}
	is.check(p, portProblem(uint32(port)))
}

// sidecarPortProblems checks a sidecar listener port.
func sidecarPortProblems(port *networking.SidecarPort, p fieldPath, is *issues) {
	if port.GetName() != "" {
		is.check(p.f("name"), portNameProblem(port.GetName()))
	}
	is.check(p.f("protocol"), protocolProblem(port.GetProtocol()))
	is.check(p.f("number"), portProblem(port.GetNumber()))
	if port.GetTargetPort() > 0 { //nolint:staticcheck // deprecated field, still accepted
		is.err(p.f("targetPort"), "targetPort has no effect on sidecars")
	}
}

// validateSidecarEgress checks the egress listeners: one catch-all (no
// port) at most, last; unique ports; hosts in namespace/dnsName form.
func validateSidecarEgress(egress []*networking.IstioEgressListener, is *issues) {
	ports := map[uint32]bool{}
	catchAll := false
	for i, e := range egress {
		p := specPath.f("egress").i(i)
		if e == nil {
			is.err(p, "an egress listener may not be null")
			continue
		}
		if e.GetPort() == nil {
			switch {
			case catchAll:
				is.err(p, "only one egress listener may have no port")
			case i != len(egress)-1:
				is.err(p, "the egress listener without a port must be the last one")
			}
			catchAll = true
		} else {
			egressPortProblems(e, ports, p, is)
		}
		if len(e.GetHosts()) == 0 {
			is.err(p.f("hosts"), "an egress listener needs at least one host")
		}
		for j, h := range e.GetHosts() {
			for _, msg := range namespaceSlashHostProblems(h, false) {
				is.err(p.f("hosts").i(j), msg)
			}
		}
	}
}

// egressPortProblems checks the port and bind of an egress listener.
func egressPortProblems(e *networking.IstioEgressListener, ports map[uint32]bool, p fieldPath, is *issues) {
	port := e.GetPort()
	if port.GetNumber() == 0 {
		is.check(p.f("port").f("protocol"), protocolProblem(port.GetProtocol()))
		sock, ok := strings.CutPrefix(e.GetBind(), unixPrefix)
		if !ok {
			is.err(p.f("bind"), "a listener with port 0 needs a unix:// bind address")
		} else {
			is.check(p.f("bind"), unixAddressProblem(sock))
		}
		return
	}
	sidecarPortProblems(port, p.f("port"), is)
	if e.GetBind() != "" {
		is.check(p.f("bind"), ipProblem(e.GetBind()))
	}
	if ports[port.GetNumber()] {
		is.err(p.f("port").f("number"), "ports of IP-bound listeners must be unique")
	}
	ports[port.GetNumber()] = true
}

// validateOutboundTrafficPolicy checks outboundTrafficPolicy: an
// egressProxy only with ALLOW_ANY, and then a valid destination with a port.
func validateOutboundTrafficPolicy(tp *networking.OutboundTrafficPolicy, p fieldPath, is *issues) {
	ep := tp.GetEgressProxy()
	if ep == nil {
		return
	}
	if tp.GetMode() != networking.OutboundTrafficPolicy_ALLOW_ANY {
		is.err(p.f("egressProxy"), "egressProxy can only be set with mode ALLOW_ANY")
		return
	}
	is.check(p.f("egressProxy").f("host"), fqdnProblem(ep.GetHost()))
	if ep.GetPort() == nil {
		is.err(p.f("egressProxy").f("port"), "egressProxy needs a port")
		return
	}
	destinationProblems(ep, p.f("egressProxy"), true, is)
}
