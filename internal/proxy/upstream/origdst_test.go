package upstream

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/upstream/lb"
)

func origDstCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(time.Second),
	}
}

// TestOriginalDstCluster: the host is the connection's original
// destination, made once per address and reused; no original destination
// means no host; unused hosts go at cleanup.
func TestOriginalDstCluster(t *testing.T) {
	m := NewManager(Options{Stats: stats.NewStore()})
	defer m.Close()
	if err := m.AddOrUpdate(origDstCluster("PassthroughCluster")); err != nil {
		t.Fatal(err)
	}
	c := m.Get("PassthroughCluster")
	select {
	case <-c.Ready():
	default:
		t.Fatal("an ORIGINAL_DST cluster is ready at once")
	}
	a := netip.MustParseAddrPort("10.1.2.3:8080")
	h := c.Choose(&lb.Context{OriginalDst: a})
	if h == nil || h.Address() != "10.1.2.3:8080" {
		t.Fatalf("host %v, want 10.1.2.3:8080", h)
	}
	if again := c.Choose(&lb.Context{OriginalDst: a}); again != h {
		t.Error("the same original destination made a second host")
	}
	if c.Choose(&lb.Context{}) != nil {
		t.Error("a connection without original destination got a host")
	}
	if n := len(c.Hosts()); n != 1 {
		t.Errorf("%d hosts shown, want 1", n)
	}
	c.orig.cleanup() // used since the last round: kept
	if len(c.Hosts()) != 1 {
		t.Fatal("a used host was removed")
	}
	c.orig.cleanup() // unused for a whole round: removed
	if len(c.Hosts()) != 0 || (*c.orig.hosts.Load())[a] != nil {
		t.Error("an unused host was kept")
	}
}

func TestOriginalDstClusterErrors(t *testing.T) {
	m := NewManager(Options{Stats: stats.NewStore()})
	defer m.Close()
	rr := origDstCluster("x")
	rr.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	provided := &clusterv3.Cluster{Name: "y", LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED}
	bind := origDstCluster("z")
	bind.UpstreamBindConfig = &corev3.BindConfig{SourceAddress: &corev3.SocketAddress{Address: "localhost"}}
	for _, tc := range []struct {
		cfg  *clusterv3.Cluster
		want string
	}{
		{rr, "lb_policy: ROUND_ROBIN is not valid for type ORIGINAL_DST"},
		{provided, "CLUSTER_PROVIDED needs type ORIGINAL_DST"},
		{bind, `upstream_bind_config.source_address.address: "localhost" is not an IP address`},
	} {
		if err := m.AddOrUpdate(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.cfg.GetName(), err, tc.want)
		}
	}
}

// TestUpstreamBindConfig: connections leave from source_address, as
// Istio's InboundPassthroughCluster binds 127.0.0.6.
func TestUpstreamBindConfig(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	from := make(chan netip.AddrPort, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			from <- c.RemoteAddr().(*net.TCPAddr).AddrPort()
			c.Close()
		}
	}()
	m := NewManager(Options{Stats: stats.NewStore()})
	defer m.Close()
	cfg := origDstCluster("InboundPassthroughCluster")
	cfg.UpstreamBindConfig = &corev3.BindConfig{SourceAddress: &corev3.SocketAddress{Address: "127.0.0.6"}}
	if err := m.AddOrUpdate(cfg); err != nil {
		t.Fatal(err)
	}
	h := m.Get(cfg.Name).Choose(&lb.Context{OriginalDst: ln.Addr().(*net.TCPAddr).AddrPort()})
	conn, release, err := h.DialTCP(time.Now().Add(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	release()
	select {
	case a := <-from:
		if a.Addr() != netip.MustParseAddr("127.0.0.6") {
			t.Errorf("connection from %v, want 127.0.0.6", a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no connection")
	}
}

// BenchmarkOriginalDstChoose: the per-request pick of an existing host
// (lock-free map read, no allocation).
func BenchmarkOriginalDstChoose(b *testing.B) {
	m := NewManager(Options{Stats: stats.NewStore()})
	defer m.Close()
	if err := m.AddOrUpdate(origDstCluster("p")); err != nil {
		b.Fatal(err)
	}
	c := m.Get("p")
	ctx := lb.Context{OriginalDst: netip.MustParseAddrPort("10.0.0.1:80")}
	c.Choose(&ctx)
	b.ReportAllocs()
	for b.Loop() {
		if c.Choose(&ctx) == nil {
			b.Fatal("no host")
		}
	}
}
