package translate

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/nds"
)

func dnsProxy(t *testing.T, ip, ns string, meta map[string]string) *model.Proxy {
	t.Helper()
	p, err := model.ParseProxy("sidecar~"+ip+"~app-1."+ns+"~"+ns+".svc.cluster.local", meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var dnsOn = map[string]string{model.MetaDNSCapture: "true", model.MetaDNSAutoAllocate: "true"}

func nameTableSnapshot() *model.Snapshot {
	return model.NewSnapshot(model.SnapshotOptions{Version: "1", Services: []*model.Service{
		{Hostname: "hello.default.svc.cluster.local", Namespace: "default", Resolution: model.ClientSideLB,
			AutoAllocated: []string{"240.240.0.9", "2001:2::f0f0:9"}},
		{Hostname: "db.data.svc.cluster.local", Namespace: "data", Resolution: model.ClientSideLB, Addresses: []string{"10.0.0.5", "10.1.0.0/16"}},
		{Hostname: "api.example.com", Namespace: "default", Resolution: model.DNS, AutoAllocated: []string{"240.240.1.1", "2001:2::f0f0:101"}},
		{Hostname: "*.wild.example.com", Namespace: "default", Resolution: model.DNS, Addresses: []string{"10.9.9.9"}},
		{Hostname: "headless.example.com", Namespace: "default", Resolution: model.Passthrough,
			Endpoints: []*model.Endpoint{{Address: "10.2.0.1"}, {Address: "10.2.0.2"}, {Address: "10.2.0.1"}, {Address: "name.example.com"}}},
		{Hostname: "none.example.com", Namespace: "default", Resolution: model.Passthrough},
		{Hostname: "private.other.svc.cluster.local", Namespace: "other", Resolution: model.ClientSideLB,
			ExportTo: []string{"."}, AutoAllocated: []string{"240.240.2.2", "2001:2::f0f0:202"}},
	}})
}

func TestNameTable(t *testing.T) {
	snap := nameTableSnapshot()
	tr := New(Options{})
	cases := []struct {
		name  string
		proxy *model.Proxy
		want  nds.Table
	}{
		{"ipv4_proxy", dnsProxy(t, "10.0.0.1", "default", dnsOn), nds.Table{
			"hello.default.svc.cluster.local": {IPs: []string{"240.240.0.9"}, Registry: "Kubernetes", Shortname: "hello", Namespace: "default"},
			"db.data.svc.cluster.local":       {IPs: []string{"10.0.0.5"}, Registry: "Kubernetes", Shortname: "db", Namespace: "data"},
			"api.example.com":                 {IPs: []string{"240.240.1.1"}, Registry: "External"},
			"*.wild.example.com":              {IPs: []string{"10.9.9.9"}, Registry: "External"},
			"headless.example.com":            {IPs: []string{"10.2.0.1", "10.2.0.2"}, Registry: "External"},
		}},
		{"dual_stack_proxy", dnsProxy(t, "10.0.0.1,fd00::1", "default", dnsOn), nds.Table{
			"hello.default.svc.cluster.local": {IPs: []string{"240.240.0.9", "2001:2::f0f0:9"}, Registry: "Kubernetes", Shortname: "hello", Namespace: "default"},
			"db.data.svc.cluster.local":       {IPs: []string{"10.0.0.5"}, Registry: "Kubernetes", Shortname: "db", Namespace: "data"},
			"api.example.com":                 {IPs: []string{"240.240.1.1", "2001:2::f0f0:101"}, Registry: "External"},
			"*.wild.example.com":              {IPs: []string{"10.9.9.9"}, Registry: "External"},
			"headless.example.com":            {IPs: []string{"10.2.0.1", "10.2.0.2"}, Registry: "External"},
		}},
		{"no_auto_allocate", dnsProxy(t, "10.0.0.1", "default", map[string]string{model.MetaDNSCapture: "true"}), nds.Table{
			"db.data.svc.cluster.local": {IPs: []string{"10.0.0.5"}, Registry: "Kubernetes", Shortname: "db", Namespace: "data"},
			"*.wild.example.com":        {IPs: []string{"10.9.9.9"}, Registry: "External"},
			"headless.example.com":      {IPs: []string{"10.2.0.1", "10.2.0.2"}, Registry: "External"},
		}},
		{"other_namespace_sees_private", dnsProxy(t, "10.0.0.1", "other", dnsOn), nds.Table{
			"hello.default.svc.cluster.local": {IPs: []string{"240.240.0.9"}, Registry: "Kubernetes", Shortname: "hello", Namespace: "default"},
			"db.data.svc.cluster.local":       {IPs: []string{"10.0.0.5"}, Registry: "Kubernetes", Shortname: "db", Namespace: "data"},
			"api.example.com":                 {IPs: []string{"240.240.1.1"}, Registry: "External"},
			"*.wild.example.com":              {IPs: []string{"10.9.9.9"}, Registry: "External"},
			"headless.example.com":            {IPs: []string{"10.2.0.1", "10.2.0.2"}, Registry: "External"},
			"private.other.svc.cluster.local": {IPs: []string{"240.240.2.2"}, Registry: "Kubernetes", Shortname: "private", Namespace: "other"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tr.NameTable(snap, tc.proxy)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
			r := tr.Generate(snap, tc.proxy)
			if len(r.NameTables) != 1 || r.Versions[NameTableType] == "" {
				t.Fatalf("Generate: %d name tables, version %q; want one with a version", len(r.NameTables), r.Versions[NameTableType])
			}
			b, _ := proto.Marshal(r.NameTables[""])
			dec, err := nds.Unmarshal(b)
			if err != nil || !reflect.DeepEqual(dec, tc.want) {
				t.Errorf("Generate's table decodes to %v (%v), want %v", dec, err, tc.want)
			}
		})
	}
}

// TestNameTableOnlyForDNSProxies: a proxy without DNS_CAPTURE gets no name
// table and no NDS version (its other resources are unchanged).
func TestNameTableOnlyForDNSProxies(t *testing.T) {
	snap := nameTableSnapshot()
	tr := New(Options{})
	plain := tr.Generate(snap, dnsProxy(t, "10.0.0.1", "default", nil))
	if plain.NameTables != nil || plain.Versions[NameTableType] != "" {
		t.Errorf("plain proxy got a name table (%v, version %q)", plain.NameTables, plain.Versions[NameTableType])
	}
	dns := tr.Generate(snap, dnsProxy(t, "10.0.0.1", "default", dnsOn))
	for _, typ := range []string{ListenerType, RouteType, ClusterType, EndpointType} {
		if plain.Versions[typ] != dns.Versions[typ] {
			t.Errorf("%s version differs with DNS capture: %s vs %s", typ, plain.Versions[typ], dns.Versions[typ])
		}
	}
	// Equal tables, equal versions; a changed address, a new version.
	again := tr.Generate(nameTableSnapshot(), dnsProxy(t, "10.0.0.2", "default", dnsOn))
	if again.Versions[NameTableType] != dns.Versions[NameTableType] {
		t.Error("equal name tables got different versions")
	}
	changed := nameTableSnapshot()
	changed.ServicesByHost("hello.default.svc.cluster.local")[0].AutoAllocated = []string{"240.240.0.10"}
	if tr.Generate(changed, dnsProxy(t, "10.0.0.1", "default", dnsOn)).Versions[NameTableType] == dns.Versions[NameTableType] {
		t.Error("a changed table kept its version")
	}
}
