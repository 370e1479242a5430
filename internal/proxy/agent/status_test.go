package agent

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestParseAppProbers: Istio's format decodes (including an
// Istio-injected pod's null gRPC service); errors name the variable and
// where the fault is.
func TestParseAppProbers(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // an error containing this; "" for none
		check    func(t *testing.T, p AppProbers)
	}{
		{name: "empty", in: "", check: func(t *testing.T, p AppProbers) {
			if p != nil {
				t.Errorf("got %v, want none", p)
			}
		}},
		{name: "istio format", in: `{"/app-health/web/livez":{"httpGet":{"path":"/healthz","port":8080,"host":"10.0.0.1","scheme":"HTTPS","httpHeaders":[{"name":"X-A","value":"b"}]},"timeoutSeconds":3},` +
			`"/app-health/web/readyz":{"tcpSocket":{"port":8081}},"/app-health/g/startupz":{"grpc":{"port":9090,"service":null}},` +
			`"/app-lifecycle/web/prestopz":{"httpGet":{"path":"/stop","port":8080}}}`,
			check: func(t *testing.T, p AppProbers) {
				g := p["/app-health/web/livez"]
				if len(p) != 4 || g.HTTPGet == nil || g.HTTPGet.Port != 8080 || g.HTTPGet.Host != "10.0.0.1" || g.HTTPGet.Scheme != "HTTPS" ||
					len(g.HTTPGet.HTTPHeaders) != 1 || g.HTTPGet.HTTPHeaders[0].Value != "b" || g.TimeoutSeconds != 3 {
					t.Errorf("httpGet: %+v", g.HTTPGet)
				}
				if s := p["/app-health/web/readyz"].TCPSocket; s == nil || s.Port != 8081 {
					t.Errorf("tcpSocket: %+v", s)
				}
				if c := p["/app-health/g/startupz"].GRPC; c == nil || c.Port != 9090 || c.Service != nil {
					t.Errorf("grpc: %+v", c)
				}
			}},
		{name: "syntax", in: "{\"/app-health/web/livez\":{\"httpGet\":{\"port\":8080}},}", want: "ISTIO_KUBE_APP_PROBERS: invalid JSON at byte 52 (line 1, column 52)"},
		{name: "syntax line 2", in: "{\n  \"/app-health/web/livez\": [}", want: "(line 2, column 29)"},
		{name: "not an object", in: `[1]`, want: "ISTIO_KUBE_APP_PROBERS: invalid JSON at byte"},
		{name: "named port", in: `{"/app-health/web/livez":{"httpGet":{"port":"http"}}}`, want: `ISTIO_KUBE_APP_PROBERS["/app-health/web/livez"]: port "http": a named port`},
		{name: "wrong type", in: `{"/app-health/web/livez":{"timeoutSeconds":"3","tcpSocket":{"port":1}}}`, want: "field timeoutSeconds"},
		{name: "bad path", in: `{"/health/web/livez":{"tcpSocket":{"port":8080}}}`, want: `["/health/web/livez"]: path must match`},
		{name: "two actions", in: `{"/app-health/web/livez":{"tcpSocket":{"port":8080},"grpc":{"port":9090}}}`, want: "exactly one of"},
		{name: "no action", in: `{"/app-health/web/livez":{}}`, want: "exactly one of"},
		{name: "port range", in: `{"/app-health/web/livez":{"grpc":{"port":70000}}}`, want: "grpc.port 70000"},
		{name: "scheme", in: `{"/app-health/web/livez":{"httpGet":{"port":80,"scheme":"FTP"}}}`, want: `httpGet.scheme "FTP"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseAppProbers(tt.in)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want one containing %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, p)
		})
	}
}

// app is a test HTTP app on loopback recording the last request.
type app struct {
	mu   sync.Mutex
	last *http.Request
}

func (a *app) handler(t *testing.T) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.last = r
		a.mu.Unlock()
		io.WriteString(w, "fine")
	})
	mux.HandleFunc("/sick", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "db down", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // answers only once the prober gave up
	})
	mux.HandleFunc("/hop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://elsewhere.invalid/", http.StatusFound)
	})
	return mux
}

func (a *app) lastRequest() *http.Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

func port(t *testing.T, addr string) ProbePort {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return ProbePort(n)
}

func grpcApp(t *testing.T) (*health.Server, int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return hs, int32(port(t, ln.Addr().String()))
}

func closedPort(t *testing.T) ProbePort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := port(t, ln.Addr().String())
	ln.Close()
	return p
}

func get(t *testing.T, url string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStatusAppProbes: every kind of app probe against real apps on
// loopback, through the status server as the kubelet would call it.
func TestStatusAppProbes(t *testing.T) {
	a := &app{}
	plain := httptest.NewServer(a.handler(t))
	defer plain.Close()
	tlsApp := httptest.NewTLSServer(a.handler(t)) // self-signed
	defer tlsApp.Close()
	_, grpcPort := grpcApp(t)
	hp, sp := port(t, plain.Listener.Addr().String()), port(t, tlsApp.Listener.Addr().String())
	down := "down"
	probers := AppProbers{
		"/app-health/web/livez":    {HTTPGet: &HTTPGetProbe{Path: "/ok", Port: hp}},
		"/app-health/web/readyz":   {HTTPGet: &HTTPGetProbe{Path: "sick", Port: hp, Scheme: "HTTP"}},
		"/app-health/web/startupz": {HTTPGet: &HTTPGetProbe{Path: "/slow", Port: hp}}, // timeoutSeconds 0: 1 s
		"/app-health/hop/livez":    {HTTPGet: &HTTPGetProbe{Path: "/hop", Port: hp}},
		"/app-health/away/livez":   {HTTPGet: &HTTPGetProbe{Path: "/away", Port: hp}},
		"/app-health/tls/livez":    {HTTPGet: &HTTPGetProbe{Path: "/ok", Port: sp, Scheme: "HTTPS"}},
		"/app-health/tcp/livez":    {TCPSocket: &TCPSocketProbe{Port: hp}},
		"/app-health/tcp/readyz":   {TCPSocket: &TCPSocketProbe{Port: closedPort(t)}},
		"/app-health/grpc/livez":   {GRPC: &GRPCProbe{Port: grpcPort}},
		"/app-health/grpc/readyz":  {GRPC: &GRPCProbe{Port: grpcPort, Service: &down}},
	}
	st, err := StartStatus(StatusOptions{Address: "127.0.0.1:0", PodIP: netip.MustParseAddr("127.0.0.1"), Probers: probers})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	base := "http://" + st.Addr().String()
	tests := []struct {
		path     string
		code     int
		body     string // a substring of the answer
		passesKL bool   // the kubelet's verdict: 200 <= code < 400
	}{
		{"/app-health/web/livez", 200, "fine", true},
		{"/app-health/web/readyz", 503, "db down", false},
		{"/app-health/web/startupz", 500, "deadline exceeded", false},
		{"/app-health/hop/livez", 200, "fine", true},
		{"/app-health/away/livez", 200, "", true},
		{"/app-health/tls/livez", 200, "fine", true},
		{"/app-health/tcp/livez", 200, "", true},
		{"/app-health/tcp/readyz", 500, "connection refused", false},
		{"/app-health/grpc/livez", 200, "", true},
		{"/app-health/grpc/readyz", 500, "NOT_SERVING", false},
		{"/app-health/nobody/livez", 404, "no app probe", false},
		{"/app-health/web/livez/extra", 404, "", false},
		{"/stats/prometheus", 404, "", false},
		{"/healthz/ready", 404, "", false}, // no admin configured
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, body := get(t, base+tt.path, nil)
			if code != tt.code || !strings.Contains(body, tt.body) {
				t.Errorf("GET %s = %d %q, want %d with %q", tt.path, code, body, tt.code, tt.body)
			}
			if pass := code >= 200 && code < 400; pass != tt.passesKL {
				t.Errorf("kubelet verdict %v, want %v", pass, tt.passesKL)
			}
		})
	}
	// The probe connections come from Istio's passthrough source, which
	// capture never redirects.
	code, _ := get(t, base+"/app-health/web/livez", nil)
	if r := a.lastRequest(); code != 200 || r == nil || !strings.HasPrefix(r.RemoteAddr, "127.0.0.6:") {
		t.Errorf("probe from %v, want 127.0.0.6", r.RemoteAddr)
	}
}

// TestStatusHTTPHeaders: the kubelet's headers reach the app, the probe's
// httpHeaders win over them, Host is the kubelet's with the app's port
// (or the probe's Host header).
func TestStatusHTTPHeaders(t *testing.T) {
	a := &app{}
	plain := httptest.NewServer(a.handler(t))
	defer plain.Close()
	hp := port(t, plain.Listener.Addr().String())
	probers := AppProbers{
		"/app-health/web/livez": {HTTPGet: &HTTPGetProbe{Path: "/ok?deep=1", Port: hp}},
		"/app-health/web/readyz": {HTTPGet: &HTTPGetProbe{Path: "/ok", Port: hp, HTTPHeaders: []ProbeHeader{
			{Name: "X-Probe", Value: "one"}, {Name: "X-Probe", Value: "two"}, {Name: "Host", Value: "web.example"},
		}}},
	}
	st, err := StartStatus(StatusOptions{Address: "127.0.0.1:0", PodIP: netip.MustParseAddr("127.0.0.1"), Probers: probers})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	_, statusPort, _ := net.SplitHostPort(st.Addr().String())
	kubelet := map[string]string{"User-Agent": "kube-probe/1.37", "X-Probe": "from-kubelet", "X-Other": "kept"}

	if code, _ := get(t, "http://"+st.Addr().String()+"/app-health/web/livez", kubelet); code != 200 {
		t.Fatalf("livez: %d", code)
	}
	r := a.lastRequest()
	if r.UserAgent() != "kube-probe/1.37" || r.Header.Get("X-Other") != "kept" || r.URL.RawQuery != "deep=1" {
		t.Errorf("app got UA %q, X-Other %q, query %q", r.UserAgent(), r.Header.Get("X-Other"), r.URL.RawQuery)
	}
	if want := net.JoinHostPort("127.0.0.1", fmt.Sprint(hp)); r.Host != want {
		t.Errorf("Host %q, want %q (status port %s replaced by the app's)", r.Host, want, statusPort)
	}

	if code, _ := get(t, "http://"+st.Addr().String()+"/app-health/web/readyz", kubelet); code != 200 {
		t.Fatalf("readyz: %d", code)
	}
	r = a.lastRequest()
	if got := r.Header.Values("X-Probe"); len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Errorf("X-Probe = %q, want the probe's [one two]", got)
	}
	if r.Host != "web.example" || r.Header.Get("X-Other") != "kept" {
		t.Errorf("Host %q, X-Other %q", r.Host, r.Header.Get("X-Other"))
	}
}

// TestStatusReady: /healthz/ready follows the admin's /ready.
func TestStatusReady(t *testing.T) {
	var mu sync.Mutex
	ready := false
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/ready" || !ready {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "LIVE")
	}))
	defer admin.Close()
	st, err := StartStatus(StatusOptions{Address: "127.0.0.1:0", PodIP: netip.MustParseAddr("127.0.0.1"), AdminAddress: admin.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	url := "http://" + st.Addr().String() + "/healthz/ready"
	if code, _ := get(t, url, nil); code != 503 {
		t.Errorf("not ready: %d, want 503", code)
	}
	mu.Lock()
	ready = true
	mu.Unlock()
	if code, _ := get(t, url, nil); code != 200 {
		t.Errorf("ready: %d, want 200", code)
	}
	admin.Close()
	if code, _ := get(t, url, nil); code != 503 {
		t.Errorf("admin gone: %d, want 503", code)
	}
}

// TestStatusLocalhostDestination: legacy mode probes localhost; the pod
// IP is not needed then, and is otherwise.
func TestStatusLocalhostDestination(t *testing.T) {
	if _, err := StartStatus(StatusOptions{Address: "127.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "PodIP") {
		t.Errorf("no pod IP: err %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	st, err := StartStatus(StatusOptions{Address: "127.0.0.1:0", LocalhostDestination: true,
		Probers: AppProbers{"/app-health/a/livez": {TCPSocket: &TCPSocketProbe{Port: port(t, ln.Addr().String())}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	if code, body := get(t, "http://"+st.Addr().String()+"/app-health/a/livez", nil); code != 200 {
		t.Errorf("localhost tcp probe: %d %s", code, body)
	}
	if _, err := StartStatus(StatusOptions{Address: st.Addr().String(), LocalhostDestination: true}); err == nil {
		t.Error("second server on the same address: no error")
	}
}
