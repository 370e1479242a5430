package upstream

import (
	"context"
	"fmt"
	"net"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	rawv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/tlsctx"
)

// TransportSocketMatchKey is the endpoint metadata filter that
// transport_socket_matches look at (Envoy's "envoy.transport_socket_match";
// Istio sets {tlsMode: istio} there for workloads with a sidecar).
const TransportSocketMatchKey = "envoy.transport_socket_match"

// transports is a cluster's compiled transport sockets: the default
// (transport_socket) and the matches in order. A nil *tlsctx.Client is
// plaintext (raw_buffer).
type transports struct {
	def     *tlsctx.Client
	matches []transportMatch
	refs    []tlsctx.SecretRef
}

type transportMatch struct {
	match  map[string]*structpb.Value
	client *tlsctx.Client
}

// compileTransports reads transport_socket and transport_socket_matches.
func compileTransports(cfg *clusterv3.Cluster, secrets tlsctx.Provider) (*transports, error) {
	t := &transports{}
	var err error
	if t.def, err = t.compile(cfg.GetTransportSocket(), secrets); err != nil {
		return nil, fmt.Errorf("transport_socket.%w", err)
	}
	for i, m := range cfg.GetTransportSocketMatches() {
		c, err := t.compile(m.GetTransportSocket(), secrets)
		if err != nil {
			return nil, fmt.Errorf("transport_socket_matches[%d].transport_socket.%w", i, err)
		}
		t.matches = append(t.matches, transportMatch{match: m.GetMatch().GetFields(), client: c})
	}
	return t, nil
}

func (t *transports) compile(ts *corev3.TransportSocket, secrets tlsctx.Provider) (*tlsctx.Client, error) {
	if ts == nil {
		return nil, nil
	}
	tc := ts.GetTypedConfig()
	switch {
	case tc == nil || tc.MessageIs(&rawv3.RawBuffer{}):
		return nil, nil
	case tc.MessageIs(&tlsv3.UpstreamTlsContext{}):
		var uc tlsv3.UpstreamTlsContext
		if err := tc.UnmarshalTo(&uc); err != nil {
			return nil, fmt.Errorf("typed_config: %w", err)
		}
		c, err := tlsctx.NewClient(&uc, tlsctx.Options{Secrets: secrets})
		if err != nil {
			return nil, fmt.Errorf("typed_config (UpstreamTlsContext).%w", err)
		}
		t.refs = append(t.refs, c.SecretRefs()...)
		return c, nil
	}
	return nil, fmt.Errorf("typed_config: type %s is not supported (UpstreamTlsContext, RawBuffer)", tc.MessageName())
}

// forEndpoint returns the transport socket for an endpoint whose metadata
// is md: the first match whose every key/value is in the endpoint's
// filter_metadata["envoy.transport_socket_match"], else the default.
func (t *transports) forEndpoint(md *corev3.Metadata) *tlsctx.Client {
	if t == nil {
		return nil
	}
	em := md.GetFilterMetadata()[TransportSocketMatchKey].GetFields()
	for _, m := range t.matches {
		if subset(m.match, em) {
			return m.client
		}
	}
	return t.def
}

func subset(want, have map[string]*structpb.Value) bool {
	for k, v := range want {
		if h, ok := have[k]; !ok || !proto.Equal(h, v) {
			return false
		}
	}
	return true
}

// handshake returns the pool's Handshake function for a client (nil for
// plaintext).
func handshake(c *tlsctx.Client) func(ctx context.Context, conn net.Conn) (net.Conn, error) {
	if c == nil {
		return nil
	}
	return func(ctx context.Context, conn net.Conn) (net.Conn, error) {
		tc, err := c.Handshake(ctx, conn)
		if err != nil {
			return nil, err
		}
		return tc, nil
	}
}

// metadataOf returns an lb_endpoint's metadata.
func metadataOf(ep *endpointv3.LbEndpoint) *corev3.Metadata { return ep.GetMetadata() }

// SecretRefs returns the SDS secrets the cluster's transport sockets
// need (the cluster warms until they are present).
func (c *Cluster) SecretRefs() []tlsctx.SecretRef { return c.transports.refs }

// TransportSecretRefs returns the SDS secrets cfg's transport sockets
// name (nil when they do not compile: building the cluster reports why).
func TransportSecretRefs(cfg *clusterv3.Cluster) []tlsctx.SecretRef {
	t, err := compileTransports(cfg, tlsctx.NewStore())
	if err != nil {
		return nil
	}
	return t.refs
}
