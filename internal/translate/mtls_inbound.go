package translate

import (
	"fmt"
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	security "istio.io/api/security/v1beta1"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// Inbound mTLS: PeerAuthentication decides, per workload port, what the
// proxy's inbound listener accepts (Istio's semantics):
//   - the policy that applies is the workload's (a selector in its
//     namespace matching its labels), else its namespace's (no selector),
//     else the mesh's (no selector, in the root namespace); UNSET inherits
//     from the next level up, and the mesh default is PERMISSIVE. At one
//     level, Istio takes the oldest policy; weft, which has no creation
//     times for files, takes the first by name;
//   - a workload policy's portLevelMtls overrides its mode per port.
//
// For a proxy with a workload certificate: STRICT serves mTLS only (a
// plaintext client's handshake fails); PERMISSIVE tells mTLS from plaintext
// on the same port with tls_inspector (a chain for TLS offering Istio's
// ALPN, a chain for raw_buffer); DISABLE serves plaintext. A proxy without a
// certificate serves plaintext — except under STRICT, where it gets no
// listener for the port at all (fail closed) and a warning says why.

// alpnInbound is the server's ALPN: HTTP/2 and HTTP/1.1 as Istio's
// inbound, plus Istio's in-mesh values so that a client offering only
// those still completes its handshake (Go's TLS server refuses a
// handshake with no protocol in common; Envoy's ignores it).
var alpnInbound = []string{"h2", "http/1.1", "istio-peer-exchange", "istio"}

// peerAuthMode returns the mTLS mode for proxy p's workload port and the
// policy that decided it (nil for the mesh default).
func (s *scope) peerAuthMode(p *model.Proxy, port uint32) (security.PeerAuthentication_MutualTLS_Mode, *config.Object) {
	mode := security.PeerAuthentication_MutualTLS_PERMISSIVE
	var decided *config.Object
	root := s.idx.snap.RootNamespace
	pick := func(ns string, workload bool) *config.Object {
		var names []string
		byName := map[string]*config.Object{}
		for _, obj := range s.idx.snap.List(config.PeerAuthentication) {
			pa, ok := obj.Spec.(*security.PeerAuthentication)
			if !ok || obj.Namespace != ns {
				continue
			}
			sel := pa.GetSelector().GetMatchLabels()
			if workload != (len(sel) > 0) || (workload && !model.SelectorMatches(sel, p.Labels)) {
				continue
			}
			names = append(names, obj.Name)
			byName[obj.Name] = obj
		}
		if len(names) == 0 {
			return nil
		}
		sort.Strings(names)
		return byName[names[0]]
	}
	for _, obj := range []*config.Object{pick(root, false), pick(p.Namespace, false), pick(p.Namespace, true)} {
		if obj == nil {
			continue
		}
		pa := obj.Spec.(*security.PeerAuthentication)
		if m := pa.GetMtls().GetMode(); m != security.PeerAuthentication_MutualTLS_UNSET {
			mode, decided = m, obj
		}
		if pm := pa.GetPortLevelMtls()[port].GetMode(); pm != security.PeerAuthentication_MutualTLS_UNSET {
			mode, decided = pm, obj
		}
	}
	return mode, decided
}

// secureInbound applies the port's mTLS mode to an inbound listener built
// for plaintext (one filter chain). ok is false when the listener must not
// be sent (STRICT on a proxy without a certificate).
func (s *scope) secureInbound(p *model.Proxy, port uint32, l *listenerv3.Listener) (*listenerv3.Listener, bool) {
	mode, decided := s.peerAuthMode(p, port)
	if !hasMeshCert(p) {
		if mode == security.PeerAuthentication_MutualTLS_STRICT {
			s.st.warns.warnObject(decided, "spec.mtls.mode", fmt.Sprintf(
				"STRICT, but proxy %s has no workload certificate: its port %d gets no inbound listener (run weft-proxy sidecar with a CA, or relax this policy)", p.ID, port))
			return nil, false
		}
		return l, true
	}
	if mode == security.PeerAuthentication_MutualTLS_DISABLE || len(l.FilterChains) != 1 {
		return l, true
	}
	plain := l.FilterChains[0]
	secure := proto.Clone(plain).(*listenerv3.FilterChain)
	secure.TransportSocket = &corev3.TransportSocket{Name: tlsSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{
		TypedConfig: mustAny(&tlsv3.DownstreamTlsContext{
			CommonTlsContext:         meshCommonContext(alpnInbound, nil),
			RequireClientCertificate: wrapperspb.Bool(true),
		}),
	}}
	out := proto.Clone(l).(*listenerv3.Listener)
	if mode == security.PeerAuthentication_MutualTLS_STRICT {
		out.FilterChains = []*listenerv3.FilterChain{secure}
		return out, true
	}
	// PERMISSIVE.
	secure.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: "tls", ApplicationProtocols: alpnInMesh}
	plainCopy := proto.Clone(plain).(*listenerv3.FilterChain)
	plainCopy.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer"}
	out.FilterChains = []*listenerv3.FilterChain{secure, plainCopy}
	out.ListenerFilters = append(out.ListenerFilters, tlsInspector())
	return out, true
}
