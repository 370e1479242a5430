package dashboard

import (
	"sort"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/xds"
)

// View is everything the page shows, as /dashboard/api/mesh serves it.
type View struct {
	Generated       time.Time `json:"generated,omitzero"`
	SnapshotVersion string    `json:"snapshot_version"`
	// Window is the span the rates are computed over, in seconds.
	Window float64 `json:"window_seconds"`
	// Nodes and Edges are the service graph.
	Nodes    []Node           `json:"nodes"`
	Edges    []Edge           `json:"edges"`
	Services []ServiceView    `json:"services"`
	Proxies  []ProxyView      `json:"proxies"`
	Problems []ProblemView    `json:"problems"`
	Targets  []TargetStatus   `json:"scrape_targets"`
	Scrape   ScrapeDescriptor `json:"scrape"`
}

// ScrapeDescriptor says how edge metrics are gathered.
type ScrapeDescriptor struct {
	IntervalSeconds float64 `json:"interval_seconds"`
	Round           uint64  `json:"round"`
}

// Node kinds.
const (
	NodeWorkload = "workload"
	NodeService  = "service"
	// NodeUnknown stands for callers outside the mesh (Istio's "unknown"
	// source workload).
	NodeUnknown = "unknown"
)

// Node is a workload or a service in the graph.
type Node struct {
	// ID is "workload:NS/NAME", "service:HOST" or "unknown".
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	// Proxy is the sync state of the workload's connected proxies ("" when
	// none is connected).
	Proxy string `json:"proxy,omitempty"`
	// Gateway marks router (gateway) workloads.
	Gateway bool `json:"gateway,omitempty"`
	// Registered is false for services seen only in metrics.
	Registered bool `json:"registered"`
}

// Edge is traffic (or, without traffic, endpoint membership: service →
// workload) between two nodes.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
	// RPS is requests per second over the window.
	RPS float64 `json:"rps"`
	// ErrorRate is the fraction of those requests that failed (5xx, no
	// response, non-OK gRPC status), 0 to 1.
	ErrorRate float64 `json:"error_rate"`
	// P99 is the 99th percentile of request duration in milliseconds
	// (nil when no request completed in the window).
	P99 *float64 `json:"p99_ms"`
	// Traffic is false for a membership edge without observed requests.
	Traffic bool `json:"traffic"`
}

// ProxyView is one connected proxy and its xDS sync state.
type ProxyView struct {
	ID             string    `json:"id"`
	Type           string    `json:"type"`
	Namespace      string    `json:"namespace"`
	Workload       string    `json:"workload"`
	IP             string    `json:"ip"`
	ConnectedSince time.Time `json:"connected_since,omitzero"`
	// State is the proxy's overall state: NACKED, STALE, NOT SENT or
	// SYNCED, the worst of its types.
	State string `json:"state"`
	// Types maps CDS, LDS, EDS, RDS, SDS (or the type URL) to its state.
	Types map[string]string `json:"types"`
	// NACK is the last rejection's message, if the latest response of a
	// type was rejected.
	NACK string `json:"nack,omitempty"`
}

// ProblemView is one configuration problem.
type ProblemView struct {
	Severity  string `json:"severity"`
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Source    string `json:"source"`
	Path      string `json:"path,omitempty"`
	Message   string `json:"message"`
}

// buildInput is what one view is built from.
type buildInput struct {
	snap     *model.Snapshot // may be nil before the first push
	proxies  []*model.Proxy
	sync     map[string]xds.ProxyStatus
	problems []*config.Error
	traffic  *traffic
	window   time.Duration
	interval time.Duration
	domain   string
}

