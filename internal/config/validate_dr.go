package config

import (
	"fmt"
	"math"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// validateDestinationRule applies Istio's DestinationRule rules
// (ValidateDestinationRule, validateTrafficPolicy, validateSubset).
func validateDestinationRule(meta Meta, dr *networking.DestinationRule, is *issues) {
	if dr.GetHost() == "" {
		is.err(specPath.f("host"), "host is required")
	} else {
		is.check(specPath.f("host"), wildcardDomainProblem(dr.GetHost()))
	}
	validateTrafficPolicy(dr.GetTrafficPolicy(), specPath.f("trafficPolicy"), is)
	names := map[string]bool{}
	for i, s := range dr.GetSubsets() {
		p := specPath.f("subsets").i(i)
		if s == nil {
			is.err(p, "a subset may not be null")
			continue
		}
		switch {
		case s.GetName() == "":
			is.err(p.f("name"), "a subset needs a name")
		case !isDNSLabel(s.GetName()):
			is.err(p.f("name"), fmt.Sprintf("invalid subset name %q: it must be a DNS label", s.GetName()))
		case names[s.GetName()]:
			is.err(p.f("name"), fmt.Sprintf("duplicate subset name %q", s.GetName()))
		}
		names[s.GetName()] = true
		labelsProblems(is, p.f("labels"), s.GetLabels())
		validateTrafficPolicy(s.GetTrafficPolicy(), p.f("trafficPolicy"), is)
	}
	exportToProblems(is, specPath.f("exportTo"), meta.Namespace, dr.GetExportTo(), false)
	if sel := dr.GetWorkloadSelector(); sel != nil {
		selectorProblems(is, specPath.f("workloadSelector").f("matchLabels"), sel.GetMatchLabels())
		for _, e := range dr.GetExportTo() {
			if e != "." && e != meta.Namespace {
				is.err(specPath.f("exportTo"), "a destination rule with a workload selector cannot be exported beyond its namespace")
				break
			}
		}
	}
}

// validateTrafficPolicy checks a traffic policy (top level or subset).
func validateTrafficPolicy(tp *networking.TrafficPolicy, p fieldPath, is *issues) {
	if tp == nil {
		return
	}
	if tp.GetLoadBalancer() == nil && tp.GetConnectionPool() == nil && tp.GetOutlierDetection() == nil &&
		tp.GetTls() == nil && len(tp.GetPortLevelSettings()) == 0 && tp.GetTunnel() == nil &&
		tp.GetProxyProtocol() == nil && tp.GetRetryBudget() == nil {
		is.err(p, "a traffic policy must set at least one field")
		return
	}
	if tp.GetTunnel() != nil && tp.GetProxyProtocol() != nil {
		is.err(p, "tunnel and proxyProtocol cannot be set together")
	}
	validateLoadBalancer(tp.GetLoadBalancer(), tp.GetOutlierDetection(), p.f("loadBalancer"), is)
	validateConnectionPool(tp.GetConnectionPool(), p.f("connectionPool"), is)
	validateOutlierDetection(tp.GetOutlierDetection(), p.f("outlierDetection"), is)
	validateClientTLS(tp.GetTls(), p.f("tls"), is)
	for i, pl := range tp.GetPortLevelSettings() {
		validatePortTrafficPolicy(pl, p.f("portLevelSettings").i(i), is)
	}
	validateTunnel(tp.GetTunnel(), p.f("tunnel"), is)
}

// validatePortTrafficPolicy checks one portLevelSettings entry.
func validatePortTrafficPolicy(pl *networking.TrafficPolicy_PortTrafficPolicy, p fieldPath, is *issues) {
	if pl == nil {
		is.err(p, "a port traffic policy may not be null")
		return
	}
	if pl.GetPort() == nil {
		is.err(p.f("port"), "a port traffic policy needs a port")
	} else {
		is.check(p.f("port").f("number"), portProblem(pl.GetPort().GetNumber()))
	}
	if pl.GetLoadBalancer() == nil && pl.GetConnectionPool() == nil && pl.GetOutlierDetection() == nil && pl.GetTls() == nil {
		is.err(p, "a port traffic policy must set at least one field")
		return
	}
	validateLoadBalancer(pl.GetLoadBalancer(), pl.GetOutlierDetection(), p.f("loadBalancer"), is)
	validateConnectionPool(pl.GetConnectionPool(), p.f("connectionPool"), is)
	validateOutlierDetection(pl.GetOutlierDetection(), p.f("outlierDetection"), is)
	validateClientTLS(pl.GetTls(), p.f("tls"), is)
}

// validateLoadBalancer checks simple and consistent-hash load balancing
// and locality settings (validateLoadBalancer).
func validateLoadBalancer(lb *networking.LoadBalancerSettings, od *networking.OutlierDetection, p fieldPath, is *issues) {
	if lb == nil {
		return
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		validateConsistentHash(ch, p.f("consistentHash"), is)
	}
	validateLocality(lb.GetLocalityLbSetting(), od, p.f("localityLbSetting"), is)
	is.check(p.f("warmupDurationSecs"), durationProblem(lb.GetWarmupDurationSecs()))
}

// maxMaglevTableSize bounds Maglev's table (Envoy's limit).
const maxMaglevTableSize = 5000011

// validateConsistentHash checks the hash key and the hash algorithm.
func validateConsistentHash(ch *networking.LoadBalancerSettings_ConsistentHashLB, p fieldPath, is *issues) {
	switch k := ch.GetHashKey().(type) {
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
		is.check(p.f("httpHeaderName"), headerNameProblem(k.HttpHeaderName))
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
		cp := p.f("httpCookie")
		if k.HttpCookie.GetName() == "" {
			is.err(cp.f("name"), "a hash cookie needs a name")
		}
		is.check(cp.f("ttl"), nonNegativeDurationProblem(k.HttpCookie.GetTtl()))
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
		if k.HttpQueryParameterName == "" {
			is.err(p.f("httpQueryParameterName"), "the query parameter name cannot be empty")
		}
	case nil:
		is.warn(p, "consistentHash without a hash key (httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName): requests are spread as if at random")
	}
	if ch.GetMinimumRingSize() != 0 { //nolint:staticcheck // deprecated field, still accepted
		is.warn(p.f("minimumRingSize"), "minimumRingSize is deprecated: use ringHash.minimumRingSize")
		if ch.GetHashAlgorithm() != nil {
			is.err(p.f("minimumRingSize"), "only one of minimumRingSize and ringHash/maglev can be set")
		}
	}
	if ml := ch.GetMaglev(); ml != nil {
		tp := p.f("maglev").f("tableSize")
		switch ts := ml.GetTableSize(); {
		case ts == 0:
			is.err(tp, "tableSize must be set for maglev")
		case ts >= maxMaglevTableSize:
			is.err(tp, fmt.Sprintf("tableSize must be less than %d", maxMaglevTableSize))
		case !isPrime(ts):
			is.err(tp, fmt.Sprintf("tableSize %d must be a prime number", ts))
		}
	}
}

// isPrime reports whether x is prime (Envoy's check for Maglev tables).
func isPrime(x uint64) bool {
	if x < 2 {
		return false
	}
	if x < 4 {
		return true
	}
	if x%2 == 0 {
		return false
	}
	limit := uint64(math.Sqrt(float64(x)))
	for f := uint64(3); f <= limit; f += 2 {
		if x%f == 0 {
			return false
		}
	}
	return true
}

// validateLocality checks locality load balancing
// (agent.ValidateLocalityLbSetting): distribute and failover exclusive,
// distribute weights 1..100 summing to 100, failover between different
// regions, and outlier detection required for failover (a warning).
func validateLocality(l *networking.LocalityLoadBalancerSetting, od *networking.OutlierDetection, p fieldPath, is *issues) {
	if l == nil {
		return
	}
	if len(l.GetDistribute()) > 0 && len(l.GetFailover()) > 0 {
		is.err(p, "distribute and failover cannot be set together")
		return
	}
	for i, d := range l.GetDistribute() {
		dp := p.f("distribute").i(i)
		var total uint32
		for _, loc := range sortedKeys(d.GetTo()) {
			w := d.GetTo()[loc]
			if w == 0 || w > 100 {
				is.err(dp.f("to").k(loc), "a locality weight must be in the range 1..100")
			}
			total += w
		}
		if total != 100 {
			is.err(dp.f("to"), fmt.Sprintf("the locality weights sum to %d, not 100", total))
		}
	}
	if (len(l.GetFailover()) > 0 || len(l.GetFailoverPriority()) > 0) && od == nil {
		is.warn(p, "locality failover needs an outlierDetection policy to take effect")
	}
	for i, f := range l.GetFailover() {
		fp := p.f("failover").i(i)
		switch {
		case f.GetFrom() == f.GetTo():
			is.err(fp, "failover must be between different regions")
		case strings.Contains(f.GetFrom(), "/") || strings.Contains(f.GetTo(), "/"):
			is.err(fp, "failover names regions only (no zone or subzone)")
		case strings.Contains(f.GetFrom(), "*") || strings.Contains(f.GetTo(), "*"):
			is.err(fp, "a failover region cannot contain the wildcard '*'")
		}
	}
}

// validateConnectionPool checks connection pool limits and durations
// (validateConnectionPool).
func validateConnectionPool(cp *networking.ConnectionPoolSettings, p fieldPath, is *issues) {
	if cp == nil {
		return
	}
	if cp.GetHttp() == nil && cp.GetTcp() == nil {
		is.err(p, "a connection pool must set http or tcp")
		return
	}
	if h := cp.GetHttp(); h != nil {
		hp := p.f("http")
		for _, v := range []struct {
			name string
			n    int32
		}{
			{"http1MaxPendingRequests", h.GetHttp1MaxPendingRequests()},
			{"http2MaxRequests", h.GetHttp2MaxRequests()},
			{"maxRequestsPerConnection", h.GetMaxRequestsPerConnection()},
			{"maxRetries", h.GetMaxRetries()},
			{"maxConcurrentStreams", h.GetMaxConcurrentStreams()},
		} {
			if v.n < 0 {
				is.err(hp.f(v.name), fmt.Sprintf("%s must not be negative", v.name))
			}
		}
		is.check(hp.f("idleTimeout"), durationProblem(h.GetIdleTimeout()))
		if h.GetH2UpgradePolicy() == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE && h.GetUseClientProtocol() {
			is.err(hp.f("useClientProtocol"), "useClientProtocol must not be true when h2UpgradePolicy is UPGRADE")
		}
	}
	if t := cp.GetTcp(); t != nil {
		tp := p.f("tcp")
		if t.GetMaxConnections() < 0 {
			is.err(tp.f("maxConnections"), "maxConnections must not be negative")
		}
		is.check(tp.f("connectTimeout"), durationProblem(t.GetConnectTimeout()))
		is.check(tp.f("maxConnectionDuration"), durationProblem(t.GetMaxConnectionDuration()))
		is.check(tp.f("idleTimeout"), durationProblem(t.GetIdleTimeout()))
		if ka := t.GetTcpKeepalive(); ka != nil {
			is.check(tp.f("tcpKeepalive").f("time"), durationProblem(ka.GetTime()))
			is.check(tp.f("tcpKeepalive").f("interval"), durationProblem(ka.GetInterval()))
		}
	}
}

// validateOutlierDetection checks outlier detection (validateOutlierDetection).
func validateOutlierDetection(od *networking.OutlierDetection, p fieldPath, is *issues) {
	if od == nil {
		return
	}
	is.check(p.f("baseEjectionTime"), durationProblem(od.GetBaseEjectionTime()))
	is.check(p.f("interval"), durationProblem(od.GetInterval()))
	if od.GetConsecutiveErrors() != 0 { //nolint:staticcheck // deprecated field, still accepted
		is.warn(p.f("consecutiveErrors"), "consecutiveErrors is deprecated: use consecutiveGatewayErrors or consecutive5xxErrors")
	}
	if !od.GetSplitExternalLocalOriginErrors() && od.GetConsecutiveLocalOriginFailures().GetValue() > 0 {
		is.err(p.f("consecutiveLocalOriginFailures"), "consecutiveLocalOriginFailures needs splitExternalLocalOriginErrors: true")
	}
	for _, v := range []struct {
		name string
		n    int32
	}{{"maxEjectionPercent", od.GetMaxEjectionPercent()}, {"minHealthPercent", od.GetMinHealthPercent()}} {
		if v.n < 0 || v.n > 100 {
			is.err(p.f(v.name), fmt.Sprintf("%s %d is not in the range 0..100", v.name, v.n))
		}
	}
}

// validateClientTLS checks upstream TLS settings (agent.ValidateTLS).
func validateClientTLS(t *networking.ClientTLSSettings, p fieldPath, is *issues) {
	if t == nil {
		return
	}
	mode := t.GetMode()
	if t.GetInsecureSkipVerify().GetValue() {
		if mode == networking.ClientTLSSettings_SIMPLE && (t.GetCaCertificates() != "" || t.GetCredentialName() != "" || len(t.GetSubjectAltNames()) > 0) {
			is.err(p.f("insecureSkipVerify"), "caCertificates, credentialName and subjectAltNames cannot be set when insecureSkipVerify is true")
		}
		if mode == networking.ClientTLSSettings_MUTUAL && (t.GetCaCertificates() != "" || len(t.GetSubjectAltNames()) > 0) {
			is.err(p.f("insecureSkipVerify"), "caCertificates and subjectAltNames cannot be set when insecureSkipVerify is true")
		}
	}
	simpleOrMutual := mode == networking.ClientTLSSettings_SIMPLE || mode == networking.ClientTLSSettings_MUTUAL
	if simpleOrMutual && t.GetCredentialName() != "" {
		if t.GetClientCertificate() != "" || t.GetCaCertificates() != "" || t.GetPrivateKey() != "" || t.GetCaCrl() != "" {
			is.err(p.f("credentialName"), "clientCertificate, privateKey, caCertificates and caCrl cannot be set with credentialName")
		}
		return
	}
	if mode == networking.ClientTLSSettings_MUTUAL {
		if t.GetClientCertificate() == "" {
			is.err(p.f("clientCertificate"), "MUTUAL TLS needs a client certificate (or credentialName)")
		}
		if t.GetPrivateKey() == "" {
			is.err(p.f("privateKey"), "MUTUAL TLS needs a private key (or credentialName)")
		}
	}
}

// validateTunnel checks tunnel settings.
func validateTunnel(t *networking.TrafficPolicy_TunnelSettings, p fieldPath, is *issues) {
	if t == nil {
		return
	}
	if pr := t.GetProtocol(); pr != "" && pr != "CONNECT" && pr != "POST" {
		is.err(p.f("protocol"), `the tunnel protocol must be "CONNECT" or "POST"`)
	}
	if fqdnProblem(t.GetTargetHost()) != "" && !isIP(t.GetTargetHost()) {
		is.err(p.f("targetHost"), fmt.Sprintf("the tunnel target host %q must be a domain name or an IP address", t.GetTargetHost()))
	}
	is.check(p.f("targetPort"), portProblem(t.GetTargetPort()))
}
