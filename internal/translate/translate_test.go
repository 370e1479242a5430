package translate

import (
	"fmt"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"reflect"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
	"istio.io/api/type/v1beta1"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

func TestAltHosts(t *testing.T) {
	tests := []struct {
		host, domain string
		want         []string
	}{
		{"foo.ns.svc.cluster.local", "ns.svc.cluster.local",
			[]string{"foo", "foo:80", "foo.ns.svc", "foo.ns.svc:80", "foo.ns", "foo.ns:80"}},
		{"foo.other.svc.cluster.local", "ns.svc.cluster.local",
			[]string{"foo.other", "foo.other:80", "foo.other.svc", "foo.other.svc:80"}},
		{"api.example.com", "ns.svc.cluster.local", nil},
		// Non-Kubernetes domains: the labels not shared with the proxy's
		// domain, and those plus the first shared label.
		{"foo.local.campus.net", "local.campus.net", []string{"foo", "foo:80"}},
		{"foo.bar.campus.net", "local.campus.net", []string{"foo.bar", "foo.bar:80", "foo.bar.campus", "foo.bar.campus:80"}},
		{"foobar.com", "local.net", nil},
	}
	for _, tt := range tests {
		if got := altHosts(tt.host, 80, tt.domain); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("altHosts(%q, %q) = %q, want %q", tt.host, tt.domain, got, tt.want)
		}
	}
}

func TestHTTPProxyDomainsPortFilter(t *testing.T) {
	svc := &model.Service{Hostname: "web.ns.svc.cluster.local", Addresses: []string{"10.0.0.1"}}
	b := &vhostBuilder{domains: newDomainSet(), names: map[string]bool{}, portFilter: true}
	for _, port := range []uint32{80, 8080} {
		d, alt := serviceDomains(svc, port, "ns.svc.cluster.local")
		b.add(hostPort(svc.Hostname, port), port, d, alt, nil)
	}
	want80 := []string{"web.ns.svc.cluster.local", "web.ns.svc.cluster.local:80", "web", "web:80",
		"web.ns.svc", "web.ns.svc:80", "web.ns", "web.ns:80", "10.0.0.1", "10.0.0.1:80"}
	want8080 := []string{"web.ns.svc.cluster.local:8080", "web:8080", "web.ns.svc:8080", "web.ns:8080", "10.0.0.1:8080"}
	if got := b.vhosts[0].Domains; !reflect.DeepEqual(got, want80) {
		t.Errorf("port 80 domains = %q, want %q", got, want80)
	}
	if got := b.vhosts[1].Domains; !reflect.DeepEqual(got, want8080) {
		t.Errorf("port 8080 domains = %q, want %q", got, want8080)
	}
}

func TestMergedPolicy(t *testing.T) {
	rr := &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: networking.LoadBalancerSettings_ROUND_ROBIN}}
	random := &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: networking.LoadBalancerSettings_RANDOM}}
	pool := &networking.ConnectionPoolSettings{Tcp: &networking.ConnectionPoolSettings_TCPSettings{MaxConnections: 7}}
	pool2 := &networking.ConnectionPoolSettings{Tcp: &networking.ConnectionPoolSettings_TCPSettings{MaxConnections: 9}}
	dr := &networking.DestinationRule{
		TrafficPolicy: &networking.TrafficPolicy{
			LoadBalancer: rr, ConnectionPool: pool,
			PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{{
				Port: &networking.PortSelector{Number: 9000}, LoadBalancer: random,
			}},
		},
		Subsets: []*networking.Subset{
			{Name: "plain"},
			{Name: "pool", TrafficPolicy: &networking.TrafficPolicy{ConnectionPool: pool2}},
			{Name: "ported", TrafficPolicy: &networking.TrafficPolicy{
				ConnectionPool: pool2,
				PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{{
					Port: &networking.PortSelector{Number: 8080}, LoadBalancer: random,
				}},
			}},
		},
	}
	tests := []struct {
		port   uint32
		subset string
		lb     *networking.LoadBalancerSettings
		pool   *networking.ConnectionPoolSettings
	}{
		{8080, "", rr, pool},
		// Port-level settings replace the destination level wholesale:
		// no inherited connection pool.
		{9000, "", random, nil},
		{8080, "plain", rr, pool},
		{8080, "pool", rr, pool2},
		{9000, "pool", random, pool2},
		// The subset's own port-level settings replace all four
		// components, again without inheritance.
		{8080, "ported", random, nil},
		{9000, "ported", random, pool2},
	}
	for _, tt := range tests {
		got := mergedPolicy(dr, tt.port, tt.subset)
		if got.GetLoadBalancer() != tt.lb || got.GetConnectionPool() != tt.pool {
			t.Errorf("port %d subset %q: lb %v pool %v, want lb %v pool %v", tt.port, tt.subset,
				got.GetLoadBalancer(), got.GetConnectionPool(), tt.lb, tt.pool)
		}
	}
}

