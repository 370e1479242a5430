package config

import (
	"fmt"
	"sort"

	security "istio.io/api/security/v1beta1"
)

// validatePeerAuthentication applies Istio's rules for PeerAuthentication
// (pkg/config/validation ValidatePeerAuthentication): the selector's labels
// are valid, port-level modes need a selector (a mesh- or namespace-wide
// policy has no ports to speak of), and port numbers are 1–65535.
func validatePeerAuthentication(_ Meta, pa *security.PeerAuthentication, is *issues) {
	if sel := pa.GetSelector(); sel != nil {
		selectorProblems(is, specPath.f("selector").f("matchLabels"), sel.GetMatchLabels())
	}
	ports := pa.GetPortLevelMtls()
	if len(ports) == 0 {
		return
	}
	p := specPath.f("portLevelMtls")
	if len(pa.GetSelector().GetMatchLabels()) == 0 {
		is.err(p, "port-level mTLS needs a workload selector: a mesh- or namespace-wide PeerAuthentication cannot set portLevelMtls")
		return
	}
	keys := make([]uint32, 0, len(ports))
	for k := range ports {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, k := range keys {
		kp := p.k(fmt.Sprint(k))
		if k == 0 || k > 65535 {
			is.err(kp, fmt.Sprintf("port %d out of range: use 1-65535", k))
		}
		if ports[k] == nil {
			is.err(kp, "a port-level mTLS setting may not be null: set mode")
		}
	}
}
