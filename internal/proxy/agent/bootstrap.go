// Package agent is the sidecar agent, in process, as Istio's pilot-agent:
// it builds the bootstrap of a mesh proxy (an Istio-style node identity
// and metadata, the admin address, ADS to weft-control for listeners and
// clusters, and the sds-grpc cluster when a CA is configured), and runs
// the workload's certificate handling (StartSecurity: the certificate
// manager of package certs and the SDS server of package sds), and serves
// the status port (StartStatus: Istio's 15020, the app probes the injector
// rewrote). `weft-proxy sidecar` and the tests that run sidecars in process use it.
package agent

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"
)

// Options describe the proxy and where its control plane is.
type Options struct {
	// DiscoveryAddress is weft-control's xDS address, host:port
	// (plain-text gRPC for now).
	DiscoveryAddress string
	// Type is "sidecar" or "router" (a gateway).
	Type      string
	IP        string
	Name      string // the workload (pod) name
	Namespace string
	Labels    map[string]string
	// ServiceAccount, HTTPProxyPort and HTTPProxyAddress become node
	// metadata when set.
	ServiceAccount   string
	HTTPProxyPort    string
	HTTPProxyAddress string
	// AdminAddress is the admin's ip:port.
	AdminAddress string
	// Metadata holds more node metadata (ISTIO_META_* variables).
	Metadata map[string]string
	// MetricsAddress, ip:port, is where Prometheus scrapes the proxy's
	// metrics (Istio's 15090): the bootstrap gets Istio's static listener
	// that routes /stats/prometheus to the admin (metrics.go). Empty: none.
	MetricsAddress string
	// HealthAddress, ip:port, serves Istio's readiness endpoint
	// /healthz/ready (Istio's 15021) from the admin's /ready. Empty: none.
	HealthAddress string
	// ClusterID is the node metadata CLUSTER_ID, the label
	// source_cluster / destination_cluster (Istio's default "Kubernetes").
	ClusterID string
	// SDSSocket is the agent's SDS Unix socket. When set (a CA is
	// configured), the bootstrap gets Istio's static cluster sds-grpc
	// pointing at it; when empty the bootstrap has no SDS (plain text).
	SDSSocket string
}

// Node metadata keys weft-control reads (internal/model/proxy.go; Istio's
// names).
const (
	metaLabels           = "LABELS"
	metaNamespace        = "NAMESPACE"
	metaServiceAccount   = "SERVICE_ACCOUNT"
	metaWorkloadName     = "WORKLOAD_NAME"
	metaHTTPProxyPort    = "HTTP_PROXY_PORT"
	metaHTTPProxyAddress = "HTTP_PROXY_ADDRESS"
	metaInstanceIPs      = "INSTANCE_IPS"
	metaName             = "NAME"
	metaClusterID        = "CLUSTER_ID"
	// metaAdminAddress is the admin's ip:port, for `weft proxy-config`
	// (a weft extension; model.MetaAdminAddress).
	metaAdminAddress = "WEFT_ADMIN_ADDRESS"
	// metaMetricsAddress is the Prometheus listener's ip:port (a weft
	// extension; dashboard.MetaMetricsAddress).
	metaMetricsAddress = "WEFT_METRICS_ADDRESS"
)

// Static clusters, Istio's names: the control plane, and the agent's SDS
// server that xDS TLS contexts reach with
// sds_config.api_config_source.grpc_services[].envoy_grpc.cluster_name.
const (
	xdsCluster = "xds-grpc"
	// SDSCluster is the cluster of the agent's SDS server.
	SDSCluster = "sds-grpc"
)

// NodeID is Istio's node id: TYPE~IP~NAME.NAMESPACE~NAMESPACE.svc.cluster.local.
func (o *Options) NodeID() string {
	return fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", o.Type, o.IP, o.Name, o.Namespace, o.Namespace)
}

// metadata is the node metadata: Istio's keys, then the other
// ISTIO_META_* variables.
func (o *Options) metadata() (*structpb.Struct, error) {
	labels := o.Labels
	fields := map[string]any{}
	for k, v := range o.Metadata {
		fields[k] = v
	}
	lv := map[string]any{}
	for k, v := range labels {
		lv[k] = v
	}
	fields[metaLabels] = lv
	fields[metaNamespace] = o.Namespace
	fields[metaWorkloadName] = o.Name
	fields[metaInstanceIPs] = o.IP
	fields[metaName] = o.Name
	fields[metaClusterID] = o.clusterID()
	if v, ok := o.Metadata[metaWorkloadName]; ok && v != "" {
		fields[metaWorkloadName] = v // ISTIO_META_WORKLOAD_NAME names the workload apart from the pod
	}
	set := func(key, v string) {
		if v != "" {
			fields[key] = v
		}
	}
	set(metaServiceAccount, o.ServiceAccount)
	set(metaHTTPProxyPort, o.HTTPProxyPort)
	set(metaHTTPProxyAddress, o.HTTPProxyAddress)
	if a := o.reachableAdmin(); a != "" {
		fields[metaAdminAddress] = a
	}
	// Where the Istio metrics are served, for weft-control's dashboard
	// (which otherwise scrapes IP:15090).
	set(metaMetricsAddress, o.MetricsAddress)
	return structpb.NewStruct(fields)
}