func TestFQDN(t *testing.T) {
	idx := &index{domain: "cluster.local"}
	for in, want := range map[string]string{
		"reviews":            "reviews.ns.svc.cluster.local",
		"reviews.other":      "reviews.other",
		"*":                  "*",
		"*.example.com":      "*.example.com",
		"10.0.0.1":           "10.0.0.1",
		"api.example.com":    "api.example.com",
		"2001:db8::1":        "2001:db8::1",
		"reviews.ns.svc.foo": "reviews.ns.svc.foo",
	} {
		if got := idx.fqdn(in, "ns"); got != want {
			t.Errorf("fqdn(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGatewayHostRules(t *testing.T) {
	got := serverHosts([]string{"web/*.example.com", "./a.example.com", "*/b.example.com", "c.example.com"}, "web", "istio-system")
	if want := []string{"*.example.com", "b.example.com", "c.example.com"}; !reflect.DeepEqual(got, want) {
		t.Errorf("serverHosts = %q, want %q", got, want)
	}
	if got := serverHosts([]string{"./a.example.com"}, "istio-system", "istio-system"); !reflect.DeepEqual(got, []string{"a.example.com"}) {
		t.Errorf(`"./" is the Gateway's namespace: got %q`, got)
	}
	got = intersectHosts([]string{"*.example.com", "x.org"}, []string{"www.example.com", "*", "y.org"})
	want := []string{"www.example.com", "*.example.com", "x.org"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("intersectHosts = %q, want %q", got, want)
	}
}

func TestParseEgress(t *testing.T) {
	sc := &sidecarEntry{spec: &networking.Sidecar{Egress: []*networking.IstioEgressListener{
		{Hosts: []string{"./*", "other/api.example.com", "~/*", "*/*.svc.cluster.local"}},
	}}}
	got := parseEgress(sc, "shop")
	want := []egressHost{{"shop", "*"}, {"other", "api.example.com"}, {"~", "*"}, {"*", "*.svc.cluster.local"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseEgress = %v, want %v", got, want)
	}
	if got := parseEgress(nil, "shop"); !reflect.DeepEqual(got, []egressHost{{"*", "*"}}) {
		t.Errorf("no Sidecar: %v, want */*", got)
	}
}

func TestTranslateMatchPresence(t *testing.T) {
	m := &networking.HTTPMatchRequest{Headers: map[string]*networking.StringMatch{
		"a": {},
		"b": {MatchType: &networking.StringMatch_Prefix{Prefix: ""}},
		"c": {MatchType: &networking.StringMatch_Regex{Regex: "*"}},
		"d": {MatchType: &networking.StringMatch_Exact{Exact: ""}},
	}}
	rm := translateMatch(m)
	for i, want := range []bool{true, true, true, false} {
		if got := rm.Headers[i].GetPresentMatch(); got != want {
			t.Errorf("header %s: present_match = %v, want %v", rm.Headers[i].Name, got, want)
		}
	}
	if err := rm.ValidateAll(); err != nil {
		t.Errorf("PGV: %v", err)
	}
}

// TestWorkloadSelectorDestinationRule: a DestinationRule with a
// workloadSelector applies only to the proxies it selects, before the
// namespace-wide rule.
func TestWorkloadSelectorDestinationRule(t *testing.T) {
	svc := &model.Service{Hostname: "db.ns.svc.cluster.local", Namespace: "ns",
		Ports: []model.Port{{Name: "tcp", Number: 5432, Protocol: model.TCP}}}
	wide := istioObject(config.DestinationRule, "ns", "wide", &networking.DestinationRule{Host: "db",
		TrafficPolicy: &networking.TrafficPolicy{ConnectionPool: &networking.ConnectionPoolSettings{
			Tcp: &networking.ConnectionPoolSettings_TCPSettings{ConnectTimeout: durationpb.New(1e9)}}}})
	selected := istioObject(config.DestinationRule, "ns", "selected", &networking.DestinationRule{Host: "db",
		WorkloadSelector: &v1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "batch"}},
		TrafficPolicy: &networking.TrafficPolicy{ConnectionPool: &networking.ConnectionPoolSettings{
			Tcp: &networking.ConnectionPoolSettings_TCPSettings{ConnectTimeout: durationpb.New(5e9)}}}})
	snap := model.NewSnapshot(model.SnapshotOptions{Services: []*model.Service{svc}, Configs: []*config.Object{wide, selected}})
	tr := New(Options{})
	for _, tt := range []struct {
		app  string
		want int64
	}{{"web", 1}, {"batch", 5}} {
		p, err := model.ParseProxy("sidecar~10.0.0.1~x.ns~ns.svc.cluster.local", nil, map[string]string{"app": tt.app})
		if err != nil {
			t.Fatal(err)
		}
		c := tr.Generate(snap, p).Clusters["outbound|5432||db.ns.svc.cluster.local"]
		if got := c.GetConnectTimeout().GetSeconds(); got != tt.want {
			t.Errorf("app %s: connect timeout %ds, want %ds", tt.app, got, tt.want)
		}
	}
}

// TestSharedScopes: proxies of one scope share the outbound maps and
// messages; another namespace or Sidecar gets its own.
func TestSharedScopes(t *testing.T) {
	snap := syntheticMesh(meshOptions{namespaces: 2, services: 20, endpoints: 2, virtualServices: 4, v1Weight: 90}, "1")
	tr := New(Options{})
	a := tr.Generate(snap, meshProxy(t, "ns-0", 1))
	b := tr.Generate(snap, meshProxy(t, "ns-0", 2))
	c := tr.Generate(snap, meshProxy(t, "ns-1", 3))
	if reflect.ValueOf(a.Routes).Pointer() != reflect.ValueOf(b.Routes).Pointer() {
		t.Error("two proxies of one namespace do not share the route map")
	}
	if a.Routes[httpProxyRoute] != b.Routes[httpProxyRoute] {
		t.Error("two proxies of one namespace do not share the route message")
	}
	if a.Routes[httpProxyRoute] == c.Routes[httpProxyRoute] {
		t.Error("proxies of two namespaces share a route configuration (their short names differ)")
	}
	// Clusters are shared across scopes when the same rule applies.
	name := "outbound|8080|v1|svc-0.ns-0.svc.cluster.local"
	if a.Clusters[name] == nil || a.Clusters[name] != c.Clusters[name] {
		t.Errorf("cluster %s not shared between namespaces", name)
	}
	if !reflect.DeepEqual(a.Versions, b.Versions) {
		t.Errorf("equal resources, different versions: %v vs %v", a.Versions, b.Versions)
	}
}

// TestVersionsFollowContent: changing one VirtualService's weights changes
// the route version only; the same content in a new snapshot keeps every
// version.
func TestVersionsFollowContent(t *testing.T) {
	o := meshOptions{namespaces: 2, services: 20, endpoints: 2, virtualServices: 4, v1Weight: 90}
	tr := New(Options{})
	p := meshProxy(t, "ns-0", 1)
	v1 := tr.Generate(syntheticMesh(o, "1"), p).Versions
	same := tr.Generate(syntheticMesh(o, "2"), p).Versions
	if !reflect.DeepEqual(v1, same) {
		t.Errorf("same content, different versions: %v vs %v", v1, same)
	}
	o.v1Weight = 50
	changed := tr.Generate(syntheticMesh(o, "3"), p).Versions
	for typ, v := range v1 {
		if (changed[typ] != v) != (typ == RouteType) {
			t.Errorf("%s: version %s → %s after a weight change (only routes should change)", typ, v, changed[typ])
		}
	}
}

// TestCacheKeepsTwoSnapshots: the cache holds the newest two snapshots,
// and only the retained one after Retain.
func TestCacheKeepsTwoSnapshots(t *testing.T) {
	tr := New(Options{})
	p := meshProxy(t, "ns-0", 1)
	o := meshOptions{namespaces: 1, services: 2, endpoints: 1, virtualServices: 1, v1Weight: 90}
	for i := 0; i < 4; i++ {
		tr.Generate(syntheticMesh(o, fmt.Sprint(i)), p)
	}
	if n := len(tr.c.states); n != keptSnapshots {
		t.Errorf("cache holds %d snapshots, want %d", n, keptSnapshots)
	}
	last := syntheticMesh(o, "last")
	want := tr.Generate(last, p)
	tr.Retain(last)
	if n := len(tr.c.states); n != 1 || tr.c.states[0].snap != last {
		t.Fatalf("after Retain: %d snapshots, want only the retained one", n)
	}
	if got := tr.Generate(last, p); !reflect.DeepEqual(got.Versions, want.Versions) {
		t.Errorf("after Retain: versions %v, want %v", got.Versions, want.Versions)
	}
}

// TestConcurrentGenerate: many goroutines generating for proxies of several
// scopes get the same resources as a sequential run (run with -race).
func TestConcurrentGenerate(t *testing.T) {
	snap := syntheticMesh(meshOptions{namespaces: 4, services: 40, endpoints: 3, virtualServices: 8, v1Weight: 90}, "1")
	want := map[string]*Resources{}
	seq := New(Options{})
	var proxies []*model.Proxy
	for i := 0; i < 16; i++ {
		p := meshProxy(t, fmt.Sprintf("ns-%d", i%4), i)
		proxies = append(proxies, p)
		want[p.ID] = seq.Generate(snap, p)
	}
	tr := New(Options{})
	var wg sync.WaitGroup
	got := make([]*Resources, len(proxies)*4)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = tr.Generate(snap, proxies[i%len(proxies)])
		}()
	}
	wg.Wait()
	for i, r := range got {
		w := want[proxies[i%len(proxies)].ID]
		if !reflect.DeepEqual(r.Versions, w.Versions) || len(r.Clusters) != len(w.Clusters) {
			t.Fatalf("proxy %d: concurrent result differs from the sequential one", i)
		}
		for name, c := range w.Clusters {
			if !proto.Equal(c, r.Clusters[name]) {
				t.Fatalf("proxy %d: cluster %s differs", i, name)
			}
		}
	}
}

