package server

import (
	"context"
	"fmt"
	"net"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/weftmesh/weft/internal/proxy/tracing"
	"github.com/weftmesh/weft/internal/proxy/upstream/lb"
)

// newTracing builds the server's tracing providers: exporters shared by
// every connection manager, reaching their collector clusters through
// the cluster manager.
func (s *Server) newTracing() *tracing.Providers {
	return tracing.NewProviders(tracing.ProvidersOptions{
		Dial:           s.dialCluster,
		FlushInterval:  s.o.TraceFlushInterval,
		DefaultService: s.o.Bootstrap.GetNode().GetCluster(),
	})
}

// dialCluster connects to a host of cluster name, chosen by its load
// balancer (a tracing collector cluster).
func (s *Server) dialCluster(ctx context.Context, name string) (net.Conn, error) {
	c := s.clusters.Get(name)
	if c == nil {
		return nil, fmt.Errorf("cluster %q: unknown", name)
	}
	h := c.Choose(&lb.Context{})
	if h == nil {
		return nil, fmt.Errorf("cluster %q: no healthy host", name)
	}
	if s.o.Dial != nil {
		return s.o.Dial(ctx, "tcp", h.Address())
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", h.Address())
}

// tracingOptions are a connection manager's tracing options for a
// listener of direction dir: Envoy names and kinds spans by the
// listener's traffic_direction (OUTBOUND: CLIENT "egress HOST"; otherwise
// SERVER "ingress").
func (s *Server) tracingOptions(dir corev3.TrafficDirection) tracing.Options {
	o := tracing.Options{
		Providers: s.tracers,
		NodeID:    s.o.Bootstrap.GetNode().GetId(),
		Zone:      s.o.Bootstrap.GetNode().GetLocality().GetZone(),
	}
	if dir == corev3.TrafficDirection_OUTBOUND {
		o.Direction = tracing.Outbound
	}
	return o
}

// shutdownTracing flushes the spans still queued (before the clusters
// close: the exporters dial through them).
func (s *Server) shutdownTracing(ctx context.Context) {
	if err := s.tracers.Shutdown(ctx); err != nil {
		s.log.Warn("tracing: flushing spans at shutdown", "error", err)
	}
}
