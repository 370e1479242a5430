package translate

import (
	"sort"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
)

// Mutual TLS between sidecars, the way Istio configures Envoy.
//
// A proxy takes part in mesh mTLS when it has a workload certificate: its
// labels carry security.istio.io/tlsMode=istio, which `weft-proxy sidecar`
// sets when it runs with a CA (as Istio's injector labels pods). Such a
// proxy gets its certificate and trust bundle from its agent over SDS
// (secrets "default" and "ROOTCA" through the static cluster "sds-grpc").
// A proxy without one is never sent configuration that needs them: it
// would wait for ever for its secrets.
//
// Outbound (clusters), for proxies with a certificate:
//   - DestinationRule tls mode ISTIO_MUTUAL: the cluster's transport
//     socket is Istio's client context (SNI outbound_.PORT_.SUBSET_.HOST,
//     ALPN istio-peer-exchange/istio, the server's SPIFFE identities
//     verified when the registry knows its service accounts);
//   - no tls setting: auto mTLS, Istio's transport_socket_matches: the
//     same context for endpoints labelled tlsMode=istio (EDS endpoint
//     metadata envoy.transport_socket_match), plaintext for the others;
//   - DISABLE: plaintext; SIMPLE and MUTUAL: TLS with the files the rule
//     names (external destinations).

const (
	tlsModeLabel      = "security.istio.io/tlsMode"
	transportMatchKey = "envoy.transport_socket_match"
	sdsCluster        = "sds-grpc"
	secretDefault     = "default"
	secretRootCA      = "ROOTCA"
	tlsSocketName     = "envoy.transport_sockets.tls"
	rawSocketName     = "envoy.transport_sockets.raw_buffer"
)

// Istio's ALPN values for in-mesh mTLS (util.ALPNInMeshWithMxc and its
// HTTP/2 form).
var (
	alpnInMesh   = []string{"istio-peer-exchange", "istio"}
	alpnInMeshH2 = []string{"istio-peer-exchange", "istio", "h2"}
)

// hasMeshCert reports whether proxy p has a workload certificate.
func hasMeshCert(p *model.Proxy) bool { return p.Labels[tlsModeLabel] == "istio" }

// sdsSource is Istio's SDS config source: the agent's SDS server through
// the static cluster sds-grpc.
func sdsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion: corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
			ApiType:             corev3.ApiConfigSource_GRPC,
			TransportApiVersion: corev3.ApiVersion_V3,
			GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: sdsCluster},
			}}},
		}},
	}
}

func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: sdsSource()}
}

// meshCommonContext is the certificate and trust bundle of mesh mTLS, the
// peer's identity checked against sans (any mesh identity when empty).
func meshCommonContext(alpn []string, sans []string) *tlsv3.CommonTlsContext {
	var matchers []*tlsv3.SubjectAltNameMatcher
	for _, s := range sans {
		matchers = append(matchers, &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}},
		})
	}
	return &tlsv3.CommonTlsContext{
		AlpnProtocols:                  alpn,
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(secretDefault)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: matchers},
				ValidationContextSdsSecretConfig: sdsSecret(secretRootCA),
			},
		},
	}
}

// istioMutualSocket is the client transport socket of ISTIO_MUTUAL.
func istioMutualSocket(sni string, sans []string, h2 bool) *corev3.TransportSocket {
	alpn := alpnInMesh
	if h2 {
		alpn = alpnInMeshH2
	}
	return tlsSocket(&tlsv3.UpstreamTlsContext{CommonTlsContext: meshCommonContext(alpn, sans), Sni: sni})
}

func tlsSocket(ctx *tlsv3.UpstreamTlsContext) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: tlsSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)}}
}

// istioSNI is Istio's SNI for in-mesh traffic: outbound_.PORT_.SUBSET_.HOST.
func istioSNI(port uint32, subset, host string) string {
	return "outbound_." + strconv.FormatUint(uint64(port), 10) + "_." + subset + "_." + host
}

