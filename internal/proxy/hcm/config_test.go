package hcm

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/router"
	"github.com/weftmesh/weft/internal/proxy/stats"
)

// stubRouter stands in for the router filter (a terminal filter).
type stubRouter struct{ httpfilter.Filter }

func newTestManager(t *testing.T, cfg *hcmv3.HttpConnectionManager) (*Manager, error) {
	t.Helper()
	reg := httpfilter.NewRegistry()
	reg.Register(&routerv3.Router{}, true, func(proto.Message, httpfilter.Deps) (httpfilter.Filter, error) { return stubRouter{}, nil })
	a, err := anypb.New(&routerv3.Router{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.StatPrefix = "test"
	cfg.HttpFilters = []*hcmv3.HttpFilter{{Name: "router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}}}
	m, err := New(cfg, Options{Stats: stats.NewStore(), Filters: reg})
	if m != nil {
		t.Cleanup(m.Close)
	}
	return m, err
}

func rds(name string, cs *corev3.ConfigSource) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: name, ConfigSource: cs}}}
}

func ads(timeout *durationpb.Duration) *corev3.ConfigSource {
	return &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}, InitialFetchTimeout: timeout}
}

func TestRDSConfig(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cfg         *hcmv3.HttpConnectionManager
		wantErr     string
		wantName    string
		wantTimeout time.Duration
	}{
		{name: "rds_default_timeout", cfg: rds("routes", ads(nil)), wantName: "routes", wantTimeout: 15 * time.Second},
		{name: "rds_timeout_zero", cfg: rds("routes", ads(durationpb.New(0))), wantName: "routes", wantTimeout: 0},
		{name: "rds_no_name", cfg: rds("", ads(nil)), wantErr: "rds.route_config_name: required"},
		{name: "rds_not_ads", cfg: rds("routes", &corev3.ConfigSource{}), wantErr: "rds.config_source: set ads {}"},
		{name: "no_routes", cfg: &hcmv3.HttpConnectionManager{}, wantErr: "route_config: set an inline route_config or rds"},
		{name: "inline", cfg: &hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{Name: "inline"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := newTestManager(t, tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.RDSName() != tc.wantName || m.RDSInitialFetchTimeout() != tc.wantTimeout {
				t.Errorf("RDSName %q timeout %v, want %q %v", m.RDSName(), m.RDSInitialFetchTimeout(), tc.wantName, tc.wantTimeout)
			}
		})
	}
}

// TestSetRoutes: before its first RDS response a manager routes nothing
// (404 NR); SetRoutes swaps the table in.
func TestSetRoutes(t *testing.T) {
	m, err := newTestManager(t, rds("routes", ads(nil)))
	if err != nil {
		t.Fatal(err)
	}
	var req headers.Request
	req.Method, req.Path, req.Authority = []byte("GET"), []byte("/"), []byte("x")
	if r, _ := m.Routes().Route(&req); r != nil {
		t.Fatal("a route matched before the first RDS response")
	}
	table, err := router.Compile(&routev3.RouteConfiguration{Name: "routes", VirtualHosts: []*routev3.VirtualHost{{
		Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 204}},
		}},
	}}}, m.RouteCompileOptions())
	if err != nil {
		t.Fatal(err)
	}
	m.SetRoutes(table)
	if r, _ := m.Routes().Route(&req); r == nil || m.Routes().Name() != "routes" {
		t.Fatal("no route after SetRoutes")
	}
}
