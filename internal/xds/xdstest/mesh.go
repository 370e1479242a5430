package xdstest

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
)

// MeshOptions size a synthetic mesh. Zero fields take the defaults of
// weft's control-plane benchmark (issue 3): 1,000 services in 10
// namespaces, one HTTP port each, 10 endpoints each, and 100 of them with a
// VirtualService that splits 90/10 over DestinationRule subsets v1 and v2.
type MeshOptions struct {
	Services   int
	Namespaces int
	Endpoints  int
	Splits     int
}

func (o MeshOptions) withDefaults() MeshOptions {
	if o.Services == 0 {
		o.Services = 1000
	}
	if o.Namespaces == 0 {
		o.Namespaces = 10
	}
	if o.Endpoints == 0 {
		o.Endpoints = 10
	}
	if o.Splits == 0 {
		o.Splits = o.Services / 10
	}
	o.Splits = min(o.Splits, o.Services)
	return o
}

// MeshPort is the port of every service of the synthetic mesh.
const MeshPort = 8080

// Mesh is a synthetic mesh: its services are built once and shared by its
// snapshots.
type Mesh struct {
	o        MeshOptions
	services []*model.Service
}

// NewMesh builds the services of a synthetic mesh.
func NewMesh(o MeshOptions) *Mesh {
	o = o.withDefaults()
	m := &Mesh{o: o}
	for i := range o.Services {
		m.services = append(m.services, m.service(i))
	}
	return m
}

// Namespace returns the namespace of service (or proxy) i.
func (m *Mesh) Namespace(i int) string { return "ns-" + strconv.Itoa(i%m.o.Namespaces) }

// Host returns the hostname of service i.
func (m *Mesh) Host(i int) string {
	return fmt.Sprintf("svc-%d.%s.svc.cluster.local", i, m.Namespace(i))
}

func (m *Mesh) service(i int) *model.Service {
	ns := m.Namespace(i)
	s := &model.Service{
		Hostname:  m.Host(i),
		Namespace: ns,
		Addresses: []string{fmt.Sprintf("240.240.%d.%d", i/250, i%250+1)},
		Ports:     []model.Port{{Name: "http", Number: MeshPort, Protocol: model.HTTP}},
		Source:    config.Key{Kind: config.ServiceEntry, Namespace: ns, Name: "svc-" + strconv.Itoa(i)},
	}
	for e := range m.o.Endpoints {
		version := "v" + strconv.Itoa(e%2+1)
		s.Endpoints = append(s.Endpoints, &model.Endpoint{
			Address:      fmt.Sprintf("10.%d.%d.%d", 1+i/250, i%250, e+1),
			Ports:        map[string]uint32{"http": MeshPort},
			Labels:       map[string]string{"app": "svc-" + strconv.Itoa(i), "version": version},
			Locality:     "region-1/zone-1/",
			WorkloadName: fmt.Sprintf("svc-%d-%d", i, e),
			Namespace:    ns,
			Source:       s.Source,
		})
	}
	return s
}

// Snapshot returns a snapshot of the mesh: its services, and a
// VirtualService and DestinationRule for each of the first Splits
// services. weights overrides the v1 weight of split service i (default
// 90; v2 gets the rest).
func (m *Mesh) Snapshot(version string, weights map[int]uint32) *model.Snapshot {
	var objs []*config.Object
	for i := range m.o.Splits {
		w, ok := weights[i]
		if !ok {
			w = 90
		}
		objs = append(objs, m.virtualService(i, w), m.destinationRule(i))
	}
	return model.NewSnapshot(model.SnapshotOptions{Version: version, Services: m.services, Configs: objs})
}

func (m *Mesh) virtualService(i int, w uint32) *config.Object {
	host := m.Host(i)
	dest := func(subset string, weight uint32) *networkingv1alpha3.HTTPRouteDestination {
		return &networkingv1alpha3.HTTPRouteDestination{
			Destination: &networkingv1alpha3.Destination{Host: host, Subset: subset, Port: &networkingv1alpha3.PortSelector{Number: MeshPort}},
			Weight:      int32(weight),
		}
	}
	return &config.Object{
		Meta: config.Meta{Kind: config.VirtualService, APIVersion: "networking.istio.io/v1", Name: "svc-" + strconv.Itoa(i), Namespace: m.Namespace(i)},
		Spec: &networkingv1alpha3.VirtualService{
			Hosts: []string{host},
			Http:  []*networkingv1alpha3.HTTPRoute{{Route: []*networkingv1alpha3.HTTPRouteDestination{dest("v1", w), dest("v2", 100-w)}}},
		},
		Source:  config.Source{File: "mesh.yaml"},
		Version: "w" + strconv.Itoa(int(w)),
	}
}

