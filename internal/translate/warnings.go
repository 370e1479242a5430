package translate

import (
	"fmt"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// Warning messages for fields translation does not apply yet.
const (
	msgLocality = "not applied: locality-aware load balancing (distribute, failover, failoverPriority) is not supported yet; endpoints of every locality are balanced alike"
	msgSecurity = "not applied yet: the security issue adds it"
	msgProxy    = "not applied: weft-proxy does not support it yet"
)

// staticWarnings lists, for every object of the snapshot, the fields that
// translation ignores — whatever the proxy — so that nothing is dropped
// silently.
func staticWarnings(idx *index) []*config.Error {
	var w warnSet
	for _, vs := range idx.virtualServices {
		virtualServiceWarnings(&w, vs)
	}
	for _, obj := range idx.snap.List(config.DestinationRule) {
		if spec, ok := obj.Spec.(*networking.DestinationRule); ok {
			destinationRuleWarnings(&w, obj, spec)
		}
	}
	for _, g := range idx.gateways {
		gatewayWarnings(&w, g)
	}
	for _, scs := range idx.sidecars {
		for _, sc := range scs {
			sidecarWarnings(&w, sc)
		}
	}
	// security.istio.io objects are loaded and validated; each kind's
	// enforcement comes with its part of the security issue.
	authzWarnings(&w, idx.snap.List(config.AuthorizationPolicy))
	requestAuthnWarnings(&w, idx.snap.List(config.RequestAuthentication)) // requestauthn.go
	telemetryAccessLogWarnings(&w, idx)                                   // accesslog.go
	for _, svc := range idx.snap.Services {
		if svc.Resolution == model.Passthrough {
			w.add(idx.serviceWarning(svc, "spec.resolution", fmt.Sprintf(
				"resolution NONE needs ORIGINAL_DST clusters, which weft-proxy does not support yet: no outbound cluster, route or listener for %s", svc.Hostname)))
		}
	}
	return w.list()
}

// virtualServiceWarnings covers CORS, delegation, stat prefixes and L4
// source subnets (retries, fault and mirrors are translated:
// resilience_route.go).
func virtualServiceWarnings(w *warnSet, vs *vsEntry) {
	for i, h := range vs.spec.Http {
		p := fmt.Sprintf("spec.http[%d]", i)
		if h.CorsPolicy != nil {
			w.warnObject(vs.obj, p+".corsPolicy", msgProxy+" (envoy.filters.http.cors)")
		}
		if h.GetRetries().GetRetryRemoteLocalities().GetValue() {
			w.warnObject(vs.obj, p+".retries.retryRemoteLocalities", msgProxy+" (retry priorities): retries may stay in the same locality")
		}
		if h.Delegate != nil {
			w.warnObject(vs.obj, p+".delegate", "not supported yet: delegate VirtualServices are not applied; this route is skipped")
		}
		for j, m := range h.Match {
			if m.StatPrefix != "" {
				w.warnObject(vs.obj, fmt.Sprintf("%s.match[%d].statPrefix", p, j), msgProxy)
			}
		}
	}
	for i, t := range vs.spec.Tcp {
		for j, m := range t.Match {
			if m.SourceSubnet != "" {
				w.warnObject(vs.obj, fmt.Sprintf("spec.tcp[%d].match[%d].sourceSubnet", i, j), "not applied (Istio does not apply it to sidecars either)")
			}
		}
	}
}

// destinationRuleWarnings covers every traffic policy of a rule.
func destinationRuleWarnings(w *warnSet, obj *config.Object, dr *networking.DestinationRule) {
	trafficPolicyWarnings(w, obj, "spec.trafficPolicy", dr.TrafficPolicy)
	for i, s := range dr.Subsets {
		trafficPolicyWarnings(w, obj, fmt.Sprintf("spec.subsets[%d].trafficPolicy", i), s.TrafficPolicy)
	}
}

// trafficPolicyWarnings covers one traffic policy and its port-level
// settings.
func trafficPolicyWarnings(w *warnSet, obj *config.Object, path string, tp *networking.TrafficPolicy) {
	if tp == nil {
		return
	}
	policyComponentWarnings(w, obj, path, tp.LoadBalancer, tp.ConnectionPool, tp.Tls)
	if tp.Tunnel != nil {
		w.warnObject(obj, path+".tunnel", msgProxy)
	}
	if tp.ProxyProtocol != nil {
		w.warnObject(obj, path+".proxyProtocol", msgProxy)
	}
	if tp.GetRetryBudget().GetBudgetInterval().AsDuration() > 0 {
		w.warnObject(obj, path+".retryBudget.budgetInterval", msgProxy+": the budget counts the requests active now")
	}
	for i, pl := range tp.PortLevelSettings {
		policyComponentWarnings(w, obj, fmt.Sprintf("%s.portLevelSettings[%d]", path, i),
			pl.LoadBalancer, pl.ConnectionPool, pl.Tls)
	}
}

// policyComponentWarnings covers the components shared by policies and
// port-level settings (outlier detection and retry budgets are translated:
// resilience_cluster.go).
func policyComponentWarnings(w *warnSet, obj *config.Object, path string, lb *networking.LoadBalancerSettings,
	cp *networking.ConnectionPoolSettings, tls *networking.ClientTLSSettings,
) {
	tlsWarnings(w, obj, path+".tls", tls)
	if lb != nil {
		lp := path + ".loadBalancer"
		if lb.GetSimple() == networking.LoadBalancerSettings_PASSTHROUGH {
			w.warnObject(obj, lp+".simple", "not applied: PASSTHROUGH needs ORIGINAL_DST clusters, which weft-proxy does not support yet; the default policy applies")
		}
		if lb.LocalityLbSetting != nil {
			w.warnObject(obj, lp+".localityLbSetting", msgLocality)
		}
		if lb.ZoneAwareLbSetting != nil {
			w.warnObject(obj, lp+".zoneAwareLbSetting", msgLocality)
		}
		if lb.WarmupDurationSecs != nil || lb.Warmup != nil {
			w.warnObject(obj, lp+".warmup", msgProxy+" (slow start)")
		}
		if len(lb.GetConsistentHash().GetHttpCookie().GetAttributes()) > 0 {
			w.warnObject(obj, lp+".consistentHash.httpCookie.attributes", msgProxy)
		}
	}
	if cp.GetTcp().GetMaxConnectionDuration() != nil {
		w.warnObject(obj, path+".connectionPool.tcp.maxConnectionDuration", msgProxy)
	}
	if cp.GetHttp().GetHttp2KeepAlive() != nil {
		w.warnObject(obj, path+".connectionPool.http.http2KeepAlive", msgProxy)
	}
}

// gatewayWarnings covers TLS termination, HTTPS redirects and default
// endpoints.
func gatewayWarnings(w *warnSet, g *gwEntry) {
	for i, srv := range g.spec.Servers {
		p := fmt.Sprintf("spec.servers[%d]", i)
		switch kindOf(srv) {
		case serverTerminate:
			if srv.GetTls().GetMode() == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
				w.warnObject(g.obj, p+".tls.mode", "AUTO_PASSTHROUGH is not supported; this server is skipped")
			} else {
				w.warnObject(g.obj, p+".tls", msgSecurity+" (TLS termination); this server is skipped")
			}
		case serverHTTP:
			if srv.GetTls().GetHttpsRedirect() {
				w.warnObject(g.obj, p+".tls.httpsRedirect", msgProxy+" (virtual host require_tls)")
			}
		}
		if srv.DefaultEndpoint != "" {
			w.warnObject(g.obj, p+".defaultEndpoint", "not applied: gateways route with VirtualServices")
		}
	}
}

