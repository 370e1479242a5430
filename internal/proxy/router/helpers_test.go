package router

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// parseRC decodes a RouteConfiguration written in YAML, as a bootstrap file
// would carry it.
func parseRC(t testing.TB, y string) *routev3.RouteConfiguration {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatalf("yaml: %v", err)
	}
	rc := &routev3.RouteConfiguration{}
	if err := protojson.Unmarshal(js, rc); err != nil {
		t.Fatalf("protojson: %v\n%s", err, js)
	}
	return rc
}

func compileYAML(t testing.TB, y string) *Table {
	t.Helper()
	return compileYAMLOpts(t, y, CompileOptions{})
}

func compileYAMLOpts(t testing.TB, y string, opts CompileOptions) *Table {
	t.Helper()
	tab, err := Compile(parseRC(t, y), opts)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tab
}

// newReq builds a request; hdrs are name, value pairs (lower-case names;
// pseudo-headers go to their fields).
func newReq(host, path string, hdrs ...string) *headers.Request {
	r := &headers.Request{Method: []byte("GET"), Scheme: []byte("http"), Protocol: headers.HTTP11}
	if host != "" {
		r.Authority = []byte(host)
	}
	if path != "" {
		r.Path = []byte(path)
	}
	for i := 0; i+1 < len(hdrs); i += 2 {
		switch hdrs[i] {
		case ":method":
			r.Method = []byte(hdrs[i+1])
		case ":scheme":
			r.Scheme = []byte(hdrs[i+1])
		default:
			r.Add(hdrs[i], hdrs[i+1])
		}
	}
	return r
}

// routeName routes req and returns the matched route's name, "<nil>" for no
// route.
func routeName(tab *Table, req *headers.Request) string {
	r, _ := tab.Route(req)
	if r == nil {
		return "<nil>"
	}
	return r.Name()
}

// testVars is a fixed Vars.
type testVars struct {
	remote, local, upstream netip.AddrPort
	proto                   headers.Protocol
	host                    string
	start                   time.Time
}

func (v *testVars) DownstreamRemoteAddr() netip.AddrPort { return v.remote }
func (v *testVars) DownstreamLocalAddr() netip.AddrPort  { return v.local }
func (v *testVars) UpstreamRemoteAddr() netip.AddrPort   { return v.upstream }
func (v *testVars) Protocol() headers.Protocol           { return v.proto }
func (v *testVars) Hostname() string                     { return v.host }
func (v *testVars) StartTime() time.Time                 { return v.start }

func defaultVars() *testVars {
	return &testVars{
		remote:   netip.MustParseAddrPort("10.0.0.1:5555"),
		local:    netip.MustParseAddrPort("10.0.0.2:8080"),
		upstream: netip.MustParseAddrPort("[2001:db8::1]:9000"),
		proto:    headers.HTTP2,
		host:     "proxy-1",
		start:    time.Date(2024, 3, 5, 7, 8, 9, 123456789, time.UTC),
	}
}

// allValues returns every value of name in m, joined by "|".
func allValues(m *headers.Map, name string) string {
	var vs []string
	for i := m.Index(name, 0); i >= 0; i = m.Index(name, i+1) {
		vs = append(vs, string(m.Fields[i].Value))
	}
	return strings.Join(vs, "|")
}