func (m *Mesh) destinationRule(i int) *config.Object {
	return &config.Object{
		Meta: config.Meta{Kind: config.DestinationRule, APIVersion: "networking.istio.io/v1", Name: "svc-" + strconv.Itoa(i), Namespace: m.Namespace(i)},
		Spec: &networkingv1alpha3.DestinationRule{
			Host: m.Host(i),
			Subsets: []*networkingv1alpha3.Subset{
				{Name: "v1", Labels: map[string]string{"version": "v1"}},
				{Name: "v2", Labels: map[string]string{"version": "v2"}},
			},
		},
		Source:  config.Source{File: "mesh.yaml"},
		Version: "1",
	}
}

// ProxyID returns the Istio node id of proxy i: a sidecar in namespace
// i mod Namespaces.
func (m *Mesh) ProxyID(i int) string {
	ns := m.Namespace(i)
	return fmt.Sprintf("sidecar~10.200.%d.%d~proxy-%d.%s~%s.svc.cluster.local", i/250, i%250+1, i, ns, ns)
}

// Node returns proxy i's node.
func (m *Mesh) Node(i int) *corev3.Node {
	return NodeFor(m.ProxyID(i), map[string]string{"app": "proxy-" + strconv.Itoa(i)}, map[string]string{"NAMESPACE": m.Namespace(i)})
}

// Generator is a stand-in for translate.Translator with Istio's shapes and
// names: per service an EDS cluster "outbound|PORT||HOST" and one per
// DestinationRule subset, their endpoint assignments, an HTTP proxy
// listener on 127.0.0.1:15001 whose route configuration "http_proxy" has a
// virtual host per service (weighted for VirtualServices), and an inbound
// listener per proxy. Every sidecar sees every service (no Sidecar
// scoping), so all but the inbound listener is shared between proxies;
// versions are content hashes. It reads only the snapshot's services and
// VirtualService weights: it is not the translator.
type Generator struct {
	mu sync.Mutex
	// recent holds the outbound resources of the two newest snapshots (a
	// connection may still compute with the previous one during a push).
	recent [2]struct {
		snap *model.Snapshot
		out  *outbound
	}
}

type outbound struct {
	once      sync.Once
	clusters  map[string]*clusterv3.Cluster
	endpoints map[string]*endpointv3.ClusterLoadAssignment
	routes    map[string]*routev3.RouteConfiguration
	listener  *listenerv3.Listener
	versions  map[string]string
}

// NewGenerator returns a Generator.
func NewGenerator() *Generator { return &Generator{} }

// Generate returns proxy p's resources for s. Safe for concurrent use; the
// outbound resources of a snapshot are built once (for the two newest
// snapshots).
func (g *Generator) Generate(s *model.Snapshot, p *model.Proxy) *translate.Resources {
	ob := g.outbound(s)
	in := HTTPListener("virtualInbound", p.IP(), 15006, "inbound|"+strconv.Itoa(MeshPort))
	return &translate.Resources{
		Listeners: map[string]*listenerv3.Listener{ob.listener.GetName(): ob.listener, in.GetName(): in},
		Routes:    ob.routes,
		Clusters:  ob.clusters,
		Endpoints: ob.endpoints,
		Versions: map[string]string{
			ClusterType:  ob.versions[ClusterType],
			EndpointType: ob.versions[EndpointType],
			RouteType:    ob.versions[RouteType],
			ListenerType: hashMap(map[string]*listenerv3.Listener{ob.listener.GetName(): ob.listener, in.GetName(): in}),
		},
	}
}

func (g *Generator) outbound(s *model.Snapshot) *outbound {
	g.mu.Lock()
	if g.recent[0].snap != s {
		if g.recent[1].snap == s {
			g.recent[0], g.recent[1] = g.recent[1], g.recent[0]
		} else {
			g.recent[1] = g.recent[0]
			g.recent[0].snap, g.recent[0].out = s, &outbound{}
		}
	}
	ob := g.recent[0].out
	g.mu.Unlock()
	ob.once.Do(func() { ob.build(s) })
	return ob
}

