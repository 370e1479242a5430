package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/agent/agenttest"
	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/xdsclient/xdstest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestSidecarBootstrapGolden: `weft-proxy sidecar --print-bootstrap` for a
// sidecar set by flags and a gateway set by environment. The output is a
// valid bootstrap whose node weft-control understands.
func TestSidecarBootstrapGolden(t *testing.T) {
	for _, tc := range []struct {
		golden  string
		args    []string
		environ []string
	}{
		{"sidecar.golden.yaml", []string{"--name", "reviews-v1-5d8f", "--namespace", "bookinfo", "--ip", "10.0.0.5",
			"--labels", "app=reviews,version=v1", "--service-account", "bookinfo-reviews", "--http-proxy-port", "15001"}, nil},
		{"sidecar-mtls.golden.yaml", []string{"--name", "reviews-v1-5d8f", "--namespace", "bookinfo", "--ip", "10.0.0.5",
			"--labels", "app=reviews,version=v1", "--service-account", "bookinfo-reviews", "--ca-root", "/etc/weft/root-cert.pem",
			"--token-file", "/var/run/weft/token", "--sds-socket", "/var/run/weft/agent/sds.sock"}, nil},
		{"router.golden.yaml", nil, []string{
			"WEFT_PROXY_TYPE=router", "POD_NAME=ingress-1", "POD_NAMESPACE=istio-system", "INSTANCE_IP=10.0.9.1",
			`ISTIO_METAJSON_LABELS={"istio":"ingressgateway","app":"gw"}`, "SERVICE_ACCOUNT=ingress",
			"WEFT_DISCOVERY_ADDRESS=weft-control.istio-system.svc:15010", "WEFT_ADMIN_ADDRESS=0.0.0.0:15000",
			"ISTIO_META_CLUSTER_ID=Kubernetes", "ISTIO_META_HTTP_PROXY_ADDRESS=0.0.0.0", "UNRELATED=x",
		}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runSidecar(append(tc.args, "--print-bootstrap"), tc.environ, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(stdout.Bytes(), want) {
				t.Errorf("bootstrap differs from %s (go test -update rewrites it):\n%s", path, stdout.String())
			}
			b, err := bootstrap.ParseAndValidate(stdout.Bytes(), tc.golden)
			if err != nil {
				t.Fatalf("the printed bootstrap does not validate: %v", err)
			}
			meta := map[string]string{}
			for k, v := range b.GetNode().GetMetadata().GetFields() {
				meta[k] = v.GetStringValue()
			}
			labels := map[string]string{}
			for k, v := range b.GetNode().GetMetadata().GetFields()[model.MetaLabels].GetStructValue().GetFields() {
				labels[k] = v.GetStringValue()
			}
			p, err := model.ParseProxy(b.GetNode().GetId(), meta, labels)
			if err != nil {
				t.Fatalf("weft-control cannot read the node: %v", err)
			}
			wantLabels := 2
			if strings.Contains(tc.golden, "mtls") {
				wantLabels = 3 // + security.istio.io/tlsMode: istio
				if p.Labels["security.istio.io/tlsMode"] != "istio" {
					t.Errorf("a sidecar with a CA must carry security.istio.io/tlsMode=istio: %v", p.Labels)
				}
			}
			if p.WorkloadName == "" || p.Namespace == "" || len(p.Labels) != wantLabels || p.ServiceAccount == "" {
				t.Errorf("proxy identity: %+v", p)
			}
		})
	}
}

