package translate

import (
	"math"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/model"
)

// Istio's mesh defaults (MeshConfig): connectTimeout 10s, dnsRefreshRate
// 60s, and ring-hash minimum size 1024 (Envoy's default, which Istio sets
// explicitly).
var (
	defaultConnectTimeout = durationpb.New(10e9)
	defaultDNSRefreshRate = durationpb.New(60e9)
)

const defaultMinRingSize = 1024

// mergedPolicy returns the traffic policy of rule dr for port and subset,
// as Istio's MergeSubsetTrafficPolicy: the destination-level policy with
// the port's portLevelSettings replacing its components wholesale (fields
// a port-level policy omits fall back to defaults, not to the destination
// level); then the subset's policy (its own port level first) overriding
// each component it sets — all four when it has settings for the port.
func mergedPolicy(dr *networking.DestinationRule, port uint32, subset string) *networking.TrafficPolicy {
	original, _ := portLevel(dr.TrafficPolicy, port)
	if subset == "" {
		return original
	}
	var sub *networking.TrafficPolicy
	for _, s := range dr.Subsets {
		if s.Name == subset {
			sub = s.TrafficPolicy
			break
		}
	}
	if sub == nil {
		return original
	}
	sub, hasPortLevel := portLevel(sub, port)
	if original == nil {
		return sub
	}
	out := shallowPolicy(original)
	if sub.ConnectionPool != nil || hasPortLevel {
		out.ConnectionPool = sub.ConnectionPool
	}
	if sub.OutlierDetection != nil || hasPortLevel {
		out.OutlierDetection = sub.OutlierDetection
	}
	if sub.LoadBalancer != nil || hasPortLevel {
		out.LoadBalancer = sub.LoadBalancer
	}
	if sub.Tls != nil || hasPortLevel {
		out.Tls = sub.Tls
	}
	if sub.Tunnel != nil {
		out.Tunnel = sub.Tunnel
	}
	if sub.ProxyProtocol != nil {
		out.ProxyProtocol = sub.ProxyProtocol
	}
	if sub.RetryBudget != nil {
		out.RetryBudget = sub.RetryBudget
	}
	return out
}

// portLevel applies policy's settings for port, if any (Istio's
// GetPortLevelTrafficPolicy); the bool says whether there were some.
func portLevel(policy *networking.TrafficPolicy, port uint32) (*networking.TrafficPolicy, bool) {
	if policy == nil {
		return nil, false
	}
	for _, p := range policy.PortLevelSettings {
		if p.GetPort().GetNumber() == port {
			out := shallowPolicy(policy)
			out.ConnectionPool = p.ConnectionPool
			out.OutlierDetection = p.OutlierDetection
			out.LoadBalancer = p.LoadBalancer
			out.Tls = p.Tls
			return out, true
		}
	}
	return policy, false
}

// shallowPolicy copies a policy's components, not its port-level settings.
func shallowPolicy(p *networking.TrafficPolicy) *networking.TrafficPolicy {
	return &networking.TrafficPolicy{
		LoadBalancer:     p.LoadBalancer,
		ConnectionPool:   p.ConnectionPool,
		OutlierDetection: p.OutlierDetection,
		Tls:              p.Tls,
		Tunnel:           p.Tunnel,
		ProxyProtocol:    p.ProxyProtocol,
		RetryBudget:      p.RetryBudget,
	}
}

// defaultThresholds are Istio's circuit-breaker defaults: every limit at
// its maximum (Envoy's own defaults of 1024 and 3 retries cause 503s under
// churn, see Istio's getDefaultCircuitBreakerThresholds).
func defaultThresholds() *clusterv3.CircuitBreakers_Thresholds {
	maxU := wrapperspb.UInt32(math.MaxUint32)
	return &clusterv3.CircuitBreakers_Thresholds{
		MaxConnections:     maxU,
		MaxPendingRequests: maxU,
		MaxRequests:        maxU,
		MaxRetries:         maxU,
	}
}