// sidecarWarnings covers the Sidecar fields local mode does not apply.
func sidecarWarnings(w *warnSet, sc *sidecarEntry) {
	for i, e := range sc.spec.Egress {
		p := fmt.Sprintf("spec.egress[%d]", i)
		switch {
		case strings.HasPrefix(e.Bind, "unix://"):
			w.warnObject(sc.obj, p+".bind", "unix domain sockets are not supported yet; this egress listener is skipped (its hosts still apply)")
		case e.Port == nil && e.Bind != "":
			w.warnObject(sc.obj, p+".bind", "not applied without a port: set port to get a listener on this address")
		case e.CaptureMode == networking.CaptureMode_IPTABLES:
			w.warnObject(sc.obj, p+".captureMode", "not applied: local mode has no traffic capture; a listener with a port binds it (as captureMode NONE)")
		}
	}
	for i, in := range sc.spec.Ingress {
		p := fmt.Sprintf("spec.ingress[%d]", i)
		if in.Tls != nil {
			w.warnObject(sc.obj, p+".tls", msgSecurity)
		}
		if in.CaptureMode != networking.CaptureMode_DEFAULT {
			w.warnObject(sc.obj, p+".captureMode", "not applied: local mode has no traffic capture")
		}
		if strings.HasPrefix(in.DefaultEndpoint, "unix://") {
			w.warnObject(sc.obj, p+".defaultEndpoint", "unix domain sockets are not supported yet; this ingress listener is skipped")
		}
	}
	if sc.spec.OutboundTrafficPolicy != nil {
		w.warnObject(sc.obj, "spec.outboundTrafficPolicy", "not applied: requests to hosts outside the registry get 404 from the HTTP proxy listener (passthrough needs traffic capture, a later issue)")
	}
}

// tlsWarnings covers the client TLS settings weft does not apply:
// credentialName (a Kubernetes secret; local mode reads files) and the
// settings a proxy without a workload certificate cannot honour.
func tlsWarnings(w *warnSet, obj *config.Object, path string, t *networking.ClientTLSSettings) {
	if t == nil {
		return
	}
	if t.CredentialName != "" {
		w.warnObject(obj, path+".credentialName", "not applied: local mode reads certificates from files (clientCertificate, privateKey, caCertificates)")
	}
	if t.GetMode() == networking.ClientTLSSettings_ISTIO_MUTUAL {
		w.warnObject(obj, path+".mode", "ISTIO_MUTUAL applies to proxies with a workload certificate (weft-proxy sidecar with a CA); proxies without one send plaintext")
	}
}
