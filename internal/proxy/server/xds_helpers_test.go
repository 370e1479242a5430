package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/xdsclient"
	"github.com/weftmesh/weft/internal/proxy/xdsclient/xdstest"
)

const testNode = "sidecar~127.0.0.1~test-1.default~default.svc.cluster.local"

// dynamicBootstrap is weft-proxy's bootstrap for dynamic mode, as
// `weft-proxy sidecar` writes it, with the control plane on port %d.
const dynamicBootstrap = `
node: {id: "` + testNode + `", cluster: test.default}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services: [{envoy_grpc: {cluster_name: xds-grpc}}]
  cds_config: {ads: {}, resource_api_version: V3}
  lds_config: {ads: {}, resource_api_version: V3}
static_resources:
  clusters:
  - name: xds-grpc
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: xds-grpc
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
`

// startDynamic runs a weft-proxy in dynamic mode against cp and waits
// until it is initialized.
func startDynamic(t *testing.T, cp *xdstest.Server, drain time.Duration) *Server {
	t.Helper()
	srv := startDynamicOpts(t, cp, drain)
	select {
	case <-srv.Initialized():
	case <-time.After(10 * time.Second):
		t.Fatal("dynamic server not initialized within 10 s")
	}
	return srv
}

// newDynamicNoWait runs a weft-proxy in dynamic mode without waiting.
func newDynamicNoWait(t *testing.T, cp *xdstest.Server) *Server {
	return startDynamicOpts(t, cp, 3*time.Second)
}

func startDynamicOpts(t *testing.T, cp *xdstest.Server, drain time.Duration) *Server {
	t.Helper()
	_, port, _ := net.SplitHostPort(cp.Addr())
	p, _ := strconv.Atoi(port)
	b, err := bootstrap.ParseAndValidate([]byte(fmt.Sprintf(dynamicBootstrap, p)), t.Name()+".yaml")
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	srv, err := New(Options{
		Bootstrap:  b,
		DrainTime:  drain,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		XDSBackoff: xdsclient.Backoff{Base: 100 * time.Millisecond, Max: 500 * time.Millisecond},
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv
}

// upstream is a loopback HTTP server answering its tag; a request with
// ?hold=1 waits until release is closed.
type testUpstream struct {
	addr    string
	tag     string
	release chan struct{}
	once    sync.Once
	held    chan struct{} // receives when a held request arrived
}

// free lets held requests finish.
func (u *testUpstream) free() { u.once.Do(func() { close(u.release) }) }

func startUpstream(t *testing.T, tag string) *testUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &testUpstream{addr: ln.Addr().String(), tag: tag, release: make(chan struct{}), held: make(chan struct{}, 16)}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("hold") != "" {
			u.held <- struct{}{}
			select {
			case <-u.release:
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, tag)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		u.free()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return u
}

func (u *testUpstream) host() (string, uint32) {
	h, p, _ := net.SplitHostPort(u.addr)
	n, _ := strconv.Atoi(p)
	return h, uint32(n)
}

func anyOf(t testing.TB, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func sockAddr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// edsCluster is an EDS cluster whose service name is its name.
func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
	}
}

// assignment is the ClusterLoadAssignment of cluster name over ups.
func assignment(name string, ups ...*testUpstream) *endpointv3.ClusterLoadAssignment {
	la := &endpointv3.LocalityLbEndpoints{}
	for _, u := range ups {
		ip, port := u.host()
		la.LbEndpoints = append(la.LbEndpoints, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
			Endpoint: &endpointv3.Endpoint{Address: sockAddr(ip, port)},
		}})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{la}}
}

// hcmListener is a listener on 127.0.0.1:0 whose connection manager takes
// route configuration route from RDS.
func hcmListener(t testing.TB, name, statPrefix, route string) *listenerv3.Listener {
	h := &hcmv3.HttpConnectionManager{
		StatPrefix: statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: route, ConfigSource: adsSource(),
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})},
		}},
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: sockAddr("127.0.0.1", 0),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, h)},
		}}}},
	}
}

// tcpListener is a listener on 127.0.0.1:0 proxying TCP to cluster.
func tcpListener(t testing.TB, name, cluster string, idle time.Duration) *listenerv3.Listener {
	p := &tcpv3.TcpProxy{StatPrefix: name, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster}, IdleTimeout: durationpb.New(idle)}
	return &listenerv3.Listener{
		Name:    name,
		Address: sockAddr("127.0.0.1", 0),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, p)},
		}}}},
	}
}

// weighted is a route configuration sending every request to clusters
// with the given weights ("a=90,b=10").
func weighted(name, spec string) *routev3.RouteConfiguration {
	wc := &routev3.WeightedCluster{}
	for _, part := range strings.Split(spec, ",") {
		c, w, _ := strings.Cut(part, "=")
		n, _ := strconv.Atoi(w)
		wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{Name: c, Weight: wrapperspb.UInt32(uint32(n))})
	}
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{
		Name: "all", Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}}},
		}},
	}}}
}

// snapshot builds xdstest resources, every type at version v.
func snapshot(v string, clusters []*clusterv3.Cluster, clas []*endpointv3.ClusterLoadAssignment, listeners []*listenerv3.Listener, routes []*routev3.RouteConfiguration) xdstest.Resources {
	r := xdstest.Resources{}
	add := func(typ string, items []types.Resource) { r[typ] = xdstest.Versioned{Version: v, Items: items} }
	var cs, es, ls, rs []types.Resource
	for _, c := range clusters {
		cs = append(cs, c)
	}
	for _, e := range clas {
		es = append(es, e)
	}
	for _, l := range listeners {
		ls = append(ls, l)
	}
	for _, rc := range routes {
		rs = append(rs, rc)
	}
	add(resource.ClusterType, cs)
	add(resource.EndpointType, es)
	add(resource.ListenerType, ls)
	add(resource.RouteType, rs)
	return r
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
}

// get does a GET on the listener and returns status and body ("" and the
// error text on a transport error).
func get(c *http.Client, url string) (int, string) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, string(b)
}

func client() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8}, Timeout: 10 * time.Second}
}

// listenerURL waits for an active listener and returns its URL.
func listenerURL(t *testing.T, s *Server, name string) string {
	t.Helper()
	waitFor(t, "listener "+name+" active", func() bool { return s.ListenerAddr(name) != nil })
	return "http://" + s.ListenerAddr(name).String()
}