// TestWarningsOncePerField: generating many times reports each warning
// once, and Warnings before any Generate already has the static ones.
func TestWarningsOncePerField(t *testing.T) {
	vs := istioObject(config.VirtualService, "default", "r", &networking.VirtualService{
		Hosts: []string{"r"},
		Http: []*networking.HTTPRoute{{
			CorsPolicy: &networking.CorsPolicy{AllowMethods: []string{"GET"}},
			Route:      []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "r"}}},
		}},
	})
	svc := &model.Service{Hostname: "r.default.svc.cluster.local", Namespace: "default",
		Ports: []model.Port{{Name: "http", Number: 80, Protocol: model.HTTP}}}
	snap := model.NewSnapshot(model.SnapshotOptions{Services: []*model.Service{svc}, Configs: []*config.Object{vs}})
	tr := New(Options{})
	before := tr.Warnings(snap)
	for i := 0; i < 3; i++ {
		tr.Generate(snap, meshProxy(t, "default", i))
	}
	after := tr.Warnings(snap)
	if len(before) != 1 || len(after) != 1 {
		t.Fatalf("warnings before %v, after %v; want exactly one each", before, after)
	}
	w := after[0]
	if !w.Warning || w.Path != "spec.http[0].corsPolicy" || w.Key != vs.Key() || !strings.HasPrefix(w.Message, msgProxy) {
		t.Errorf("warning = %+v", w)
	}
}