func TestParseSidecar(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		environ []string
		wantErr string
		check   func(t *testing.T, o *sidecarOptions)
	}{
		{name: "defaults", args: []string{"--name", "a"}, check: func(t *testing.T, o *sidecarOptions) {
			if o.discoveryAddress != "127.0.0.1:15010" || o.adminAddress != "127.0.0.1:15000" || o.proxyType != "sidecar" ||
				o.namespace != "default" || o.ip != "127.0.0.1" || nodeID(t, o) != "sidecar~127.0.0.1~a.default~default.svc.cluster.local" {
				t.Errorf("defaults: %+v", o)
			}
		}},
		{name: "env_then_flag", args: []string{"--namespace", "flag-ns"}, environ: []string{"POD_NAME=env-name", "POD_NAMESPACE=env-ns"},
			check: func(t *testing.T, o *sidecarOptions) {
				if o.name != "env-name" || o.namespace != "flag-ns" {
					t.Errorf("name %q (want from env) namespace %q (want the flag's)", o.name, o.namespace)
				}
			}},
		{name: "istio_meta_passthrough", args: []string{"--name", "a"}, environ: []string{"ISTIO_META_CLUSTER_ID=c1", "ISTIO_META_HTTP_PROXY_PORT=16000"},
			check: func(t *testing.T, o *sidecarOptions) {
				if o.meta["CLUSTER_ID"] != "c1" || o.httpProxyPort != "16000" || o.meta["HTTP_PROXY_PORT"] != "" {
					t.Errorf("meta %v http proxy port %q", o.meta, o.httpProxyPort)
				}
			}},
		{name: "json_labels", args: []string{"--name", "a"}, environ: []string{`ISTIO_METAJSON_LABELS={"b":"2","a":"1"}`},
			check: func(t *testing.T, o *sidecarOptions) {
				if o.labels != "a=1,b=2" {
					t.Errorf("labels %q", o.labels)
				}
			}},
		{name: "no_name", wantErr: "--name (or POD_NAME) is required"},
		{name: "bad_type", args: []string{"--name", "a", "--type", "gateway"}, wantErr: `--type "gateway"`},
		{name: "dotted_name", args: []string{"--name", "a.b"}, wantErr: "without '.'"},
		{name: "bad_ip", args: []string{"--name", "a", "--ip", "host"}, wantErr: `--ip "host"`},
		{name: "bad_labels", args: []string{"--name", "a", "--labels", "app"}, wantErr: "k=v pairs"},
		{name: "bad_json_labels", args: []string{"--name", "a"}, environ: []string{"ISTIO_METAJSON_LABELS=app=x"}, wantErr: "ISTIO_METAJSON_LABELS"},
		{name: "bad_discovery", args: []string{"--name", "a", "--discovery-address", "cp"}, wantErr: "--discovery-address"},
		{name: "bad_admin", args: []string{"--name", "a", "--admin-address", "localhost:15000"}, wantErr: "--admin-address"},
		{name: "bad_proxy_port", args: []string{"--name", "a", "--http-proxy-port", "0"}, wantErr: "--http-proxy-port"},
		{name: "stray_argument", args: []string{"--name", "a", "extra"}, wantErr: "unexpected arguments"},
		{name: "plaintext_without_ca", args: []string{"--name", "a"}, check: func(t *testing.T, o *sidecarOptions) {
			if o.security() || o.sdsSocket != "" || o.caAddress != "" || o.serviceAccount != "" {
				t.Errorf("no CA given, yet security %v socket %q ca %q sa %q", o.security(), o.sdsSocket, o.caAddress, o.serviceAccount)
			}
		}},
		{name: "ca_defaults", args: []string{"--name", "a", "--namespace", "ns", "--discovery-address", "cp.example:15010", "--ca-root", "/r.pem"},
			environ: []string{"WEFT_TOKEN=env-token", "XDG_RUNTIME_DIR=/run/user/1000"}, check: func(t *testing.T, o *sidecarOptions) {
				if o.caAddress != "cp.example:15012" || o.sdsSocket != "/run/user/1000/weft-proxy-a.ns/sds.sock" ||
					o.trustDomain != "cluster.local" || o.serviceAccount != "default" || token(t, o) != "env-token" {
					t.Errorf("ca %q socket %q trust domain %q sa %q", o.caAddress, o.sdsSocket, o.trustDomain, o.serviceAccount)
				}
				if strings.Contains(fmt.Sprintf("%+v", o), "env-token") {
					t.Error("printing the options shows the token")
				}
			}},
		{name: "token_flag_wins_over_env", args: []string{"--name", "a", "--ca-root", "/r.pem", "--token", "flag-token", "--ca-address", "10.0.0.1:9999",
			"--trust-domain", "example.org", "--sds-socket", "/s/sds.sock"}, environ: []string{"WEFT_TOKEN=env-token", "TMPDIR=/x"},
			check: func(t *testing.T, o *sidecarOptions) {
				if token(t, o) != "flag-token" || o.caAddress != "10.0.0.1:9999" || o.trustDomain != "example.org" || o.sdsSocket != "/s/sds.sock" {
					t.Errorf("token %q ca %q trust domain %q socket %q", token(t, o), o.caAddress, o.trustDomain, o.sdsSocket)
				}
			}},
		{name: "status_defaults", args: []string{"--name", "a", "--ip", "10.0.0.5"},
			environ: []string{`ISTIO_KUBE_APP_PROBERS={"/app-health/web/livez":{"tcpSocket":{"port":8080}}}`, "REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION=true"},
			check: func(t *testing.T, o *sidecarOptions) {
				if o.status.address != "10.0.0.5:15020" || !o.status.localhost || o.status.probers["/app-health/web/livez"].TCPSocket.Port != 8080 {
					t.Errorf("status %+v", o.status)
				}
			}},
		{name: "status_off", args: []string{"--name", "a", "--status-address="}, environ: []string{"ISTIO_KUBE_APP_PROBERS={broken"},
			check: func(t *testing.T, o *sidecarOptions) {
				if o.status.address != "" || o.status.probers != nil {
					t.Errorf("status %+v, want off (and the variable not read)", o.status)
				}
			}},
		{name: "bad_status_address", args: []string{"--name", "a", "--status-address", ":15020"}, wantErr: "--status-address"},
		{name: "bad_app_probers", args: []string{"--name", "a"}, environ: []string{`ISTIO_KUBE_APP_PROBERS={"/app-health/web/livez":{"httpGet":{"port":80}},}`},
			wantErr: "ISTIO_KUBE_APP_PROBERS: invalid JSON at byte 50 (line 1, column 50)"},
		{name: "ca_root_without_token", args: []string{"--name", "a", "--ca-root", "/r.pem"}, wantErr: "need both --ca-root"},
		{name: "token_without_ca_root", args: []string{"--name", "a", "--token-file", "/t"}, wantErr: "need both --ca-root"},
		{name: "token_and_token_file", args: []string{"--name", "a", "--token", "x", "--token-file", "/t"}, wantErr: "give one"},
		{name: "bad_ca_address", args: []string{"--name", "a", "--ca-root", "/r", "--token", "x", "--ca-address", "ca"}, wantErr: "--ca-address"},
		{name: "relative_socket", args: []string{"--name", "a", "--ca-root", "/r", "--token", "x", "--sds-socket", "sds.sock"}, wantErr: "absolute path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseSidecar(tc.args, tc.environ, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseSidecar = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o)
		})
	}
}

