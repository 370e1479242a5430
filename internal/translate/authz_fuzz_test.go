package translate

import (
	"testing"

	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbactcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"
	security "istio.io/api/security/v1beta1"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/rbac"
	"github.com/weftmesh/weft/internal/proxy/stats"
)

// FuzzAuthorizationPolicy: any AuthorizationPolicy spec (JSON) that
// internal/config accepts translates into RBAC filters that pass Envoy's
// validation (PGV) and that weft-proxy's rbac package compiles: what the
// control plane sends, the proxy enforces.
func FuzzAuthorizationPolicy(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"action": "DENY", "rules": [{}]}`,
		`{"rules": [{"from": [{"source": {"principals": ["cluster.local/ns/default/sa/sleep", "*"], "notNamespaces": ["dev*"]}}], "to": [{"operation": {"methods": ["GET"], "paths": ["/info*", "*.png", "*"]}}]}]}`,
		`{"action": "DENY", "rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8", "::1"], "remoteIpBlocks": ["1.2.3.4"]}}], "to": [{"operation": {"hosts": ["*.example.com"], "notPorts": ["8080"]}}], "when": [{"key": "request.headers[x-a]", "values": ["*"]}, {"key": "destination.port", "notValues": ["1"]}]}]}`,
		`{"action": "AUDIT", "rules": [{"from": [{"source": {"requestPrincipals": ["https://iss/*", "*/sub", "*"]}}], "when": [{"key": "request.auth.claims[groups][a]", "values": ["x", "y"]}, {"key": "request.auth.audiences", "values": ["a"]}, {"key": "connection.sni", "values": ["*.a"]}]}]}`,
		`{"rules": [{"from": [{"source": {"serviceAccounts": ["sleep", "ns/sa"], "trustDomains": ["td", "*"]}}]}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		ap := &security.AuthorizationPolicy{}
		if err := protojson.Unmarshal([]byte(spec), ap); err != nil {
			return
		}
		obj := &config.Object{
			Meta: config.Meta{Kind: config.AuthorizationPolicy, APIVersion: "security.istio.io/v1", Name: "p", Namespace: "default"},
			Spec: ap,
		}
		for _, e := range config.Validate(obj) {
			if !e.Warning {
				return // rejected: never reaches translation
			}
		}
		snap := model.NewSnapshot(model.SnapshotOptions{Version: "fuzz", Configs: []*config.Object{obj}})
		p := &model.Proxy{Type: model.SidecarProxy, Namespace: "default", Labels: map[string]string{"app": "a"}}
		st := &snapState{snap: snap, opts: Options{TrustDomain: "example.org"}}
		filters := st.authzFor(p)
		for _, hf := range filters.http {
			var cfg rbachttpv3.RBAC
			if err := hf.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
				t.Fatal(err)
			}
			if err := cfg.ValidateAll(); err != nil {
				t.Fatalf("HTTP RBAC fails Envoy's validation: %v\n%s", err, protojson.Format(&cfg))
			}
			if _, err := rbac.NewHTTP(&cfg, stats.NewStore().Root()); err != nil {
				t.Fatalf("weft-proxy rejects the HTTP RBAC: %v", err)
			}
		}
		for _, nf := range filters.tcp {
			var cfg rbactcpv3.RBAC
			if err := nf.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
				t.Fatal(err)
			}
			if err := cfg.ValidateAll(); err != nil {
				t.Fatalf("network RBAC fails Envoy's validation: %v\n%s", err, protojson.Format(&cfg))
			}
			if _, err := rbac.NewNetwork(&cfg, stats.NewStore().Root()); err != nil {
				t.Fatalf("weft-proxy rejects the network RBAC: %v", err)
			}
		}
		// Insertion keeps the router last.
		l := inboundListener(inboundPort{port: 80, protocol: model.HTTP, bind: "10.0.0.1", target: "127.0.0.1:80"}, "inbound|80||", inboundFilters{http: filters.http, tcp: filters.tcp})
		var m hcmv3.HttpConnectionManager
		if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&m); err != nil {
			t.Fatal(err)
		}
		if n := len(m.GetHttpFilters()); n != len(filters.http)+2 || m.GetHttpFilters()[n-2].GetName() != statsFilterName || m.GetHttpFilters()[n-1].GetName() != routerFilterName {
			t.Fatalf("HTTP filters %v: want the RBAC filters, istio.stats, then the router", m.GetHttpFilters())
		}
	})
}