// applyConnectionPool sets connect timeout, circuit breakers, upstream TCP
// keepalive and HTTP connection options from a connectionPool, as Istio's
// applyConnectionPool (zero means "not set" for the integer limits). port is the service port
// (its protocol decides the HTTP options); nil for non-HTTP use.
func applyConnectionPool(c *clusterv3.Cluster, cp *networking.ConnectionPoolSettings, port model.Port) {
	t := defaultThresholds()
	c.ConnectTimeout = defaultConnectTimeout
	var idle *durationpb.Duration
	var maxReqPerConn, maxStreams uint32
	if h := cp.GetHttp(); h != nil {
		if h.Http2MaxRequests > 0 {
			t.MaxRequests = wrapperspb.UInt32(uint32(h.Http2MaxRequests))
		}
		if h.Http1MaxPendingRequests > 0 {
			t.MaxPendingRequests = wrapperspb.UInt32(uint32(h.Http1MaxPendingRequests))
		}
		if h.MaxRetries > 0 {
			t.MaxRetries = wrapperspb.UInt32(uint32(h.MaxRetries))
		}
		idle = h.IdleTimeout
		maxReqPerConn = uint32(h.MaxRequestsPerConnection)
		maxStreams = uint32(h.MaxConcurrentStreams)
	}
	if tcp := cp.GetTcp(); tcp != nil {
		if tcp.ConnectTimeout != nil {
			c.ConnectTimeout = tcp.ConnectTimeout
		}
		if tcp.MaxConnections > 0 {
			t.MaxConnections = wrapperspb.UInt32(uint32(tcp.MaxConnections))
		}
		if idle == nil {
			idle = tcp.IdleTimeout
		}
		applyTCPKeepalive(c, tcp.TcpKeepalive)
	}
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{t}}
	if !port.Protocol.IsHTTP() && cp.GetHttp().GetH2UpgradePolicy() != networking.ConnectionPoolSettings_HTTPSettings_UPGRADE {
		return
	}
	opts := httpOptions(port, cp.GetHttp())
	if idle != nil || maxReqPerConn > 0 {
		opts.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: idle}
		if maxReqPerConn > 0 {
			opts.CommonHttpProtocolOptions.MaxRequestsPerConnection = wrapperspb.UInt32(maxReqPerConn)
		}
	}
	if h2 := opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions(); h2 != nil && maxStreams > 0 {
		h2.MaxConcurrentStreams = wrapperspb.UInt32(maxStreams)
	}
	if opts.CommonHttpProtocolOptions == nil && !usesHTTP2(opts) && opts.GetUseDownstreamProtocolConfig() == nil {
		return // HTTP/1.1 with no option set: Envoy's default, nothing to send
	}
	c.TypedExtensionProtocolOptions = map[string]*anyMsg{httpOptionsName: mustAny(opts)}
}

// httpOptions returns the upstream protocol choice for an HTTP port:
// HTTP/2 for HTTP2 and GRPC ports or when the DestinationRule forces the
// upgrade (h2UpgradePolicy UPGRADE), the client's protocol with
// useClientProtocol, else HTTP/1.1 (Istio's setUpstreamProtocol and
// applyH2Upgrade; the mesh-wide h2UpgradePolicy default is DO_NOT_UPGRADE).
func httpOptions(port model.Port, h *networking.ConnectionPoolSettings_HTTPSettings) *httpv3.HttpProtocolOptions {
	if h.GetUseClientProtocol() {
		return &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
				HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
				Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
			},
		}}
	}
	h2 := port.Protocol.IsHTTP2()
	switch h.GetH2UpgradePolicy() {
	case networking.ConnectionPoolSettings_HTTPSettings_UPGRADE:
		h2 = true
	case networking.ConnectionPoolSettings_HTTPSettings_DO_NOT_UPGRADE:
		h2 = port.Protocol.IsHTTP2()
	}
	explicit := &httpv3.HttpProtocolOptions_ExplicitHttpConfig{}
	if h2 {
		explicit.ProtocolConfig = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
			Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
		}
	} else {
		explicit.ProtocolConfig = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
			HttpProtocolOptions: &corev3.Http1ProtocolOptions{},
		}
	}
	return &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: explicit,
	}}
}

// usesHTTP2 reports whether opts select HTTP/2 explicitly.
func usesHTTP2(opts *httpv3.HttpProtocolOptions) bool {
	return opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
}

// lbOptions say which load-balancing policies the client accepts.
type lbOptions struct {
	// proxyless restricts the policy to those grpc-go accepts
	// (ROUND_ROBIN, LEAST_REQUEST, RING_HASH; see grpc-go's
	// xdsresource.validateClusterAndConstructClusterUpdate), ROUND_ROBIN
	// being the default.
	proxyless bool
}

// applyLoadBalancer sets the cluster's policy from a loadBalancer, as
// Istio's applyLoadBalancer: LEAST_REQUEST by default (Istio's default
// since 1.14), ROUND_ROBIN, RANDOM; consistentHash gives RING_HASH
// (minimum ring size 1024 unless set) or MAGLEV. PASSTHROUGH and the
// policies a proxyless client lacks fall back to the default; the static
// warnings say so.
func applyLoadBalancer(c *clusterv3.Cluster, lb *networking.LoadBalancerSettings, o lbOptions) {
	c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	if o.proxyless {
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	}
	switch lb.GetSimple() {
	case networking.LoadBalancerSettings_LEAST_CONN, networking.LoadBalancerSettings_LEAST_REQUEST:
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	case networking.LoadBalancerSettings_ROUND_ROBIN:
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	case networking.LoadBalancerSettings_RANDOM:
		if !o.proxyless {
			c.LbPolicy = clusterv3.Cluster_RANDOM
		}
	}
	ch := lb.GetConsistentHash()
	if ch == nil {
		return
	}
	if mg := ch.GetMaglev(); mg != nil && !o.proxyless {
		c.LbPolicy = clusterv3.Cluster_MAGLEV
		if mg.TableSize != 0 {
			c.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{
				TableSize: wrapperspb.UInt64(mg.TableSize),
			}}
		}
		return
	}
	minSize := uint64(defaultMinRingSize)
	if n := ch.GetRingHash().GetMinimumRingSize(); n != 0 {
		minSize = n
	} else if n := ch.GetMinimumRingSize(); n != 0 { //nolint:staticcheck // deprecated field still honoured, as Istio
		minSize = n
	}
	c.LbPolicy = clusterv3.Cluster_RING_HASH
	c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
		MinimumRingSize: wrapperspb.UInt64(minSize),
	}}
}