// TestSidecarServes: `weft-proxy sidecar` against a control plane serves
// the listener it receives and exits 0 on /quitquitquit.
func TestSidecarServes(t *testing.T) {
	cp := xdstest.Start(t)
	const id = "sidecar~127.0.0.1~app-1.default~default.svc.cluster.local"
	cp.Set(id, xdstest.Resources{
		resource.ListenerType: {Version: "1", Items: []types.Resource{directListener(t, freeAddr(t))}},
		resource.ClusterType:  {Version: "1", Items: []types.Resource{}},
	})
	admin, health, status := freeAddr(t), freeAddr(t), freeAddr(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer app.Close()
	_, appPort, _ := net.SplitHostPort(app.Listener.Addr().String())
	probers := `{"/app-health/app/livez":{"httpGet":{"path":"/healthz","port":` + appPort + `,"scheme":"HTTP"},"timeoutSeconds":1},` +
		`"/app-health/app/readyz":{"httpGet":{"path":"/other","port":` + appPort + `}}}`
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runSidecar([]string{"--name", "app-1", "--discovery-address", cp.Addr(), "--admin-address", admin, "--metrics-address=", "--health-address", health,
			"--status-address", status, "--dns-address=127.0.0.1:0", "--drain-time-s", "1", "-l", "off"},
			[]string{"ISTIO_KUBE_APP_PROBERS=" + probers}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sidecar not ready: %v\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling readiness with a deadline
	}
	resp, err := http.Get("http://" + admin + "/config_dump")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"dynamic_listeners"`) {
		t.Errorf("config_dump has no dynamic listener:\n%s", body)
	}
	// Istio's readiness endpoint on --health-address answers from the
	// admin's /ready; nothing else of the admin is served there.
	for path, want := range map[string]int{"/healthz/ready": 200, "/config_dump": 404} {
		resp, err := http.Get("http://" + health + path)
		if err != nil {
			t.Fatalf("GET %s on the health port: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s on the health port: %d, want %d", path, resp.StatusCode, want)
		}
	}
	// The agent's status server (Istio's 15020) answers the rewritten
	// app probes from ISTIO_KUBE_APP_PROBERS, and readiness as 15021.
	for path, want := range map[string]int{"/app-health/app/livez": 200, "/app-health/app/readyz": 503, "/app-health/web/livez": 404, "/healthz/ready": 200} {
		resp, err := http.Get("http://" + status + path)
		if err != nil {
			t.Fatalf("GET %s on the status port: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s on the status port: %d, want %d", path, resp.StatusCode, want)
		}
	}
	if _, err := http.Post("http://"+admin+"/quitquitquit", "text/plain", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sidecar did not exit after /quitquitquit")
	}
	if _, err := net.Dial("tcp", status); err == nil {
		t.Error("status server still listening after exit")
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// directListener answers every request with a direct response.
func directListener(t *testing.T, addr string) *listenerv3.Listener {
	host, port, _ := net.SplitHostPort(addr)
	var p uint32
	fmt.Sscan(port, &p)
	rc := &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200}},
	}}}}}
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix:     "in",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc},
		HttpFilters:    []*hcmv3.HttpFilter{{Name: "router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Listener{
		Name: "in",
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p},
		}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: h}}}}},
	}
}

func token(t *testing.T, o *sidecarOptions) string {
	t.Helper()
	if o.token == nil {
		return ""
	}
	tok, err := o.token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func nodeID(t *testing.T, o *sidecarOptions) string {
	t.Helper()
	ao, err := o.agent()
	if err != nil {
		t.Fatal(err)
	}
	return ao.NodeID()
}

// TestSidecarWithCA: `weft-proxy sidecar` with weft-control's CA
// (internal/ca, TLS, a bootstrap token in a file): the agent's SDS socket
// (0600) serves the workload's certificate for
// spiffe://cluster.local/ns/default/sa/default while the proxy runs, and
// is gone once the sidecar has exited (the agent stops after the proxy).
func TestSidecarWithCA(t *testing.T) {
	weft := agenttest.StartWeftCA(t, time.Hour)
	cp := xdstest.Start(t)
	const id = "sidecar~127.0.0.1~app-1.default~default.svc.cluster.local"
	cp.Set(id, xdstest.Resources{
		resource.ListenerType: {Version: "1", Items: []types.Resource{}},
		resource.ClusterType:  {Version: "1", Items: []types.Resource{}},
	})
	dir := t.TempDir()
	rootFile, tokenFile := filepath.Join(dir, "root-cert.pem"), filepath.Join(dir, "token")
	os.WriteFile(rootFile, weft.CA.RootPEM(), 0o644)
	os.WriteFile(tokenFile, []byte(weft.Token(t, "default", "default")+"\n"), 0o600)
	socket := filepath.Join(dir, "agent", "sds.sock")
	admin := freeAddr(t)
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runSidecar([]string{"--name", "app-1", "--discovery-address", cp.Addr(), "--admin-address", admin, "--metrics-address=", "--health-address=", "--status-address=", "--dns-address=127.0.0.1:0", "--drain-time-s", "1", "-l", "debug",
			"--ca-address", weft.Addr, "--ca-root", rootFile, "--token-file", tokenFile, "--sds-socket", socket}, nil, &stdout, &stderr)
	}()
	waitReady(t, admin, &stderr)
	if fi, err := os.Lstat(socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("SDS socket: %v %v", fi, err)
	}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := secretv3.NewSecretDiscoveryServiceClient(conn).StreamSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.SecretType, ResourceNames: []string{"default"}})
	resp, err := s.Recv()
	if err != nil {
		t.Fatalf("SDS: %v", err)
	}
	sec := &tlsv3.Secret{}
	if err := resp.GetResources()[0].UnmarshalTo(sec); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(sec.GetTlsCertificate().GetCertificateChain().GetInlineBytes(), sec.GetTlsCertificate().GetPrivateKey().GetInlineBytes())
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/default" {
		t.Errorf("workload certificate URIs %v", leaf.URIs)
	}
	if _, err := http.Post("http://"+admin+"/quitquitquit", "text/plain", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sidecar did not exit after /quitquitquit")
	}
	if _, err := os.Lstat(socket); !os.IsNotExist(err) {
		t.Errorf("the SDS socket outlived the sidecar: %v", err)
	}
	out := stderr.String()
	if !strings.Contains(out, "workload certificate issued") || !strings.Contains(out, "spiffe://cluster.local/ns/default/sa/default") {
		t.Errorf("the debug log does not report the certificate:\n%s", out)
	}
	tok, _ := os.ReadFile(tokenFile)
	if strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, "BEGIN") || strings.Contains(out, strings.TrimSpace(string(tok))) {
		t.Error("the sidecar's log shows a key, a certificate or the token")
	}
}

// waitReady polls /ready under a deadline.
func waitReady(t *testing.T, admin string, stderr *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sidecar not ready: %v\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling readiness with a deadline
	}
}
