package upstream

import (
	"net"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/stats"
)

// ep is an endpoint spec for cla.
type ep struct {
	addr     string
	port     uint32
	weight   uint32
	priority uint32
	zone     string
	health   corev3.HealthStatus
}

func cla(name string, eps ...ep) *endpointv3.ClusterLoadAssignment {
	out := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	for _, e := range eps {
		lbe := &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: e.addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: e.port},
				}}},
			}},
			HealthStatus: e.health,
		}
		if e.weight > 0 {
			lbe.LoadBalancingWeight = wrapperspb.UInt32(e.weight)
		}
		out.Endpoints = append(out.Endpoints, &endpointv3.LocalityLbEndpoints{
			Locality:    &corev3.Locality{Zone: e.zone},
			Priority:    e.priority,
			LbEndpoints: []*endpointv3.LbEndpoint{lbe},
		})
	}
	return out
}

func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			ServiceName: name + "-svc",
			EdsConfig:   &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
		},
	}
}

func newTestManager(t *testing.T) *Manager {
	m := NewManager(Options{Stats: stats.NewStore()})
	t.Cleanup(m.Close)
	return m
}

func hostByAddr(c *Cluster, addr string) *Host {
	for _, h := range c.Hosts() {
		if h.Address() == addr {
			return h
		}
	}
	return nil
}

func TestEDSServiceName(t *testing.T) {
	c := edsCluster("web")
	if got := EDSServiceName(c); got != "web-svc" {
		t.Errorf("service_name set: %q, want web-svc", got)
	}
	c.EdsClusterConfig.ServiceName = ""
	if got := EDSServiceName(c); got != "web" {
		t.Errorf("service_name empty: %q, want the cluster name", got)
	}
	if got := EDSServiceName(&clusterv3.Cluster{Name: "s"}); got != "" {
		t.Errorf("STATIC cluster: %q, want empty", got)
	}
}

func TestEDSClusterConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(c *clusterv3.Cluster)
		want   string
	}{
		{"no_ads", func(c *clusterv3.Cluster) { c.EdsClusterConfig.EdsConfig = &corev3.ConfigSource{} }, "eds_cluster_config.eds_config: set ads {}"},
		{"load_assignment", func(c *clusterv3.Cluster) { c.LoadAssignment = cla("web") }, "load_assignment: an EDS cluster's endpoints come from EDS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestManager(t)
			c := edsCluster("web")
			tc.mutate(c)
			err := m.AddOrUpdate(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("AddOrUpdate = %v, want %q", err, tc.want)
			}
			if err := m.Check(c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want %q", err, tc.want)
			}
			if m.Get("web") != nil {
				t.Fatal("a cluster that failed to build was published")
			}
		})
	}
}

func TestEDSReadyAfterFirstAssignment(t *testing.T) {
	m := newTestManager(t)
	if err := m.AddOrUpdate(edsCluster("web")); err != nil {
		t.Fatal(err)
	}
	c := m.Get("web")
	select {
	case <-c.Ready():
		t.Fatal("EDS cluster ready before its first assignment")
	default:
	}
	if err := c.UpdateAssignment(cla("web-svc")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Ready():
	default:
		t.Fatal("EDS cluster not ready after an (empty) assignment")
	}
	if err := m.AddOrUpdateWithAssignment(edsCluster("web"), cla("web-svc", ep{addr: "10.0.0.1", port: 80})); err != nil {
		t.Fatal(err)
	}
	if got := len(m.Get("web").Hosts()); got != 1 {
		t.Fatalf("cluster published with its assignment has %d hosts, want 1", got)
	}
	static := &clusterv3.Cluster{Name: "s", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}}
	if err := m.AddOrUpdate(static); err != nil {
		t.Fatal(err)
	}
	if err := m.Get("s").UpdateAssignment(cla("s")); err == nil {
		t.Fatal("UpdateAssignment on a STATIC cluster succeeded")
	}
}

