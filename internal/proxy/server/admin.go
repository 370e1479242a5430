package server

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/admin"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// buildAdmin binds the admin listener at the bootstrap's admin.address.
// Without an admin address there is no admin, as in Envoy.
func (s *Server) buildAdmin() error {
	sa := s.o.Bootstrap.GetAdmin().GetAddress().GetSocketAddress()
	if sa == nil {
		return nil
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return fmt.Errorf("address.socket_address.address: %q is not an IP address", sa.GetAddress())
	}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, uint16(sa.GetPortValue())).String())
	if err != nil {
		return fmt.Errorf("address: %w", err)
	}
	s.adminLn = ln
	s.admin = admin.New(admin.Options{
		Stats:           s.stats,
		ServerInfo:      s.serverInfo,
		State:           s.serverState,
		ConfigDump:      s.configDump,
		Clusters:        s.clusterStatuses,
		Quit:            s.Quit,
		HealthCheckFail: func() { s.healthFailed.Store(true) },
		HealthCheckOK:   func() { s.healthFailed.Store(false) },
		Logger:          s.log,
	})
	return nil
}

// serverState is Envoy's: DRAINING while health checks are failed.
func (s *Server) serverState() adminv3.ServerInfo_State {
	st := adminv3.ServerInfo_State(s.state.Load())
	if st == adminv3.ServerInfo_LIVE && s.healthFailed.Load() {
		return adminv3.ServerInfo_DRAINING
	}
	return st
}

func (s *Server) serverInfo() *adminv3.ServerInfo {
	up := durationpb.New(time.Since(s.started).Truncate(time.Second))
	return &adminv3.ServerInfo{
		Version:            "weft-proxy/" + Version,
		State:              s.serverState(),
		UptimeCurrentEpoch: up,
		UptimeAllEpochs:    up,
		HotRestartVersion:  "disabled",
		CommandLineOptions: &adminv3.CommandLineOptions{
			ConfigPath:  s.o.ConfigPath,
			Concurrency: uint32(s.o.Concurrency),
			LogLevel:    s.o.LogLevel,
			DrainTime:   durationpb.New(s.o.DrainTime),
			Mode:        adminv3.CommandLineOptions_Serve,
		},
		Node: s.o.Bootstrap.GetNode(),
	}
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("server: marshal %T: %v", m, err)) // a registered type always marshals
	}
	return a
}

// clusterStatuses is /clusters.
func (s *Server) clusterStatuses() *adminv3.Clusters {
	out := &adminv3.Clusters{}
	for _, c := range s.clusters.Clusters() {
		cs := &adminv3.ClusterStatus{Name: c.Name(), ObservabilityName: c.Name(), CircuitBreakers: breakerThresholds(c)}
		for _, h := range c.Hosts() {
			loc := h.Locality()
			hs := &adminv3.HostStatus{
				Address: hostStatusAddress(h),
				Stats: []*adminv3.SimpleMetric{
					counter("cx_total", uint64(h.Stats.CxTotal.Value())),
					gauge("cx_active", h.Stats.CxActive.Value()),
					counter("cx_connect_fail", h.Stats.CxConnectFail.Value()),
					counter("rq_total", h.Stats.RqTotal.Value()),
					gauge("rq_active", h.Stats.RqActive.Value()),
					counter("rq_error", h.Stats.RqError.Value()),
					counter("rq_success", h.Stats.RqSuccess.Value()),
					counter("rq_timeout", h.Stats.RqTimeout.Value()),
				},
				HealthStatus: &adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus(h.Health()),
					FailedOutlierCheck: h.FailedOutlierCheck(), FailedActiveHealthCheck: h.FailedActiveHealthCheck()},
				SuccessRate:            successRate(h.SuccessRate(false)),
				LocalOriginSuccessRate: successRate(h.SuccessRate(true)),
				Weight:                 h.Weight(),
				Hostname:               h.Hostname(),
				Priority:               h.Priority(),
				Locality:               &corev3.Locality{Region: loc.Region, Zone: loc.Zone, SubZone: loc.SubZone},
			}
			cs.HostStatuses = append(cs.HostStatuses, hs)
		}
		out.ClusterStatuses = append(out.ClusterStatuses, cs)
	}
	return out
}

// successRate is an outlier success rate for /clusters: absent when the
// detector has none (-1).
func successRate(v float64) *typev3.Percent {
	if v < 0 {
		return nil
	}
	return &typev3.Percent{Value: v}
}

// breakerThresholds are the circuit-breaker limits in force, for /clusters
// (Envoy prints the effective thresholds of both priorities; weft enforces
// the DEFAULT ones and reports HIGH as configured or defaulted).
func breakerThresholds(c *upstream.Cluster) *clusterv3.CircuitBreakers {
	t := c.Breakers.T
	def := &clusterv3.CircuitBreakers_Thresholds{
		Priority:           corev3.RoutingPriority_DEFAULT,
		MaxConnections:     wrapperspb.UInt32(uint32(t.MaxConnections)),
		MaxPendingRequests: wrapperspb.UInt32(uint32(t.MaxPendingRequests)),
		MaxRequests:        wrapperspb.UInt32(uint32(t.MaxRequests)),
		MaxRetries:         wrapperspb.UInt32(uint32(t.MaxRetries)),
	}
	out := &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{def}}
	for _, th := range c.Config().GetCircuitBreakers().GetThresholds() {
		if th.GetPriority() == corev3.RoutingPriority_HIGH {
			out.Thresholds = append(out.Thresholds, th)
		}
	}
	return out
}

func counter(name string, v uint64) *adminv3.SimpleMetric {
	return &adminv3.SimpleMetric{Type: adminv3.SimpleMetric_COUNTER, Name: name, Value: v}
}

func gauge(name string, v int64) *adminv3.SimpleMetric {
	return &adminv3.SimpleMetric{Type: adminv3.SimpleMetric_GAUGE, Name: name, Value: uint64(max(v, 0))}
}

// registerServerStats adds Envoy's server.* gauges.
func (s *Server) registerServerStats() {
	sc := s.stats.Root().Scope("server")
	sc.GaugeFunc("live", func() int64 {
		if s.serverState() == adminv3.ServerInfo_LIVE {
			return 1
		}
		return 0
	})
	sc.GaugeFunc("state", func() int64 { return int64(s.serverState()) })
	sc.GaugeFunc("uptime", func() int64 { return int64(time.Since(s.started).Seconds()) })
	sc.GaugeFunc("concurrency", func() int64 { return int64(s.o.Concurrency) })
	sc.GaugeFunc("memory_allocated", func() int64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	})
	sc.GaugeFunc("memory_heap_size", func() int64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapSys)
	})
	sc.GaugeFunc("total_connections", func() int64 {
		socks, _ := s.registry()
		n := 0
		for _, l := range socks {
			n += l.ActiveConns()
		}
		return int64(n)
	})
}

// hostStatusAddress is a host's address for /clusters: a socket address,
// or a pipe for a Unix socket host (Istio's sds-grpc).
func hostStatusAddress(h *upstream.Host) *corev3.Address {
	if path, ok := strings.CutPrefix(h.Address(), upstream.UnixPrefix); ok {
		return &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: path}}}
	}
	ap := h.AddrPort()
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ap.Addr().String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(ap.Port())},
	}}}
}
