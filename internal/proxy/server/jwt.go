package server

import (
	"context"
	"net"

	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/jwtauthn"
	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/upstream/lb"
)

// registerJWT adds envoy.filters.http.jwt_authn to a connection manager's
// registry: its counters under scope ("http.<stat_prefix>.jwt_authn."),
// and remote JWKS fetched through http_uri.cluster as Envoy does (a host
// the cluster's load balancer picks). When the cluster does not exist the
// fetch dials the URI's own address: in weft's local mode the JWKS server
// need not be a mesh service (Istio's istiod would fetch it in that case
// and inline the keys; weft-proxy fetches it itself).
func (s *Server) registerJWT(r *httpfilter.Registry, scope *stats.Scope) {
	jwtauthn.Register(r, jwtauthn.Options{Scope: scope, Dial: s.dialJWKS})
}

// dialJWKS connects to a host of cluster, or to addr without the cluster.
func (s *Server) dialJWKS(ctx context.Context, cluster, addr string) (net.Conn, error) {
	if c := s.clusters.Get(cluster); c != nil {
		if h := c.Choose(&lb.Context{}); h != nil {
			addr = h.Address()
		}
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}
