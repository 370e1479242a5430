package dashboard

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/xds"
)

const helloHost = "hello.default.svc.cluster.local"

// testSnapshot is a small mesh: hello (two versions, a VirtualService
// splitting by weight, a DestinationRule with subsets) and a rule in the
// root namespace that a more specific one overrides.
func testSnapshot() *model.Snapshot {
	se := config.Key{Kind: config.ServiceEntry, Namespace: "default", Name: "hello"}
	hello := &model.Service{
		Hostname: helloHost, Namespace: "default", Source: se,
		Ports: []model.Port{{Name: "http", Number: 8080, Protocol: model.HTTP}},
		Endpoints: []*model.Endpoint{
			{Address: "10.0.0.4", Labels: map[string]string{"app": "hello", "version": "v1"}, WorkloadName: "hello-v1", Namespace: "default",
				Source: config.Key{Kind: config.WorkloadEntry, Namespace: "default", Name: "hello-v1"}},
			{Address: "10.0.0.5", Labels: map[string]string{"app": "hello", "version": "v2"}, WorkloadName: "hello-v2", Namespace: "default",
				Source: config.Key{Kind: config.WorkloadEntry, Namespace: "default", Name: "hello-v2"}},
		},
	}
	vs := &config.Object{Meta: config.Meta{Kind: config.VirtualService, Namespace: "default", Name: "hello"}, Spec: &networking.VirtualService{
		Hosts: []string{"hello"},
		Http: []*networking.HTTPRoute{{
			Match: []*networking.HTTPMatchRequest{{Headers: map[string]*networking.StringMatch{"x-canary": {MatchType: &networking.StringMatch_Exact{Exact: "yes"}}}}},
			Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "hello", Subset: "v2"}}},
		}, {
			Route: []*networking.HTTPRouteDestination{
				{Destination: &networking.Destination{Host: "hello", Subset: "v1"}, Weight: 90},
				{Destination: &networking.Destination{Host: "hello", Subset: "v2"}, Weight: 10},
			},
			Retries: &networking.HTTPRetry{Attempts: 3},
		}},
	}}
	otherVS := &config.Object{Meta: config.Meta{Kind: config.VirtualService, Namespace: "default", Name: "other"},
		Spec: &networking.VirtualService{Hosts: []string{"other.example.com"}}}
	dr := &config.Object{Meta: config.Meta{Kind: config.DestinationRule, Namespace: "default", Name: "hello"}, Spec: &networking.DestinationRule{
		Host:          "hello",
		TrafficPolicy: &networking.TrafficPolicy{LoadBalancer: &networking.LoadBalancerSettings{}},
		Subsets: []*networking.Subset{
			{Name: "v1", Labels: map[string]string{"version": "v1"}},
			{Name: "v2", Labels: map[string]string{"version": "v2"}},
			{Name: "v3", Labels: map[string]string{"version": "v3"}},
		},
	}}
	rootDR := &config.Object{Meta: config.Meta{Kind: config.DestinationRule, Namespace: "istio-system", Name: "default"},
		Spec: &networking.DestinationRule{Host: "*.cluster.local"}}
	return model.NewSnapshot(model.SnapshotOptions{
		Version: "7", Services: []*model.Service{hello}, Configs: []*config.Object{vs, otherVS, dr, rootDR},
	})
}

func testProxies() ([]*model.Proxy, map[string]xds.ProxyStatus) {
	proxies := []*model.Proxy{
		{ID: "sidecar~10.0.0.4~hello-v1-1.default~d", Type: model.SidecarProxy, IPs: []string{"10.0.0.4"}, Namespace: "default", WorkloadName: "hello-v1"},
		{ID: "sidecar~10.0.0.3~sleep-1.default~d", Type: model.SidecarProxy, IPs: []string{"10.0.0.3"}, Namespace: "default", WorkloadName: "sleep"},
	}
	sync := map[string]xds.ProxyStatus{
		proxies[0].ID: {Types: map[string]xds.TypeStatus{
			"type.googleapis.com/envoy.config.cluster.v3.Cluster":   {State: xds.StateSynced},
			"type.googleapis.com/envoy.config.listener.v3.Listener": {State: xds.StateSynced},
		}},
		proxies[1].ID: {Types: map[string]xds.TypeStatus{
			"type.googleapis.com/envoy.config.cluster.v3.Cluster": {State: xds.StateSynced},
			"type.googleapis.com/envoy.config.route.v3.RouteConfiguration": {State: xds.StateNACKed,
				LastNACK: &xds.NACK{Version: "7", Message: "route: bad regex"}},
		}},
	}
	return proxies, sync
}

func testInput(flows map[flowKey]*flow) buildInput {
	proxies, sync := testProxies()
	return buildInput{
		snap: testSnapshot(), proxies: proxies, sync: sync,
		problems: []*config.Error{
			{Key: config.Key{Kind: config.DestinationRule, Namespace: "default", Name: "hello"}, Path: "spec.trafficPolicy.loadBalancer.localityLbSetting", Message: "not applied", Warning: true},
			{Key: config.Key{Kind: config.VirtualService, Namespace: "other", Name: "broken"}, Path: "spec.http[0]", Message: "bad"},
		},
		traffic: &traffic{round: 3, at: time.Unix(1000, 0), flows: flows},
		window:  time.Minute, interval: 5 * time.Second, domain: DefaultClusterDomain,
	}
}

