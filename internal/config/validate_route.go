package config

import (
	"fmt"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// httpRouteDestinations checks the weighted destinations of an http route.
func httpRouteDestinations(dests []*networking.HTTPRouteDestination, p fieldPath, is *issues) {
	weights := make([]int32, 0, len(dests))
	for i, d := range dests {
		dp := p.i(i)
		if d == nil {
			is.err(dp, "a route destination may not be null")
			continue
		}
		destinationProblems(d.GetDestination(), dp.f("destination"), true, is)
		headerOperationProblems(d.GetHeaders(), dp.f("headers"), is)
		weights = append(weights, d.GetWeight())
		if d.GetWeight() < 0 {
			is.err(dp.f("weight"), fmt.Sprintf("weight %d must not be negative", d.GetWeight()))
		}
	}
	weightSum(weights, p, is)
}

// routeDestinations checks the weighted destinations of a tcp or tls route.
func routeDestinations(dests []*networking.RouteDestination, p fieldPath, is *issues) {
	weights := make([]int32, 0, len(dests))
	for i, d := range dests {
		dp := p.i(i)
		if d == nil {
			is.err(dp, "a route destination may not be null")
			continue
		}
		destinationProblems(d.GetDestination(), dp.f("destination"), true, is)
		weights = append(weights, d.GetWeight())
		if d.GetWeight() < 0 {
			is.err(dp.f("weight"), fmt.Sprintf("weight %d must not be negative", d.GetWeight()))
		}
	}
	weightSum(weights, p, is)
}

// weightSum applies Istio's rule for several destinations: weights are
// relative proportions (a destination receives weight/sum), so they must
// not all be 0. A sum other than 100 is accepted as Istio does, with a
// warning, since older Istio required 100 and most configurations mean it.
func weightSum(weights []int32, p fieldPath, is *issues) {
	if len(weights) < 2 {
		return
	}
	var total int64
	for _, w := range weights {
		if w > 0 {
			total += int64(w)
		}
	}
	switch {
	case total == 0:
		is.err(p, "the total weight of the destinations is 0: set the weight of at least one destination")
	case total != 100:
		is.warn(p, fmt.Sprintf("the weights sum to %d, not 100: they are used as relative proportions (weight/%d)", total, total))
	}
}

// destinationProblems checks a destination: a host (not "*"), a subset
// name, a port.
func destinationProblems(d *networking.Destination, p fieldPath, required bool, is *issues) {
	if d == nil {
		if required {
			is.err(p, "destination is required")
		}
		return
	}
	switch h := d.GetHost(); {
	case h == "":
		is.err(p.f("host"), "destination host is required")
	case h == "*":
		is.err(p.f("host"), `"*" is not a valid destination host`)
	default:
		is.check(p.f("host"), wildcardDomainProblem(h))
	}
	if s := d.GetSubset(); s != "" && !isDNSLabel(s) {
		is.err(p.f("subset"), fmt.Sprintf("invalid subset name %q: it must be a DNS label", s))
	}
	if d.GetPort() != nil {
		is.check(p.f("port").f("number"), portProblem(d.GetPort().GetNumber()))
	}
}

// grpcStatuses are the gRPC status code names a fault may return.
var grpcStatuses = map[string]bool{
	"OK": true, "CANCELLED": true, "UNKNOWN": true, "INVALID_ARGUMENT": true,
	"DEADLINE_EXCEEDED": true, "NOT_FOUND": true, "ALREADY_EXISTS": true,
	"PERMISSION_DENIED": true, "RESOURCE_EXHAUSTED": true, "FAILED_PRECONDITION": true,
	"ABORTED": true, "OUT_OF_RANGE": true, "UNIMPLEMENTED": true, "INTERNAL": true,
	"UNAVAILABLE": true, "DATA_LOSS": true, "UNAUTHENTICATED": true,
}

// validateFault checks fault injection (validateHTTPFaultInjection).
func validateFault(f *networking.HTTPFaultInjection, p fieldPath, is *issues) {
	if f == nil {
		return
	}
	if f.GetAbort() == nil && f.GetDelay() == nil {
		is.err(p, "fault injection needs an abort and/or a delay")
	}
	if a := f.GetAbort(); a != nil {
		ap := p.f("abort")
		is.check(ap.f("percentage").f("value"), percentageProblem(a.GetPercentage()))
		switch t := a.GetErrorType().(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			is.check(ap.f("httpStatus"), httpStatusProblem(uint32(max(t.HttpStatus, 0))))
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			if !grpcStatuses[t.GrpcStatus] {
				is.err(ap.f("grpcStatus"), fmt.Sprintf("gRPC status %q is not a status code name such as NOT_FOUND or UNAVAILABLE", t.GrpcStatus))
			}
		case *networking.HTTPFaultInjection_Abort_Http2Error:
			is.err(ap.f("http2Error"), "HTTP/2 abort fault injection is not supported")
		default:
			is.warn(ap, "abort configured without an error type (httpStatus or grpcStatus)")
		}
	}
	if d := f.GetDelay(); d != nil {
		dp := p.f("delay")
		is.check(dp.f("percentage").f("value"), percentageProblem(d.GetPercentage()))
		switch t := d.GetHttpDelayType().(type) {
		case *networking.HTTPFaultInjection_Delay_FixedDelay:
			is.check(dp.f("fixedDelay"), durationProblem(t.FixedDelay))
		case *networking.HTTPFaultInjection_Delay_ExponentialDelay:
			is.err(dp.f("exponentialDelay"), "exponentialDelay is not supported")
		default:
			is.err(dp, "a delay needs fixedDelay")
		}
	}
}

// percentageProblem checks a Percent: 0, or 0.0001..100.
func percentageProblem(pc *networking.Percent) string {
	if pc == nil {
		return ""
	}
	if v := pc.GetValue(); v < 0 || v > 100 || (v > 0 && v < 0.0001) {
		return fmt.Sprintf("percentage %v is neither 0 nor in the range 0.0001..100", v)
	}
	return ""
}

// validateMirrors checks mirror, mirrors and the mirror percentages.
func validateMirrors(r *networking.HTTPRoute, p fieldPath, is *issues) {
	destinationProblems(r.GetMirror(), p.f("mirror"), false, is)
	if r.GetMirrorPercent() != nil { //nolint:staticcheck // deprecated field, still accepted
		is.warn(p.f("mirrorPercent"), `mirrorPercent is deprecated: use mirrorPercentage`)
		if v := r.GetMirrorPercent().GetValue(); v > 100 { //nolint:staticcheck // deprecated field
			is.err(p.f("mirrorPercent"), fmt.Sprintf("mirrorPercent must be at most 100 (it is %d)", v))
		}
	}
	if mp := r.GetMirrorPercentage(); mp != nil && (mp.GetValue() < 0 || mp.GetValue() > 100) {
		is.err(p.f("mirrorPercentage").f("value"), fmt.Sprintf("mirrorPercentage must be in the range 0..100 (it is %v)", mp.GetValue()))
	}
	for i, m := range r.GetMirrors() {
		mp := p.f("mirrors").i(i)
		if m == nil {
			is.err(mp, "a mirror cannot be null")
			continue
		}
		destinationProblems(m.GetDestination(), mp.f("destination"), true, is)
		if v := m.GetPercentage().GetValue(); v < 0 || v > 100 {
			is.err(mp.f("percentage").f("value"), fmt.Sprintf("a mirror percentage must be in the range 0..100 (it is %v)", v))
		}
	}
}

// validateTLSRoute checks a tls route: SNI matches that are subsets of the
// virtual service's hosts, and destinations.
func validateTLSRoute(r *networking.TLSRoute, vs *networking.VirtualService, gateway bool, p fieldPath, is *issues) {
	if r == nil {
		return
	}
	if len(r.GetMatch()) == 0 {
		is.err(p.f("match"), "a tls route needs at least one match")
	}
	for i, m := range r.GetMatch() {
		mp := p.f("match").i(i)
		if m == nil {
			is.err(mp, "a tls match may not be null")
			continue
		}
		if len(m.GetSniHosts()) == 0 {
			is.err(mp.f("sniHosts"), "a tls match needs at least one SNI host")
		}
		for j, sni := range m.GetSniHosts() {
			sniHostProblems(sni, vs, gateway, mp.f("sniHosts").i(j), is)
		}
		l4MatchProblems(m.GetDestinationSubnets(), m.GetPort(), m.GetSourceLabels(), m.GetGateways(), mp, is)
	}
	if len(r.GetRoute()) == 0 {
		is.err(p.f("route"), "a tls route needs a route")
	}
	routeDestinations(r.GetRoute(), p.f("route"), is)
}

// sniHostProblems checks one SNI host (validateSniHost).
func sniHostProblems(sni string, vs *networking.VirtualService, gateway bool, p fieldPath, is *issues) {
	if msg := wildcardDomainProblem(sni); msg != "" {
		if isIP(sni) {
			is.warn(p, fmt.Sprintf("an IP address (%q) as SNI goes against the SNI specification; most clients do not send it", sni))
			return
		}
		is.err(p, msg)
		return
	}
	for _, h := range vs.GetHosts() {
		if hostSubsetOf(sni, h) {
			return
		}
	}
	is.err(p, fmt.Sprintf("SNI host %q is not a subset of any of the virtual service hosts [%s]", sni, strings.Join(vs.GetHosts(), ", ")))
}

// validateTCPRoute checks a tcp route.
func validateTCPRoute(r *networking.TCPRoute, p fieldPath, is *issues) {
	if r == nil {
		return
	}
	for i, m := range r.GetMatch() {
		mp := p.f("match").i(i)
		if m == nil {
			is.err(mp, "a tcp match may not be null")
			continue
		}
		l4MatchProblems(m.GetDestinationSubnets(), m.GetPort(), m.GetSourceLabels(), m.GetGateways(), mp, is)
	}
	if len(r.GetRoute()) == 0 {
		is.err(p.f("route"), "a tcp route needs a route")
	}
	routeDestinations(r.GetRoute(), p.f("route"), is)
}

// l4MatchProblems checks the fields tcp and tls matches share.
func l4MatchProblems(subnets []string, port uint32, sourceLabels map[string]string, gateways []string, p fieldPath, is *issues) {
	for i, s := range subnets {
		is.check(p.f("destinationSubnets").i(i), subnetProblem(s))
	}
	if port != 0 {
		is.check(p.f("port"), portProblem(port))
	}
	labelsProblems(is, p.f("sourceLabels"), sourceLabels)
	gatewayNamesProblems(is, p.f("gateways"), gateways)
}
