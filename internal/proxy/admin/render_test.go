package admin

import (
	"reflect"
	"strings"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestHealthFlags(t *testing.T) {
	cases := []struct {
		hs   *adminv3.HostHealthStatus
		want string
	}{
		{nil, "healthy"},
		{&adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_HEALTHY}, "healthy"},
		{&adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_UNKNOWN}, "healthy"},
		{&adminv3.HostHealthStatus{FailedActiveHealthCheck: true}, "/failed_active_hc"},
		{&adminv3.HostHealthStatus{FailedActiveHealthCheck: true, FailedOutlierCheck: true}, "/failed_active_hc/failed_outlier_check"},
		{&adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_UNHEALTHY}, "/failed_eds_health"},
		{&adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_TIMEOUT}, "/failed_eds_health"},
		{&adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_DEGRADED, FailedActiveDegradedCheck: true}, "/degraded_active_hc/degraded_eds_health"},
		{&adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_DRAINING, ActiveHcTimeout: true}, "/active_hc_timeout/eds_status_draining"},
		{&adminv3.HostHealthStatus{PendingDynamicRemoval: true, PendingActiveHc: true, ExcludedViaImmediateHcFail: true},
			"/pending_dynamic_removal/pending_active_hc/excluded_via_immediate_hc_fail"},
	}
	for _, c := range cases {
		if got := healthFlags(c.hs); got != c.want {
			t.Errorf("healthFlags(%v) = %q, want %q", c.hs, got, c.want)
		}
	}
}

func TestHostAddress(t *testing.T) {
	cases := []struct {
		a    *corev3.Address
		want string
	}{
		{socketAddress("10.0.0.1", 80), "10.0.0.1:80"},
		{socketAddress("::1", 443), "[::1]:443"},
		{&corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/run/app.sock"}}}, "/run/app.sock"},
		{&corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
			AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: "inner"}, EndpointId: "e1"}}}, "envoy://inner/e1"},
		{nil, "unknown"},
	}
	for _, c := range cases {
		if got := hostAddress(c.a); got != c.want {
			t.Errorf("hostAddress(%v) = %q, want %q", c.a, got, c.want)
		}
	}
}

// TestClustersTextOneLinePerValue checks a cluster name holding a newline
// cannot split a line.
func TestClustersTextOneLinePerValue(t *testing.T) {
	cs := &adminv3.Clusters{ClusterStatuses: []*adminv3.ClusterStatus{{Name: "bad\nname"}}}
	out := string(appendClustersText(nil, cs))
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.HasPrefix(line, "bad_name::") {
			t.Errorf("line %q does not start with the sanitized cluster name", line)
		}
	}
}

func TestValidMask(t *testing.T) {
	md := (&bootstrapv3.Bootstrap{}).ProtoReflect().Descriptor()
	cases := []struct {
		paths []string
		want  bool
	}{
		{[]string{"node"}, true},
		{[]string{"node.id", "admin.address"}, true},
		{[]string{"static_resources.clusters"}, true},
		{[]string{"static_resources.clusters.name"}, false}, // through a repeated field
		{[]string{"node.id.x"}, false},                      // through a scalar
		{[]string{"nope"}, false},
		{[]string{"node", ""}, false},
		{[]string{"node..id"}, false},
		{nil, true},
	}
	for _, c := range cases {
		if got := validMask(md, c.paths); got != c.want {
			t.Errorf("validMask(%q) = %v, want %v", c.paths, got, c.want)
		}
	}
}

func TestBuildMaskTree(t *testing.T) {
	cases := []struct {
		paths []string
		want  maskTree
	}{
		{[]string{"a.b", "a"}, maskTree{"a": nil}},
		{[]string{"a", "a.b"}, maskTree{"a": nil}},
		{[]string{"a.b", "a.c.d", "e"}, maskTree{"a": {"b": nil, "c": {"d": nil}}, "e": nil}},
	}
	for _, c := range cases {
		if got := buildMaskTree(c.paths); !reflect.DeepEqual(got, c.want) {
			t.Errorf("buildMaskTree(%q) = %v, want %v", c.paths, got, c.want)
		}
	}
}