// TestClustersReusedAcrossSnapshots: a snapshot that changes only a
// VirtualService reuses every cluster set of the previous one (same
// services, same rules); changing a DestinationRule rebuilds only the
// clusters of its service, with the new policy.
func TestClustersReusedAcrossSnapshots(t *testing.T) {
	o := meshOptions{namespaces: 2, services: 6, endpoints: 2, virtualServices: 2, v1Weight: 90}
	tr := New(Options{})
	p := meshProxy(t, "ns-0", 1)
	s1 := syntheticMesh(o, "1")
	tr.Generate(s1, p)
	with := func(version string, replace *config.Object) *model.Snapshot {
		var objs []*config.Object
		for _, k := range []config.Kind{config.VirtualService, config.DestinationRule} {
			for _, obj := range s1.List(k) {
				if obj.Key() == replace.Key() {
					obj = replace
				}
				objs = append(objs, obj)
			}
		}
		return model.NewSnapshot(model.SnapshotOptions{Version: version, Services: s1.Services, Configs: objs})
	}
	sets := func() map[string]*clusterSet {
		out := map[string]*clusterSet{}
		for k, cs := range tr.c.states[0].clusters {
			out[k.svc.Hostname] = cs
		}
		return out
	}
	before := sets()

	tr.Generate(with("2", splitVirtualService("ns-0", "svc-0", 50)), p)
	after := sets()
	if len(after) == 0 || len(after) != len(before) {
		t.Fatalf("cluster sets: %d before, %d after", len(before), len(after))
	}
	for host, cs := range after {
		if before[host] != cs {
			t.Errorf("%s: clusters rebuilt after a VirtualService change", host)
		}
	}

	dr := subsetRule("ns-0", "svc-0")
	dr.Spec.(*networking.DestinationRule).TrafficPolicy = &networking.TrafficPolicy{
		LoadBalancer: &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: networking.LoadBalancerSettings_RANDOM}},
	}
	res := tr.Generate(with("3", dr), p)
	changed := sets()
	for host, cs := range changed {
		if rebuilt := cs != after[host]; rebuilt != strings.HasPrefix(host, "svc-0.") {
			t.Errorf("%s: rebuilt=%v after svc-0's DestinationRule changed", host, rebuilt)
		}
	}
	c := res.Clusters["outbound|8080||svc-0.ns-0.svc.cluster.local"]
	if c == nil || c.GetLbPolicy() != clusterv3.Cluster_RANDOM {
		t.Errorf("svc-0's cluster after the rule change: %v, want lb_policy RANDOM", c.GetLbPolicy())
	}
}
