package config

import (
	"fmt"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// validateServiceEntry applies Istio's ServiceEntry rules
// (ValidateServiceEntry). weft adds one warning: a STATIC entry with
// neither endpoints nor a workloadSelector has no endpoints at all.
func validateServiceEntry(meta Meta, se *networking.ServiceEntry, is *issues) {
	if sel := se.GetWorkloadSelector(); sel != nil {
		selectorProblems(is, specPath.f("workloadSelector").f("labels"), sel.GetLabels())
		if se.GetEndpoints() != nil {
			is.err(specPath.f("workloadSelector"), "only one of workloadSelector and endpoints may be set")
		}
	}
	validateSEHosts(se.GetHosts(), is)
	cidr := false
	for i, a := range se.GetAddresses() {
		cidr = cidr || strings.Contains(a, "/")
		is.check(specPath.f("addresses").i(i), subnetProblem(a))
	}
	res := se.GetResolution()
	if cidr && res != networking.ServiceEntry_NONE && res != networking.ServiceEntry_STATIC {
		is.err(specPath.f("addresses"), "CIDR addresses are allowed only with resolution NONE or STATIC")
	}
	portNames := validateSEPorts(se, is)
	switch res {
	case networking.ServiceEntry_NONE:
		if len(se.GetEndpoints()) > 0 {
			is.err(specPath.f("endpoints"), "resolution NONE takes no endpoints")
		}
		if se.GetWorkloadSelector() != nil {
			is.warn(specPath.f("workloadSelector"), "workloadSelector has no effect with resolution NONE")
		}
	case networking.ServiceEntry_STATIC:
		if len(se.GetEndpoints()) == 0 && se.GetWorkloadSelector() == nil {
			is.warn(specPath.f("endpoints"), "resolution STATIC with neither endpoints nor a workloadSelector: the service has no endpoints")
		}
		for i, ep := range se.GetEndpoints() {
			p := specPath.f("endpoints").i(i)
			if ep == nil {
				is.err(p, "an endpoint cannot be null")
				continue
			}
			validateWorkloadEntry(ep, portNames, false, p, is)
		}
	case networking.ServiceEntry_DNS, networking.ServiceEntry_DNS_ROUND_ROBIN:
		validateDNSServiceEntry(se, portNames, is)
	}
	if res != networking.ServiceEntry_NONE && len(se.GetHosts()) > 1 {
		for i, port := range se.GetPorts() {
			if port != nil && !protocolIsHTTP(port.GetProtocol()) && !protocolIsTLS(port.GetProtocol()) {
				is.err(specPath.f("ports").i(i).f("protocol"), "several hosts need HTTP or TLS ports (plain TCP cannot tell the hosts apart) unless resolution is NONE")
				break
			}
		}
	}
	exportToProblems(is, specPath.f("exportTo"), meta.Namespace, se.GetExportTo(), true)
}

// validateSEHosts checks the hosts of a ServiceEntry.
func validateSEHosts(hosts []string, is *issues) {
	if len(hosts) == 0 {
		is.err(specPath.f("hosts"), "a service entry needs at least one host")
	}
	for i, h := range hosts {
		p := specPath.f("hosts").i(i)
		if h == "*" {
			is.err(p, `"*" is not a valid service entry host`)
			continue
		}
		is.check(p, wildcardDomainProblem(h))
		if msg := partialWildcardProblem(h); msg != "" {
			is.warn(p, msg)
		}
	}
}

// validateSEPorts checks ports (unique numbers and names, valid names,
// protocols and numbers) and returns the set of port names.
func validateSEPorts(se *networking.ServiceEntry, is *issues) map[string]bool {
	names := map[string]bool{}
	numbers := map[uint32]bool{}
	for i, port := range se.GetPorts() {
		p := specPath.f("ports").i(i)
		if port == nil {
			is.err(p, "a service entry port may not be null")
			continue
		}
		if names[port.GetName()] {
			is.err(p.f("name"), fmt.Sprintf("port name %q is already defined", port.GetName()))
		}
		names[port.GetName()] = true
		if numbers[port.GetNumber()] {
			is.err(p.f("number"), fmt.Sprintf("port %d is already defined", port.GetNumber()))
		}
		numbers[port.GetNumber()] = true
		is.check(p.f("name"), portNameProblem(port.GetName()))
		is.check(p.f("protocol"), protocolProblem(port.GetProtocol()))
		is.check(p.f("number"), portProblem(port.GetNumber()))
		if port.GetTargetPort() != 0 {
			is.check(p.f("targetPort"), portProblem(port.GetTargetPort()))
			if se.GetResolution() == networking.ServiceEntry_NONE {
				is.warn(p.f("targetPort"), "targetPort has no effect with resolution NONE")
			}
		}
	}
	return names
}

// validateDNSServiceEntry checks the DNS and DNS_ROUND_ROBIN rules.
func validateDNSServiceEntry(se *networking.ServiceEntry, portNames map[string]bool, is *issues) {
	res := se.GetResolution()
	if len(se.GetEndpoints()) == 0 {
		for i, h := range se.GetHosts() {
			if fqdnProblem(h) != "" {
				is.err(specPath.f("hosts").i(i), fmt.Sprintf("with resolution %s and no endpoints, hosts are resolved: %q must be a fully qualified name", res, h))
			}
		}
	}
	if res == networking.ServiceEntry_DNS_ROUND_ROBIN && len(se.GetEndpoints()) > 1 {
		is.err(specPath.f("endpoints"), "resolution DNS_ROUND_ROBIN takes 0 or 1 endpoint")
	}
	for i, ep := range se.GetEndpoints() {
		p := specPath.f("endpoints").i(i)
		if ep == nil {
			is.err(p, "an endpoint cannot be null")
			continue
		}
		if a := ep.GetAddress(); !isIP(a) && fqdnProblem(a) != "" {
			is.err(p.f("address"), fmt.Sprintf("endpoint address %q is not a valid domain name or IP address", a))
		}
		labelsProblems(is, p.f("labels"), ep.GetLabels())
		endpointPortsProblems(ep, portNames, p, is)
	}
	if se.GetWorkloadSelector() != nil {
		is.warn(specPath.f("workloadSelector"), fmt.Sprintf("workloadSelector has no effect with resolution %s", res))
	}
	if len(se.GetAddresses()) > 0 && len(se.GetHosts()) > 1 {
		for _, port := range se.GetPorts() {
			if p := strings.ToUpper(port.GetProtocol()); p == "" || p == "TCP" || protocolIsTLS(p) || p == "MONGO" || p == "REDIS" || p == "MYSQL" {
				is.warn(specPath.f("hosts"), "a service entry with addresses and a TCP port should have a single host")
				break
			}
		}
	}
}

// endpointPortsProblems checks an endpoint's port map against the service
// ports.
func endpointPortsProblems(ep *networking.WorkloadEntry, portNames map[string]bool, p fieldPath, is *issues) {
	for _, name := range sortedKeys(ep.GetPorts()) {
		pp := p.f("ports").k(name)
		if portNames != nil && !portNames[name] {
			is.err(pp, fmt.Sprintf("endpoint port %q is not a port name of the service entry", name))
		}
		is.check(pp, portNameProblem(name))
		is.check(pp, portProblem(ep.GetPorts()[name]))
	}
}

// validateWorkloadEntry checks a WorkloadEntry (or a ServiceEntry
// endpoint, with the entry's port names and allowFQDN false for STATIC):
// an address that is an IP, a unix socket or (allowFQDN) a domain name;
// valid ports and labels.
func validateWorkloadEntry(we *networking.WorkloadEntry, portNames map[string]bool, allowFQDN bool, p fieldPath, is *issues) {
	addr := we.GetAddress()
	switch {
	case addr == "" && we.GetNetwork() == "":
		is.err(p.f("address"), "address is required")
	case addr == "":
		is.warn(p.f("address"), fmt.Sprintf("address is unset, with network %q", we.GetNetwork()))
	case strings.HasPrefix(addr, unixPrefix):
		is.check(p.f("address"), unixAddressProblem(strings.TrimPrefix(addr, unixPrefix)))
		if len(we.GetPorts()) > 0 {
			is.err(p.f("ports"), "a unix socket endpoint takes no ports")
		}
		if portNames != nil && len(portNames) != 1 {
			is.err(p.f("address"), "a unix socket endpoint needs exactly one service port")
		}
	case isIP(addr):
	case !allowFQDN:
		is.err(p.f("address"), fmt.Sprintf("endpoint address %q is not an IP address (resolution STATIC needs IP addresses)", addr))
	case fqdnProblem(addr) != "":
		is.err(p.f("address"), fmt.Sprintf("address %q is not a valid domain name or IP address", addr))
	}
	endpointPortsProblems(we, portNames, p, is)
	labelsProblems(is, p.f("labels"), we.GetLabels())
}