func (ob *outbound) build(s *model.Snapshot) {
	ob.clusters = map[string]*clusterv3.Cluster{}
	ob.endpoints = map[string]*endpointv3.ClusterLoadAssignment{}
	subsets := map[string][]*networkingv1alpha3.Subset{}
	for _, o := range s.List(config.DestinationRule) {
		dr := o.Spec.(*networkingv1alpha3.DestinationRule)
		subsets[dr.GetHost()] = dr.GetSubsets()
	}
	weights := map[string][]*networkingv1alpha3.HTTPRouteDestination{}
	for _, o := range s.List(config.VirtualService) {
		vs := o.Spec.(*networkingv1alpha3.VirtualService)
		if len(vs.GetHttp()) > 0 {
			weights[vs.GetHosts()[0]] = vs.GetHttp()[0].GetRoute()
		}
	}
	rc := &routev3.RouteConfiguration{Name: "http_proxy", ValidateClusters: wrapperspb.Bool(false)}
	for _, svc := range s.Services {
		for _, port := range svc.Ports {
			ob.addService(svc, port, "", nil)
			for _, ss := range subsets[svc.Hostname] {
				ob.addService(svc, port, ss.GetName(), ss.GetLabels())
			}
			rc.VirtualHosts = append(rc.VirtualHosts, virtualHost(svc, port, weights[svc.Hostname]))
		}
	}
	inbound := "inbound|" + strconv.Itoa(MeshPort) + "||"
	ob.clusters[inbound] = &clusterv3.Cluster{
		Name:                 inbound,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(10 * time.Second),
		LoadAssignment:       Endpoints(inbound, MeshPort, "127.0.0.1"),
	}
	inRoute := RouteConfig("inbound|"+strconv.Itoa(MeshPort), VirtualHost("inbound|http|8080", []string{"*"}, WeightedCluster{Cluster: inbound}))
	ob.routes = map[string]*routev3.RouteConfiguration{rc.GetName(): rc, inRoute.GetName(): inRoute}
	ob.listener = HTTPListener("127.0.0.1_15001", "127.0.0.1", 15001, "http_proxy")
	ob.versions = map[string]string{
		ClusterType:  hashMap(ob.clusters),
		EndpointType: hashMap(ob.endpoints),
		RouteType:    hashMap(ob.routes),
	}
}

func clusterName(svc *model.Service, port model.Port, subset string) string {
	return fmt.Sprintf("outbound|%d|%s|%s", port.Number, subset, svc.Hostname)
}

// addService adds the cluster and assignment of a service port (subset
// "" for all endpoints).
func (ob *outbound) addService(svc *model.Service, port model.Port, subset string, labels map[string]string) {
	name := clusterName(svc, port, subset)
	c := EDSCluster(name)
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections:     wrapperspb.UInt32(4294967295),
		MaxPendingRequests: wrapperspb.UInt32(4294967295),
		MaxRequests:        wrapperspb.UInt32(4294967295),
		MaxRetries:         wrapperspb.UInt32(4294967295),
	}}}
	meta, _ := structpb.NewStruct(map[string]any{"services": []any{map[string]any{
		"host": svc.Hostname, "name": svc.Source.Name, "namespace": svc.Namespace,
	}}, "subset": subset})
	c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": meta}}
	ob.clusters[name] = c
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	lle := &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{Region: "region-1", Zone: "zone-1"}}
	for _, e := range svc.Endpoints {
		if !e.MatchesLabels(labels) {
			continue
		}
		lle.LbEndpoints = append(lle.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddress(e.Address, e.PortFor(port)),
			}},
			HealthStatus:        corev3.HealthStatus_HEALTHY,
			LoadBalancingWeight: wrapperspb.UInt32(1),
		})
	}
	lle.LoadBalancingWeight = wrapperspb.UInt32(uint32(len(lle.LbEndpoints)))
	cla.Endpoints = []*endpointv3.LocalityLbEndpoints{lle}
	ob.endpoints[name] = cla
}

// virtualHost returns the virtual host of a service port with the domains
// Istio gives it (FQDN, short names, VIP, each with and without port).
func virtualHost(svc *model.Service, port model.Port, split []*networkingv1alpha3.HTTPRouteDestination) *routev3.VirtualHost {
	p := ":" + strconv.Itoa(int(port.Number))
	name, _, _ := strings.Cut(svc.Hostname, ".")
	var domains []string
	for _, d := range []string{svc.Hostname, name, name + "." + svc.Namespace, name + "." + svc.Namespace + ".svc"} {
		domains = append(domains, d, d+p)
	}
	for _, a := range svc.Addresses {
		domains = append(domains, a, a+p)
	}
	clusters := []WeightedCluster{{Cluster: clusterName(svc, port, "")}}
	if len(split) > 0 {
		clusters = clusters[:0]
		for _, d := range split {
			clusters = append(clusters, WeightedCluster{Cluster: clusterName(svc, port, d.GetDestination().GetSubset()), Weight: uint32(d.GetWeight())})
		}
	}
	return VirtualHost(svc.Hostname+p, domains, clusters...)
}
