package translate

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// generate computes proxy p's resources: the shared outbound resources of
// its scope (built once per snapshot and scope) plus, for sidecars, its own
// HTTP proxy listener and inbound listeners and clusters, and for routers
// the gateway listeners with the policies that select it.
func (t *Translator) generate(s *model.Snapshot, p *model.Proxy) *Resources {
	st := t.c.state(s, t.o)
	sc, out := st.scope(st.keyFor(p))
	var extra perProxy
	if p.Type == model.Router && !p.Proxyless {
		extra.listeners = sc.gatewayListeners(st.policyFilters(p))
	}
	if captures(p) {
		extra = sc.captureInbound(p) // capture_inbound.go
	} else if p.Type != model.Router && !p.Proxyless {
		extra = sc.inbound(p)
		addr, port := p.HTTPProxyAddress, p.HTTPProxyPort
		if addr == "" {
			addr = model.DefaultHTTPProxyAddress
		}
		if port == 0 {
			port = model.DefaultHTTPProxyPort
		}
		extra.listeners = append([]hashed[*listenerv3.Listener]{sc.httpProxyListener(addr, port)}, extra.listeners...)
	}
	if !p.Proxyless {
		extra.clusters = append(extra.clusters, sc.tracingClusters()...) // tracing.go
	}
	r := assemble(out, extra)
	t.addNameTable(r, sc, p) // nametable.go
	return r
}

// warnings returns the warnings of snapshot s.
func (t *Translator) warnings(s *model.Snapshot) []*config.Error {
	return t.c.state(s, t.o).warnings()
}

// buildOutbound builds the scope's shared resources.
func (s *scope) buildOutbound() *outbound {
	o := newOutbound()
	switch {
	case s.key.proxyless:
		s.buildProxyless(o)
	case s.key.typ == model.Router:
		s.buildGateways(o)
		s.addServiceClusters(o)
	case s.key.capture:
		s.buildCaptureOutbound(o) // capture.go
	default:
		o.routes.put(hash(httpProxyRoute, s.httpProxyRoutes()))
		for _, l := range s.tcpListeners() {
			o.listeners.put(hash(l.Name, s.withAccessLogs(l, telemetry.WorkloadMode_CLIENT))) // accesslog.go
		}
		s.buildEgressListeners(o)
		s.addServiceClusters(o)
	}
	return o
}

// builtListener is a listener with its hash.
type builtListener = hashed[*listenerv3.Listener]

// httpProxyListener returns the HTTP proxy listener for addr:port,
// memoised: proxies of a scope usually share the default address.
func (s *scope) httpProxyListener(addr string, port uint32) builtListener {
	k := hostPort(addr, port)
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.httpProxy[k]; ok {
		return *l
	}
	l := hash(listenerName(addr, port), s.withAccessLogs(httpProxyListener(addr, port, s.hcmTracing(traceClient)), telemetry.WorkloadMode_CLIENT))
	s.httpProxy[k] = &l
	return l
}