// spiffeIDs returns the SPIFFE identities of eps's service accounts,
// sorted (Istio verifies the server against the service's accounts).
func spiffeIDs(eps []*model.Endpoint, trustDomain string) []string {
	seen := map[string]bool{}
	var out []string
	for _, ep := range eps {
		if ep.ServiceAccount == "" {
			continue
		}
		id := "spiffe://" + trustDomain + "/ns/" + ep.Namespace + "/sa/" + ep.ServiceAccount
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// clusterTLS describes the cluster applyClusterTLS configures.
type clusterTLS struct {
	port   model.Port
	subset string
	svc    *model.Service
	eps    []*model.Endpoint
	h2     bool
}

// applyClusterTLS sets c's transport socket from the traffic policy's tls
// settings (nil: auto mTLS) for a proxy with or without a workload
// certificate.
func (s *scope) applyClusterTLS(c *clusterv3.Cluster, settings *networking.ClientTLSSettings, ct clusterTLS) {
	mesh := func() *corev3.TransportSocket {
		return istioMutualSocket(istioSNI(ct.port.Number, ct.subset, ct.svc.Hostname), spiffeIDs(ct.eps, s.st.opts.TrustDomain), ct.h2)
	}
	switch {
	case settings == nil: // auto mTLS, for proxies with a certificate
		if s.key.mtls && !ct.svc.MeshExternal {
			c.TransportSocketMatches = autoMTLSMatches(mesh())
		}
	case settings.GetMode() == networking.ClientTLSSettings_ISTIO_MUTUAL:
		if s.key.mtls {
			c.TransportSocket = mesh()
		}
	case settings.GetMode() == networking.ClientTLSSettings_SIMPLE, settings.GetMode() == networking.ClientTLSSettings_MUTUAL:
		c.TransportSocket = tlsSocket(fileTLSContext(settings))
	} // DISABLE: plaintext
}

// autoMTLSMatches are Istio's auto-mTLS transport socket matches: the mesh
// context for endpoints running a sidecar, plaintext for the others.
func autoMTLSMatches(mesh *corev3.TransportSocket) []*clusterv3.Cluster_TransportSocketMatch {
	return []*clusterv3.Cluster_TransportSocketMatch{{
		Name:            "tlsMode-istio",
		Match:           &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
		TransportSocket: mesh,
	}, {
		Name:            "tlsMode-disabled",
		Match:           &structpb.Struct{},
		TransportSocket: &corev3.TransportSocket{Name: rawSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&rawbufferv3.RawBuffer{})}},
	}}
}

// fileTLSContext is the client context of SIMPLE and MUTUAL: the CA,
// client certificate and key from files, the SNI and the server names to
// verify.
func fileTLSContext(t *networking.ClientTLSSettings) *tlsv3.UpstreamTlsContext {
	common := &tlsv3.CommonTlsContext{}
	if t.GetMode() == networking.ClientTLSSettings_MUTUAL && t.GetClientCertificate() != "" {
		common.TlsCertificates = []*tlsv3.TlsCertificate{{
			CertificateChain: fileSource(t.GetClientCertificate()),
			PrivateKey:       fileSource(t.GetPrivateKey()),
		}}
	}
	if !t.GetInsecureSkipVerify().GetValue() && (t.GetCaCertificates() != "" || len(t.GetSubjectAltNames()) > 0) {
		vc := &tlsv3.CertificateValidationContext{}
		if t.GetCaCertificates() != "" {
			vc.TrustedCa = fileSource(t.GetCaCertificates())
		}
		for _, san := range t.GetSubjectAltNames() {
			vc.MatchTypedSubjectAltNames = append(vc.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
				SanType: tlsv3.SubjectAltNameMatcher_DNS,
				Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: san}},
			})
		}
		common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
	}
	return &tlsv3.UpstreamTlsContext{CommonTlsContext: common, Sni: t.GetSni()}
}

func fileSource(path string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: path}}
}

// endpointTLSMetadata is the EDS metadata that selects the mTLS transport
// socket for endpoints running a sidecar (Istio's
// envoy.transport_socket_match {tlsMode: istio}).
func endpointTLSMetadata(ep *model.Endpoint) *corev3.Metadata {
	if ep.TLSMode != "istio" {
		return nil
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		transportMatchKey: {Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
	}}
}
