package server

import (
	"crypto/tls"
	"io"
	"net/http"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftmesh/weft/internal/proxy/tlsctx/tlsctxtest"
	"github.com/weftmesh/weft/internal/proxy/xdsclient/xdstest"
)

// tlsListener is hcmListener with a TLS transport socket whose
// certificate is the SDS secret "default" over ADS.
func tlsListener(t *testing.T, name, route string) *listenerv3.Listener {
	l := hcmListener(t, name, name, route)
	dc := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default", SdsConfig: adsSource()}},
	}}
	l.FilterChains[0].TransportSocket = &corev3.TransportSocket{
		Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(t, dc)},
	}
	return l
}

func withSecrets(r xdstest.Resources, v string, secrets ...*tlsv3.Secret) xdstest.Resources {
	var items []types.Resource
	for _, s := range secrets {
		items = append(items, s)
	}
	r[resource.SecretType] = xdstest.Versioned{Version: v, Items: items}
	return r
}

// TestListenerWarmsForADSSecret: an LDS listener whose TLS context names an
// SDS secret over ADS warms until the secret arrives (Envoy's listener
// warming on SDS), then serves TLS with it; an invalid secret is NACKed.
func TestListenerWarmsForADSSecret(t *testing.T) {
	cp := xdstest.Start(t)
	a := startUpstream(t, "a")
	m := &mesh{cp: cp, a: a, b: a}
	ca := tlsctxtest.NewCA(t, "root")
	leaf := ca.Issue(t, tlsctxtest.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/default/sa/test-1"}})
	routes := []*routev3.RouteConfiguration{weighted("routes", "a=1")}
	lis := []*listenerv3.Listener{tlsListener(t, "front", "routes")}
	cp.Set(testNode, withSecrets(snapshot("1", m.clusters(), m.endpoints(), lis, routes), "1"))
	srv := newDynamicNoWait(t, cp)
	cp.WaitRequest(0, 10*time.Second, "the secret subscription", func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == resource.SecretType && len(r.GetResourceNames()) == 1 && r.GetResourceNames()[0] == "default"
	})
	if srv.ListenerAddr("front") != nil {
		t.Fatal("the listener is active before its secret arrived")
	}
	select {
	case <-srv.Initialized():
		t.Fatal("initialized while a listener waits for its secret")
	default:
	}
	secret := &tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: leaf.CertPEM}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: leaf.KeyPEM}},
	}}}
	cp.Set(testNode, withSecrets(snapshot("2", m.clusters(), m.endpoints(), lis, routes), "2", secret))
	select {
	case <-srv.Initialized():
	case <-time.After(10 * time.Second):
		t.Fatal("not initialized after the secret arrived")
	}
	addr := srv.ListenerAddr("front")
	if addr == nil {
		t.Fatal("the listener is not active after its secret arrived")
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), InsecureSkipVerify: true}}}
	resp, err := c.Get("https://" + addr.String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "a" || resp.TLS.PeerCertificates[0].SerialNumber.Cmp(leaf.Cert.SerialNumber) != 0 {
		t.Fatalf("over TLS: %d %q", resp.StatusCode, body)
	}
	bad := &tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "garbage"}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "garbage"}},
	}}}
	from := len(cp.Requests())
	cp.Set(testNode, withSecrets(snapshot("3", m.clusters(), m.endpoints(), lis, routes), "3", bad))
	cp.WaitRequest(from, 10*time.Second, "the NACK of the invalid secret", func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == resource.SecretType && r.GetErrorDetail() != nil
	})
	resp, err = c.Get("https://" + addr.String() + "/")
	if err != nil {
		t.Fatalf("after the NACK: %v", err)
	}
	resp.Body.Close()
	if resp.TLS.PeerCertificates[0].SerialNumber.Cmp(leaf.Cert.SerialNumber) != 0 {
		t.Fatal("the rejected secret replaced the good one")
	}
}

// TestSecretWarmingOutlastsFetchTimeouts: a cluster whose endpoints missed
// (or met) its eds_config initial_fetch_timeout, and a listener whose
// route configuration missed its own, still wait for their SDS secret:
// the server does not go LIVE (so a sidecar's readiness stays 503) while
// the certificate is missing, and does once it arrives. Secrets have no
// timeout here, as Istio's SDS config sources (initial_fetch_timeout 0).
func TestSecretWarmingOutlastsFetchTimeouts(t *testing.T) {
	cp := xdstest.Start(t)
	a := startUpstream(t, "a")
	m := &mesh{cp: cp, a: a, b: a}
	short := func(c *corev3.ConfigSource) *corev3.ConfigSource {
		c.InitialFetchTimeout = durationpb.New(100 * time.Millisecond)
		return c
	}
	withTLS := func(name string) *clusterv3.Cluster {
		c := edsCluster(name)
		c.EdsClusterConfig.EdsConfig = short(adsSource())
		uc := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default", SdsConfig: adsSource()}},
		}}
		c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(t, uc)}}
		return c
	}
	// "a" gets its endpoints, "b" never does; the listener's routes never come.
	clusters := []*clusterv3.Cluster{withTLS("a"), withTLS("b")}
	endpoints := []*endpointv3.ClusterLoadAssignment{assignment("a", m.a)}
	lis := tlsListener(t, "front", "missing")
	setRDSSource(t, lis, short(adsSource()))
	cp.Set(testNode, withSecrets(snapshot("1", clusters, endpoints, []*listenerv3.Listener{lis}, nil), "1"))
	srv := newDynamicNoWait(t, cp)
	// Negative check over a bounded window (10× the fetch timeouts).
	select {
	case <-srv.Initialized():
		t.Fatal("LIVE while clusters and a listener wait for their secret")
	case <-time.After(time.Second):
	}
	if srv.ListenerAddr("front") != nil {
		t.Fatal("the listener serves without its certificate")
	}
	ca := tlsctxtest.NewCA(t, "root")
	leaf := ca.Issue(t, tlsctxtest.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/default/sa/test-1"}})
	secret := &tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: leaf.CertPEM}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: leaf.KeyPEM}},
	}}}
	cp.Set(testNode, withSecrets(snapshot("2", clusters, endpoints, []*listenerv3.Listener{lis}, nil), "2", secret))
	select {
	case <-srv.Initialized():
	case <-time.After(10 * time.Second):
		t.Fatal("not LIVE after the secret arrived")
	}
	if srv.ListenerAddr("front") == nil {
		t.Fatal("the listener is not active once its secret arrived (its routes timed out)")
	}
}

// setRDSSource sets the RDS config source of l's first connection manager.
func setRDSSource(t *testing.T, l *listenerv3.Listener, cs *corev3.ConfigSource) {
	f := l.FilterChains[0].Filters[0]
	h := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
		t.Fatal(err)
	}
	h.GetRds().ConfigSource = cs
	f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, h)}
}