func findEdge(v *View, from, to string) *Edge {
	for i := range v.Edges {
		if v.Edges[i].From == from && v.Edges[i].To == to {
			return &v.Edges[i]
		}
	}
	return nil
}

// TestViewGraph: nodes from proxies, endpoints and metrics; traffic edges
// caller → service → workload from the source reporter, the destination
// reporter only where no source proxy reported; membership edges without
// traffic.
func TestViewGraph(t *testing.T) {
	sleepHello := flowKey{Reporter: "source", SrcWorkload: "sleep", SrcNamespace: "default", DstService: helloHost, DstWorkload: "hello-v1", DstNamespace: "default"}
	dstSide := sleepHello
	dstSide.Reporter = "destination"
	outside := flowKey{Reporter: "destination", SrcWorkload: "unknown", SrcNamespace: "unknown", DstService: helloHost, DstWorkload: "hello-v2", DstNamespace: "default"}
	external := flowKey{Reporter: "source", SrcWorkload: "sleep", SrcNamespace: "default", DstService: "api.example.com", DstWorkload: "unknown", DstNamespace: "unknown"}
	flows := map[flowKey]*flow{
		sleepHello: {rps: 10, eps: 1, buckets: map[float64]float64{25: 0, 50: 10, inf: 10}},
		dstSide:    {rps: 9, eps: 0, buckets: map[float64]float64{25: 9, inf: 9}}, // ignored: the source reported
		outside:    {rps: 2, buckets: map[float64]float64{5: 2, inf: 2}},
		external:   {rps: 4, eps: 4},
	}
	v := buildView(testInput(flows))
	var ids []string
	for _, n := range v.Nodes {
		ids = append(ids, n.ID)
	}
	wantIDs := []string{"service:api.example.com", "service:" + helloHost, "unknown", "workload:default/hello-v1", "workload:default/hello-v2", "workload:default/sleep"}
	if !slices.Equal(ids, wantIDs) {
		t.Fatalf("nodes %v, want %v", ids, wantIDs)
	}
	for _, n := range v.Nodes {
		switch n.ID {
		case "workload:default/sleep":
			if n.Proxy != xds.StateNACKed {
				t.Errorf("sleep proxy state %q, want NACKED", n.Proxy)
			}
		case "service:api.example.com":
			if n.Registered {
				t.Errorf("api.example.com is only in metrics, not registered")
			}
		}
	}
	p99 := func(v float64) *float64 { return &v }
	tests := []struct {
		from, to string
		rps, er  float64
		p99      *float64
		traffic  bool
	}{
		{"workload:default/sleep", "service:" + helloHost, 10, 0.1, p99(49.75), true},
		{"service:" + helloHost, "workload:default/hello-v1", 10, 0.1, p99(49.75), true},
		{"unknown", "service:" + helloHost, 2, 0, p99(4.95), true},
		{"service:" + helloHost, "workload:default/hello-v2", 2, 0, p99(4.95), true},
		{"workload:default/sleep", "service:api.example.com", 4, 1, nil, true},
	}
	for _, tt := range tests {
		e := findEdge(v, tt.from, tt.to)
		if e == nil {
			t.Errorf("no edge %s → %s in %+v", tt.from, tt.to, v.Edges)
			continue
		}
		if math.Abs(e.RPS-tt.rps) > 1e-9 || math.Abs(e.ErrorRate-tt.er) > 1e-9 || e.Traffic != tt.traffic ||
			(e.P99 == nil) != (tt.p99 == nil) || (e.P99 != nil && math.Abs(*e.P99-*tt.p99) > 1e-9) {
			t.Errorf("edge %s → %s: %+v (p99 %v), want rps %v error rate %v p99 %v", tt.from, tt.to, e, deref(e.P99), tt.rps, tt.er, deref(tt.p99))
		}
	}
	if len(v.Edges) != len(tests) {
		t.Errorf("%d edges, want %d: %+v", len(v.Edges), len(tests), v.Edges)
	}
	// Without traffic: membership edges only.
	v = buildView(testInput(nil))
	if e := findEdge(v, "service:"+helloHost, "workload:default/hello-v2"); e == nil || e.Traffic || e.P99 != nil || len(v.Edges) != 2 {
		t.Errorf("idle graph edges %+v", v.Edges)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestViewServices: endpoints with subsets and sidecar state, the
// VirtualService covering the host, the most specific DestinationRule of
// the service's namespace (not the root namespace's wildcard), the
// problems of those objects.
func TestViewServices(t *testing.T) {
	v := buildView(testInput(nil))
	if len(v.Services) != 1 {
		t.Fatalf("%d services", len(v.Services))
	}
	s := v.Services[0]
	if s.Host != helloHost || s.Resolution != "STATIC" || len(s.Ports) != 1 || s.Ports[0].Protocol != "HTTP" {
		t.Errorf("service %+v", s)
	}
	if len(s.Endpoints) != 2 {
		t.Fatalf("endpoints %+v", s.Endpoints)
	}
	e1, e2 := s.Endpoints[0], s.Endpoints[1]
	if e1.Health != "HEALTHY" || e1.Sidecar != xds.StateSynced || !slices.Equal(e1.Subsets, []string{"v1"}) {
		t.Errorf("endpoint 1 %+v", e1)
	}
	if e2.Sidecar != "" || !slices.Equal(e2.Subsets, []string{"v2"}) {
		t.Errorf("endpoint 2 (no sidecar connected) %+v", e2)
	}
	var subsets []string
	for _, ss := range s.Subsets {
		subsets = append(subsets, ss.Name+":"+string(rune('0'+ss.Endpoints)))
	}
	if !slices.Equal(subsets, []string{"v1:1", "v2:1", "v3:0"}) {
		t.Errorf("subsets %v", subsets)
	}
	if len(s.VirtualServices) != 1 || s.VirtualServices[0].Name != "hello" {
		t.Fatalf("virtual services %+v", s.VirtualServices)
	}
	sum := strings.Join(s.VirtualServices[0].Summary, "\n")
	for _, want := range []string{"hosts hello · gateways mesh", "http[0] when header x-canary = yes: hello subset v2", "http[1]: hello subset v1 90%, hello subset v2 10% (retries 3)"} {
		if !strings.Contains(sum, want) {
			t.Errorf("VirtualService summary lacks %q:\n%s", want, sum)
		}
	}
	if s.DestinationRule == nil || s.DestinationRule.Namespace != "default" || s.DestinationRule.Name != "hello" {
		t.Fatalf("destination rule %+v, want default/hello", s.DestinationRule)
	}
	if !slices.Contains(s.DestinationRule.Summary, "traffic policy: loadBalancer") || !strings.Contains(string(s.DestinationRule.Spec), `"subsets"`) {
		t.Errorf("destination rule view %+v", s.DestinationRule)
	}
	if len(s.Problems) != 1 || s.Problems[0].Kind != "DestinationRule" || s.Problems[0].Severity != "warning" {
		t.Errorf("service problems %+v, want the DestinationRule's warning only", s.Problems)
	}
	if len(v.Problems) != 2 {
		t.Errorf("all problems %+v", v.Problems)
	}
}

// TestDestinationRuleLookup: the namespace's rule before the root
// namespace's, the most specific host first, selector rules skipped.
func TestDestinationRuleLookup(t *testing.T) {
	dr := func(ns, name, host string, sel bool) *config.Object {
		spec := &networking.DestinationRule{Host: host}
		if sel {
			spec.WorkloadSelector = &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "x"}}
		}
		return &config.Object{Meta: config.Meta{Kind: config.DestinationRule, Namespace: ns, Name: name}, Spec: spec}
	}
	svc := &model.Service{Hostname: helloHost, Namespace: "default"}
	tests := []struct {
		name string
		objs []*config.Object
		want string
	}{
		{"none", nil, ""},
		{"root wildcard", []*config.Object{dr("istio-system", "all", "*.cluster.local", false)}, "istio-system/all"},
		{"own namespace first", []*config.Object{dr("istio-system", "exact", helloHost, false), dr("default", "wild", "*.svc.cluster.local", false)}, "default/wild"},
		{"most specific", []*config.Object{dr("default", "a-wild", "*.cluster.local", false), dr("default", "b-short", "hello", false)}, "default/b-short"},
		{"selector skipped", []*config.Object{dr("default", "sel", "hello", true)}, ""},
		{"other host", []*config.Object{dr("default", "other", "other", false)}, ""},
	}
	for _, tt := range tests {
		snap := model.NewSnapshot(model.SnapshotOptions{Services: []*model.Service{svc}, Configs: tt.objs})
		got := ""
		if o := destinationRuleFor(snap, svc, DefaultClusterDomain); o != nil {
			got = o.Namespace + "/" + o.Name
		}
		if got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestProxyViews: states per type with istioctl's short names, the worst
// as the proxy's state, the NACK's message.
func TestProxyViews(t *testing.T) {
	proxies, sync := testProxies()
	proxies = append(proxies, &model.Proxy{ID: "sidecar~10.0.0.8~new-1.default~d", WorkloadName: "new", Namespace: "default"})
	pv := proxyViews(proxies, sync)
	got := map[string]ProxyView{}
	for _, p := range pv {
		got[p.Workload] = p
	}
	if p := got["sleep"]; p.State != xds.StateNACKed || p.Types["RDS"] != xds.StateNACKed || p.Types["CDS"] != xds.StateSynced || p.NACK != "route: bad regex" {
		t.Errorf("sleep %+v", p)
	}
	if p := got["hello-v1"]; p.State != xds.StateSynced || len(p.Types) != 2 || p.Types["LDS"] != xds.StateSynced {
		t.Errorf("hello-v1 %+v", p)
	}
	if p := got["new"]; p.State != xds.StateNotSent {
		t.Errorf("a proxy without sync status: %+v", p)
	}
}