func TestUpdateAssignmentKeepsHosts(t *testing.T) {
	m := newTestManager(t)
	if err := m.AddOrUpdateWithAssignment(edsCluster("web"), cla("web-svc",
		ep{addr: "10.0.0.1", port: 80}, ep{addr: "10.0.0.2", port: 80})); err != nil {
		t.Fatal(err)
	}
	c := m.Get("web")
	a, b := hostByAddr(c, "10.0.0.1:80"), hostByAddr(c, "10.0.0.2:80")
	if a == nil || b == nil {
		t.Fatalf("hosts: %v", c.Hosts())
	}
	for _, tc := range []struct {
		name   string
		eps    []ep
		check  func(t *testing.T)
		errSub string
	}{
		{name: "add_and_remove", eps: []ep{{addr: "10.0.0.2", port: 80}, {addr: "10.0.0.3", port: 80}}, check: func(t *testing.T) {
			if hostByAddr(c, "10.0.0.2:80") != b {
				t.Error("the unchanged endpoint got a new Host")
			}
			if hostByAddr(c, "10.0.0.1:80") != nil || hostByAddr(c, "10.0.0.3:80") == nil {
				t.Errorf("hosts after the update: %d", len(c.Hosts()))
			}
		}},
		{name: "weight_priority_zone_in_place", eps: []ep{{addr: "10.0.0.2", port: 80, weight: 7, priority: 1, zone: "z"}}, check: func(t *testing.T) {
			h := hostByAddr(c, "10.0.0.2:80")
			if h != b {
				t.Fatal("a metadata change replaced the Host (its pool would be lost)")
			}
			if h.Weight() != 7 || h.Priority() != 1 || h.Locality().Zone != "z" {
				t.Errorf("host metadata: weight %d priority %d zone %q", h.Weight(), h.Priority(), h.Locality().Zone)
			}
			if got := c.Stats.MembershipTotal.Value(); got != 1 {
				t.Errorf("membership_total = %d, want 1", got)
			}
		}},
		{name: "health_in_place", eps: []ep{{addr: "10.0.0.2", port: 80, priority: 1, weight: 7, zone: "z", health: corev3.HealthStatus_UNHEALTHY}}, check: func(t *testing.T) {
			if h := hostByAddr(c, "10.0.0.2:80"); h != b || h.Health() != HealthUnhealthy {
				t.Errorf("health update: same host %v, health %v", h == b, h.Health())
			}
			if got := c.Stats.MembershipHealthy.Value(); got != 0 {
				t.Errorf("membership_healthy = %d, want 0", got)
			}
		}},
		{name: "bad_address_changes_nothing", eps: []ep{{addr: "web.example", port: 80}}, errSub: "endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: \"web.example\" is not an IP address", check: func(t *testing.T) {
			if hostByAddr(c, "10.0.0.2:80") != b || len(c.Hosts()) != 1 {
				t.Error("a rejected assignment changed the hosts")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.UpdateAssignment(cla("web-svc", tc.eps...))
			if tc.errSub == "" && err != nil || tc.errSub != "" && (err == nil || !strings.Contains(err.Error(), tc.errSub)) {
				t.Fatalf("UpdateAssignment = %v, want error %q", err, tc.errSub)
			}
			tc.check(t)
		})
	}
}

// TestRemovedHostDrains: a connection in use on a removed host survives the
// update and closes when released; the pool still serves a request that
// picked the host before it was removed.
func TestRemovedHostDrains(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	port := uint32(ln.Addr().(*net.TCPAddr).Port)
	m := newTestManager(t)
	if err := m.AddOrUpdateWithAssignment(edsCluster("web"), cla("web-svc", ep{addr: "127.0.0.1", port: port})); err != nil {
		t.Fatal(err)
	}
	c := m.Get("web")
	h := c.Hosts()[0]
	conn, err := h.H1().Acquire(time.Now().Add(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	server := <-accepted
	defer server.Close()
	if err := c.UpdateAssignment(cla("web-svc", ep{addr: "127.0.0.2", port: port})); err != nil {
		t.Fatal(err)
	}
	if hostByAddr(c, h.Address()) != nil {
		t.Fatal("removed host still in the host set")
	}
	// The connection in use is still open: the peer sees no EOF.
	server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := server.Read(make([]byte, 1)); err == nil || !isTimeout(err) {
		t.Fatalf("connection in use was closed by the update: %v", err)
	}
	// A late request on the removed host still gets a connection.
	late, err := h.H1().Acquire(time.Now().Add(5 * time.Second))
	if err != nil {
		t.Fatalf("acquire on a draining host: %v", err)
	}
	late.Release(true)
	conn.Release(true) // keep-alive, but the pool is draining: it closes
	if n := h.H1().IdleCount(); n != 0 {
		t.Fatalf("draining pool kept %d idle connections", n)
	}
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := server.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("released connection of a removed host not closed: %v", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
