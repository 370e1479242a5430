package istiostats

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/network"
)

func node(t testing.TB, labels map[string]any) *corev3.Node {
	t.Helper()
	md, err := structpb.NewStruct(map[string]any{
		"NAME": "sleep-1", "NAMESPACE": "default", "WORKLOAD_NAME": "sleep", "CLUSTER_ID": "Kubernetes",
		"SERVICE_ACCOUNT": "sleep", "LABELS": labels,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.Node{Id: "sidecar~127.0.0.3~sleep-1.default~default.svc.cluster.local", Metadata: md}
}

func TestSelfFromNodeCanonicalDefaults(t *testing.T) {
	for _, tc := range []struct {
		name          string
		labels        map[string]any
		svc, rev, app string
	}{
		{"canonical labels win", map[string]any{canonicalNameLabel: "cs", canonicalRevisionLabel: "cr", "app": "a", "version": "v"}, "cs", "cr", "a"},
		{"app.kubernetes.io before app", map[string]any{"app.kubernetes.io/name": "kn", "app.kubernetes.io/version": "kv", "app": "a", "version": "v"}, "kn", "kv", "a"},
		{"app and version", map[string]any{"app": "a", "version": "v"}, "a", "v", "a"},
		{"workload name and latest", map[string]any{}, "sleep", "latest", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := SelfFromNode(node(t, tc.labels), "")
			if w.CanonicalService != tc.svc || w.CanonicalRevision != tc.rev || w.App != tc.app || w.Name != "sleep" || w.Cluster != "Kubernetes" {
				t.Errorf("got %+v, want canonical %s/%s app %q", w, tc.svc, tc.rev, tc.app)
			}
		})
	}
}

func TestPeerFromEndpoint(t *testing.T) {
	md := func(f map[string]any) *corev3.Metadata {
		st, _ := structpb.NewStruct(f)
		return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": st}}
	}
	for _, tc := range []struct {
		name string
		md   *corev3.Metadata
		want Workload
	}{
		{"istio workload plus app and version", md(map[string]any{"workload": "hello-v1;default;hello;v1;Kubernetes", "app": "hello", "version": "v1"}),
			Workload{Name: "hello-v1", Namespace: "default", CanonicalService: "hello", CanonicalRevision: "v1", Cluster: "Kubernetes", App: "hello", Version: "v1", Principal: unknown}},
		{"istio's encoding alone: app and version unknown", md(map[string]any{"workload": "w;ns;;;c"}),
			Workload{Name: "w", Namespace: "ns", CanonicalService: unknown, CanonicalRevision: latest, Cluster: "c", App: unknown, Version: unknown, Principal: unknown}},
		{"malformed", md(map[string]any{"workload": "a;b"}), *unknownPeer},
		{"none", nil, *unknownPeer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := peerFromEndpoint(tc.md); *got != tc.want {
				t.Errorf("got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

// mtlsConn is a connection whose peer presented principal (none when "").
func mtlsConn(principal string) *network.Conn {
	c := &network.Conn{TLS: &tls.ConnectionState{}, LocalURIs: []string{"spiffe://cluster.local/ns/default/sa/hello"}}
	if principal != "" {
		u, _ := url.Parse(principal)
		c.TLS.PeerCertificates = []*x509.Certificate{{URIs: []*url.URL{u}}}
	}
	return c
}

func header(t *testing.T, w Workload) []byte {
	v, err := EncodeHeader(&w)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestIdentifyVerifiesHeaderAgainstCertificate(t *testing.T) {
	sleep := Workload{Name: "sleep", Namespace: "default", ServiceAccount: "sleep", App: "sleep", Version: "v1", CanonicalService: "sleep", CanonicalRevision: "v1", Cluster: "Kubernetes"}
	const principal = "spiffe://cluster.local/ns/default/sa/sleep"
	otherNS, otherSA, noSA := sleep, sleep, sleep
	otherNS.Namespace, otherSA.ServiceAccount, noSA.ServiceAccount = "prod", "admin", ""
	verified := Workload{Name: "sleep", Namespace: "default", App: "sleep", Version: "v1", CanonicalService: "sleep", CanonicalRevision: "v1",
		Cluster: "Kubernetes", Principal: principal, ServiceAccount: "sleep"}
	certOnly := *Workload{Principal: principal}.asPeer("default")
	for _, tc := range []struct {
		name      string
		conn      *network.Conn
		mx        []byte
		want      Workload
		wantLocal security
	}{
		{"header matching the certificate", mtlsConn(principal), header(t, sleep), verified, secMutualTLS},
		{"namespace differs from the certificate: ignored", mtlsConn(principal), header(t, otherNS), certOnly, secMutualTLS},
		{"service account differs: ignored", mtlsConn(principal), header(t, otherSA), certOnly, secMutualTLS},
		{"no service account claimed: ignored", mtlsConn(principal), header(t, noSA), certOnly, secMutualTLS},
		{"garbage header: ignored", mtlsConn(principal), []byte("!!not base64"), certOnly, secMutualTLS},
		{"no header: certificate only", mtlsConn(principal), nil, certOnly, secMutualTLS},
		{"plaintext: header never believed", &network.Conn{}, header(t, sleep), *unknownPeer, secNone},
		{"TLS without client certificate", mtlsConn(""), header(t, sleep), *unknownPeer, secNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newInboundPeers()
			for i := 0; i < 2; i++ { // the second time from the caches
				if got := p.identify(tc.conn, tc.mx); *got != tc.want {
					t.Fatalf("try %d: got %+v\nwant %+v", i, *got, tc.want)
				}
			}
			if _, sec := localSecurity(tc.conn); sec != tc.wantLocal {
				t.Errorf("connection_security_policy %s, want %s", securityNames[sec], securityNames[tc.wantLocal])
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		url     string
		fields  map[string]any
		dir     corev3.TrafficDirection
		want    Config
		wantErr bool
	}{
		{"inbound is destination", PluginConfigTypeURL, nil, corev3.TrafficDirection_INBOUND, Config{Reporter: Destination}, false},
		{"outbound is source", PluginConfigTypeURL, nil, corev3.TrafficDirection_OUTBOUND, Config{Reporter: Source}, false},
		{"host header fallback off", PluginConfigTypeURL, map[string]any{"disable_host_header_fallback": true}, corev3.TrafficDirection_OUTBOUND, Config{DisableHostHeaderFallback: true}, false},
		{"waypoint reporter", PluginConfigTypeURL, map[string]any{"reporter": "SERVER_GATEWAY"}, 0, Config{}, true},
		{"metric overrides", PluginConfigTypeURL, map[string]any{"metrics": []any{}}, 0, Config{}, true},
		{"another type", "type.googleapis.com/other.Config", nil, 0, Config{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := structpb.NewStruct(tc.fields)
			got, err := parseStruct(tc.url, st, tc.dir)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("got %+v, %v; want %+v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