func TestTrimMessage(t *testing.T) {
	b := &bootstrapv3.Bootstrap{
		Node:            fixtureNode(),
		Admin:           &bootstrapv3.Admin{Address: socketAddress("127.0.0.1", 15000)},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{},
	}
	if !checkAndTrim(b.ProtoReflect(), []string{"node.id", "admin"}) {
		t.Fatal("valid mask refused")
	}
	want := &bootstrapv3.Bootstrap{
		Node:  &corev3.Node{Id: fixtureNode().Id},
		Admin: &bootstrapv3.Admin{Address: socketAddress("127.0.0.1", 15000)},
	}
	if !proto.Equal(b, want) {
		t.Errorf("trimmed to\n%v\nwant\n%v", prototext.Format(b), prototext.Format(want))
	}
}

func TestTrimResourceThroughAny(t *testing.T) {
	sc := &adminv3.ClustersConfigDump_StaticCluster{Cluster: mustAny(fixtureCluster()), LastUpdated: timestamppb.New(fixedTime)}
	if trimResource(sc.ProtoReflect(), []string{"cluster.name", "last_updated"}) != true {
		t.Fatal("valid mask refused")
	}
	got, err := sc.GetCluster().UnmarshalNew()
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, &clusterv3.Cluster{Name: "backend"}) {
		t.Errorf("cluster trimmed to %v, want only its name", prototext.Format(got))
	}
	if sc.GetLastUpdated() == nil {
		t.Error("last_updated, in the mask, was cleared")
	}
	whole := &adminv3.ClustersConfigDump_StaticCluster{Cluster: mustAny(fixtureCluster())}
	if !trimResource(whole.ProtoReflect(), []string{"cluster"}) || !proto.Equal(whole.GetCluster(), mustAny(fixtureCluster())) {
		t.Error(`mask "cluster" did not keep the whole cluster`)
	}
	bad := &adminv3.ClustersConfigDump_StaticCluster{Cluster: &anypb.Any{TypeUrl: "type.googleapis.com/unknown.Type", Value: []byte{1}}}
	if trimResource(bad.ProtoReflect(), []string{"cluster.name"}) {
		t.Error("mask through an unknown Any type accepted")
	}
}

func TestRedact(t *testing.T) {
	keyBytes := &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte("KEYBYTES")}}
	secret := &tlsv3.Secret{Name: "server-cert", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: inline("CHAIN"),
		PrivateKey:       keyBytes,
		Password:         inline("PASSWORD"),
	}}}
	tickets := &tlsv3.Secret{Name: "tickets", Type: &tlsv3.Secret_SessionTicketKeys{SessionTicketKeys: &tlsv3.TlsSessionTicketKeys{
		Keys: []*corev3.DataSource{inline("TICKET1"), {Specifier: &corev3.DataSource_Filename{Filename: "/etc/ticket2"}}},
	}}}
	dump := &adminv3.SecretsConfigDump{StaticSecrets: []*adminv3.SecretsConfigDump_StaticSecret{
		{Name: "server-cert", Secret: mustAny(secret)},
		{Name: "tickets", Secret: mustAny(tickets)},
		{Name: "opaque", Secret: &anypb.Any{TypeUrl: "type.googleapis.com/unknown.Type", Value: []byte("OPAQUE")}},
	}}
	redact(dump.ProtoReflect(), false)

	var got1, got2 tlsv3.Secret
	if err := dump.StaticSecrets[0].Secret.UnmarshalTo(&got1); err != nil {
		t.Fatal(err)
	}
	if err := dump.StaticSecrets[1].Secret.UnmarshalTo(&got2); err != nil {
		t.Fatal(err)
	}
	cert := got1.GetTlsCertificate()
	if s := string(cert.GetPrivateKey().GetInlineBytes()); s != redacted {
		t.Errorf("private key bytes = %q", s)
	}
	if s := cert.GetPassword().GetInlineString(); s != redacted {
		t.Errorf("password = %q", s)
	}
	if s := cert.GetCertificateChain().GetInlineString(); s != "CHAIN" {
		t.Errorf("certificate chain (not sensitive) = %q", s)
	}
	if got1.GetName() != "server-cert" || dump.StaticSecrets[0].GetName() != "server-cert" {
		t.Error("names (not sensitive) were redacted")
	}
	keys := got2.GetSessionTicketKeys().GetKeys()
	if len(keys) != 2 || keys[0].GetInlineString() != redacted || keys[1].GetFilename() != redacted {
		t.Errorf("ticket keys = %v", keys)
	}
	if v := string(dump.StaticSecrets[2].Secret.GetValue()); v != "OPAQUE" {
		t.Errorf("an Any of unknown type outside a sensitive field changed: %q", v)
	}
}