// buildView assembles the graph, the services, the proxies and the
// problems.
func buildView(in buildInput) *View {
	v := &View{
		Generated: in.traffic.at,
		Window:    in.window.Seconds(),
		Targets:   in.traffic.targets,
		Scrape:    ScrapeDescriptor{IntervalSeconds: in.interval.Seconds(), Round: in.traffic.round},
		Problems:  problemViews(in.problems),
	}
	if v.Targets == nil {
		v.Targets = []TargetStatus{}
	}
	if in.snap != nil {
		v.SnapshotVersion = in.snap.Version
	}
	v.Proxies = proxyViews(in.proxies, in.sync)
	g := newGraph()
	for _, p := range v.Proxies {
		n := g.workload(p.Namespace, p.Workload)
		n.Proxy = worseState(n.Proxy, p.State)
		n.Gateway = n.Gateway || p.Type == string(model.Router)
	}
	if in.snap != nil {
		v.Services = serviceViews(in, v.Proxies, v.Problems)
		for _, svc := range in.snap.Services {
			g.service(svc.Hostname, svc.Namespace).Registered = true
			for _, ep := range svc.Endpoints {
				if ep.WorkloadName == "" {
					continue
				}
				w := g.workload(ep.Namespace, ep.WorkloadName)
				g.edge(serviceID(svc.Hostname), w.ID)
			}
		}
	}
	if v.Services == nil {
		v.Services = []ServiceView{}
	}
	g.addTraffic(in.traffic.flows)
	v.Nodes, v.Edges = g.list()
	return v
}

// graph collects nodes and edges by id.
type graph struct {
	nodes map[string]*Node
	edges map[[2]string]*flow
}

func newGraph() *graph {
	return &graph{nodes: map[string]*Node{}, edges: map[[2]string]*flow{}}
}

func workloadID(ns, name string) string { return "workload:" + ns + "/" + name }
func serviceID(host string) string      { return "service:" + host }

func (g *graph) workload(ns, name string) *Node {
	if name == unknown {
		return g.node(NodeUnknown, &Node{ID: NodeUnknown, Kind: NodeUnknown, Name: "unknown"})
	}
	id := workloadID(ns, name)
	return g.node(id, &Node{ID: id, Kind: NodeWorkload, Name: name, Namespace: ns, Registered: true})
}

func (g *graph) service(host, ns string) *Node {
	id := serviceID(host)
	n := g.node(id, &Node{ID: id, Kind: NodeService, Name: host, Namespace: ns})
	if n.Namespace == "" && ns != unknown {
		n.Namespace = ns
	}
	return n
}

func (g *graph) node(id string, fresh *Node) *Node {
	if n := g.nodes[id]; n != nil {
		return n
	}
	g.nodes[id] = fresh
	return fresh
}

// edge returns the edge from → to, created without traffic.
func (g *graph) edge(from, to string) *flow {
	k := [2]string{from, to}
	f := g.edges[k]
	if f == nil {
		f = &flow{}
		g.edges[k] = f
	}
	return f
}

// addTraffic folds the flows into edges: caller workload → service →
// answering workload, as Kiali's workload graph draws them. Each request
// is reported by both sidecars of a call (reporter source and
// destination); the source proxy's report is used, as Kiali does, since it
// also sees the requests that never reached the destination (connect
// failures, timeouts), and the destination's report only for flows no
// source proxy reported (callers outside the mesh or without a sidecar).
func (g *graph) addTraffic(flows map[flowKey]*flow) {
	bySource := map[flowKey]bool{}
	for k := range flows {
		if k.Reporter == reporterSource {
			bySource[withoutReporter(k)] = true
		}
	}
	for k, f := range flows {
		if k.Reporter != reporterSource && bySource[withoutReporter(k)] {
			continue
		}
		src := g.workload(k.SrcNamespace, k.SrcWorkload).ID
		dst := ""
		if k.DstWorkload != unknown {
			dst = g.workload(k.DstNamespace, k.DstWorkload).ID
		}
		if k.DstService == unknown {
			if dst != "" {
				g.edge(src, dst).add(f)
			}
			continue
		}
		svc := g.service(k.DstService, unknown).ID
		g.edge(src, svc).add(f)
		if dst != "" {
			g.edge(svc, dst).add(f)
		}
	}
}