// reachableAdmin is the admin address to report: on the workload's IP when
// the admin binds every address, "" when its port is 0 (not known before
// the proxy binds it) or the address does not parse.
func (o *Options) reachableAdmin() string {
	ap, err := netip.ParseAddrPort(o.AdminAddress)
	if err != nil || ap.Port() == 0 {
		return ""
	}
	if ap.Addr().IsUnspecified() && o.IP != "" {
		return net.JoinHostPort(o.IP, strconv.Itoa(int(ap.Port())))
	}
	return o.AdminAddress
}

// serviceCluster is node.cluster: the app label (or the workload name) and
// the namespace, as Istio derives it.
func (o *Options) serviceCluster() string {
	app := o.Labels["app"]
	if app == "" {
		app = o.Name
	}
	return app + "." + o.Namespace
}

// Bootstrap builds the bootstrap: the node, the admin, ADS to
// weft-control for listeners and clusters (and through them routes and
// endpoints), the static cluster of the control plane (HTTP/2, plain
// text for now) and, with SDSSocket, the sds-grpc cluster.
func Bootstrap(o *Options) (*bootstrapv3.Bootstrap, error) {
	meta, err := o.metadata()
	if err != nil {
		return nil, err
	}
	admin, err := netip.ParseAddrPort(o.AdminAddress)
	if err != nil {
		return nil, fmt.Errorf("admin address %q: want ip:port", o.AdminAddress)
	}
	xds, err := xdsGRPCCluster(o.DiscoveryAddress)
	if err != nil {
		return nil, err
	}
	ads := func() *corev3.ConfigSource {
		// initial_fetch_timeout 0: wait for the control plane for ever, as
		// Istio's bootstrap does.
		return &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			ResourceApiVersion:    corev3.ApiVersion_V3,
			InitialFetchTimeout:   durationpb.New(0),
		}
	}
	clusters := []*clusterv3.Cluster{xds}
	if o.SDSSocket != "" {
		sds, err := sdsGRPCCluster(o.SDSSocket)
		if err != nil {
			return nil, err
		}
		clusters = append(clusters, sds)
	}
	static := &bootstrapv3.Bootstrap_StaticResources{Clusters: clusters}
	if o.MetricsAddress != "" {
		if err := addMetricsListener(static, o.MetricsAddress, admin); err != nil {
			return nil, err
		}
	}
	if o.HealthAddress != "" {
		if err := addHealthListener(static, o.HealthAddress, admin); err != nil {
			return nil, err
		}
	}
	return &bootstrapv3.Bootstrap{
		Node:  &corev3.Node{Id: o.NodeID(), Cluster: o.serviceCluster(), Metadata: meta},
		Admin: &bootstrapv3.Admin{Address: socketAddress(admin.Addr().String(), uint32(admin.Port()))},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:                   corev3.ApiConfigSource_GRPC,
				TransportApiVersion:       corev3.ApiVersion_V3,
				SetNodeOnFirstMessageOnly: true,
				GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: xdsCluster},
				}}},
			},
			LdsConfig: ads(),
			CdsConfig: ads(),
		},
		StaticResources: static,
	}, nil
}

// xdsGRPCCluster is the control plane's cluster: STATIC for an IP address,
// STRICT_DNS for a name.
func xdsGRPCCluster(addr string) (*clusterv3.Cluster, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("discovery address %q: want host:port", addr)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("discovery address %q: bad port", addr)
	}
	typ := clusterv3.Cluster_STATIC
	if _, err := netip.ParseAddr(host); err != nil {
		typ = clusterv3.Cluster_STRICT_DNS
	}
	return grpcCluster(xdsCluster, typ, socketAddress(host, uint32(p)))
}

// sdsGRPCCluster is Istio's sds-grpc: a STATIC HTTP/2 cluster whose one
// endpoint is the agent's Unix socket (address pipe.path), as in Istio's
// bootstrap template (tools/packaging/common/envoy_bootstrap.json).
func sdsGRPCCluster(path string) (*clusterv3.Cluster, error) {
	if path == "" || path[0] != '/' {
		return nil, fmt.Errorf("SDS socket %q: want an absolute path", path)
	}
	return grpcCluster(SDSCluster, clusterv3.Cluster_STATIC, &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: path}}})
}

// grpcCluster is a cluster of one endpoint spoken to in HTTP/2 (gRPC).
func grpcCluster(name string, typ clusterv3.Cluster_DiscoveryType, addr *corev3.Address) (*clusterv3.Cluster, error) {
	opts, err := anypb.New(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}},
	})
	if err != nil {
		return nil, err
	}
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
		ConnectTimeout:       durationpb.New(1e9),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: addr}},
			}}}},
		},
		TypedExtensionProtocolOptions: map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts},
	}, nil
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// BootstrapYAML renders the bootstrap as YAML with Envoy's
// snake_case field names and sorted keys (stable output).
func BootstrapYAML(o *Options) ([]byte, error) {
	b, err := Bootstrap(o)
	if err != nil {
		return nil, err
	}
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return append([]byte("# weft-proxy sidecar bootstrap for node "+o.NodeID()+"\n"), y...), nil
}