func withoutReporter(k flowKey) flowKey {
	k.Reporter = ""
	return k
}

// list returns the nodes and edges in a stable order.
func (g *graph) list() ([]Node, []Edge) {
	nodes := make([]Node, 0, len(g.nodes))
	for _, n := range g.nodes {
		nodes = append(nodes, *n)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	edges := make([]Edge, 0, len(g.edges))
	for k, f := range g.edges {
		e := Edge{From: k[0], To: k[1], RPS: f.rps, Traffic: f.rps > 0 || f.buckets != nil}
		if f.rps > 0 {
			e.ErrorRate = min(f.eps/f.rps, 1)
		}
		if q, ok := quantile(0.99, f.buckets); ok {
			e.P99 = &q
		}
		edges = append(edges, e)
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].From != edges[j].From {
			return edges[i].From < edges[j].From
		}
		return edges[i].To < edges[j].To
	})
	return nodes, edges
}

// proxyViews lists the connected proxies with their sync state.
func proxyViews(proxies []*model.Proxy, sync map[string]xds.ProxyStatus) []ProxyView {
	out := make([]ProxyView, 0, len(proxies))
	for _, p := range proxies {
		pv := ProxyView{
			ID: p.ID, Type: string(p.Type), Namespace: p.Namespace, Workload: p.WorkloadName,
			IP: p.IP(), Types: map[string]string{}, State: xds.StateNotSent,
		}
		if p.Proxyless {
			pv.Type = "proxyless"
		}
		if st, ok := sync[p.ID]; ok {
			pv.ConnectedSince = st.ConnectedSince
			pv.State = ""
			for url, ts := range st.Types {
				pv.Types[shortType(url)] = ts.State
				pv.State = worseState(pv.State, ts.State)
				if ts.State == xds.StateNACKed && ts.LastNACK != nil {
					pv.NACK = ts.LastNACK.Message
				}
			}
			if pv.State == "" {
				pv.State = xds.StateNotSent
			}
		}
		out = append(out, pv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// shortType names a type URL as istioctl proxy-status does (CDS, LDS, ...).
func shortType(url string) string {
	for suffix, short := range map[string]string{
		".cluster.v3.Cluster":                    "CDS",
		".listener.v3.Listener":                  "LDS",
		".endpoint.v3.ClusterLoadAssignment":     "EDS",
		".route.v3.RouteConfiguration":           "RDS",
		".tls.v3.Secret":                         "SDS",
		".route.v3.ScopedRouteConfiguration":     "SRDS",
		".route.v3.VirtualHost":                  "VHDS",
		".core.v3.TypedExtensionConfig":          "ECDS",
		".endpoint.v3.LbEndpoint":                "LEDS",
		".runtime.v3.Runtime":                    "RTDS",
		".service.discovery.v3.DiscoveryRequest": "ADS",
	} {
		if strings.HasSuffix(url, suffix) {
			return short
		}
	}
	return url
}

// stateRank orders sync states from best to worst.
func stateRank(s string) int {
	switch s {
	case xds.StateSynced:
		return 1
	case xds.StateNotSent:
		return 2
	case xds.StateStale:
		return 3
	case xds.StateNACKed:
		return 4
	}
	return 0
}

// worseState returns the worse of two sync states.
func worseState(a, b string) string {
	if stateRank(b) > stateRank(a) {
		return b
	}
	return a
}

// problemViews converts the configuration problems.
func problemViews(ps []*config.Error) []ProblemView {
	out := make([]ProblemView, 0, len(ps))
	for _, p := range ps {
		sev := "error"
		if p.Warning {
			sev = "warning"
		}
		out = append(out, ProblemView{
			Severity: sev, Kind: string(p.Key.Kind), Namespace: p.Key.Namespace, Name: p.Key.Name,
			Source: p.Source.String(), Path: p.Path, Message: p.Message,
		})
	}
	return out
}
