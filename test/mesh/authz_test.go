package mesh

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// secureMesh is the service secure.default.svc.cluster.local: an HTTP port
// and a TCP port, served by the workload at 127.0.0.7 behind its sidecar
// (inbound listeners 127.0.0.7:PORT → apps on 127.0.0.1:PORT).
const secureMesh = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure, namespace: default}
spec:
  hosts: [secure.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: {{.http}}, name: http, protocol: HTTP}
  - {number: {{.tcp}}, name: tcp-echo, protocol: TCP}
  workloadSelector:
    labels: {app: secure}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: secure-1, namespace: default}
spec:
  address: 127.0.0.7
  labels: {app: secure}
`

// secureAllow allows GET /public/*, GET and POST /api/* with an x-token
// header "secret-*", and any connection to the TCP port (ports are the
// only attribute of these rules a TCP filter chain can check: the HTTP
// rules are dropped there, as Istio does).
const secureAllow = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: secure-allow, namespace: default}
spec:
  selector:
    matchLabels: {app: secure}
  action: ALLOW
  rules:
  - to: [{operation: {methods: ["GET"], paths: ["/public/*"]}}]
  - to: [{operation: {methods: ["GET", "POST"], paths: ["/api/*"]}}]
    when:
    - key: request.headers[x-token]
      values: ["secret-*"]
  - to: [{operation: {ports: ["{{.tcp}}"]}}]
`

// secureDeny denies requests whose x-user starts with "banned". With
// {{.port}} empty the rule has only an HTTP condition: on the TCP port
// Istio drops that condition from a DENY rule, which then denies every
// connection. With a port, it applies to that port only.
const secureDeny = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: secure-deny, namespace: default}
spec:
  selector:
    matchLabels: {app: secure}
  action: DENY
  rules:
  - {{if .port}}to: [{operation: {ports: ["{{.port}}"]}}]
    {{end}}when:
    - key: request.headers[x-user]
      values: ["banned*"]
`

// TestAuthorizationPolicy: weft-control translates AuthorizationPolicy
// into RBAC filters on the workload's inbound listeners and its sidecar
// enforces them: path, method and header ALLOW rules, a DENY rule that
// wins over them, 403 "RBAC: access denied" for denied requests, closed
// connections on the TCP port, and policy updates pushed live. Traffic is
// plaintext: policies on principals and namespaces need the peer's
// certificate and are tested once mTLS between sidecars lands (the rbac
// package tests them with certificates).
func TestAuthorizationPolicy(t *testing.T) {
	web := startApp(t, "secure")
	echo := startEcho(t)
	vars := map[string]any{"http": web.port, "tcp": echo, "port": ""}
	cp := startControlPlane(t, map[string]string{
		"mesh.yaml":  render(t, secureMesh, vars),
		"allow.yaml": render(t, secureAllow, vars),
		"deny.yaml":  render(t, secureDeny, vars),
	})
	server := startSidecar(t, cp, sidecarOptions{Name: "secure-1", IP: "127.0.0.7", Labels: map[string]string{"app": "secure"},
		ProxyPort: freePort(t, "127.0.0.1")})
	httpAddr := net.JoinHostPort("127.0.0.7", strconv.Itoa(web.port))
	tcpAddr := net.JoinHostPort("127.0.0.7", strconv.Itoa(echo))
	for _, a := range []string{httpAddr, tcpAddr} {
		if server.srv.ListenerAddr(strings.Replace(a, ":", "_", 1)) == nil {
			t.Fatalf("no inbound listener %s: %v", a, server.srv.ListenerAddrs())
		}
	}

	c := &http.Client{Timeout: 10 * time.Second}
	base := "http://" + httpAddr
	for _, tc := range []struct {
		name, method, path string
		hdr                []string
		want               int
	}{
		{"GET public", "GET", "/public/index.html", nil, 200},
		{"POST public: method not allowed", "POST", "/public/index.html", nil, 403},
		{"GET api without token", "GET", "/api/v1", nil, 403},
		{"GET api with a wrong token", "GET", "/api/v1", []string{"x-token", "guess"}, 403},
		{"GET api with token", "GET", "/api/v1?q=1", []string{"x-token", "secret-42"}, 200},
		{"POST api with token", "POST", "/api/v1", []string{"x-token", "secret-42"}, 200},
		{"DENY wins over ALLOW", "GET", "/public/index.html", []string{"x-user", "banned-bob"}, 403},
		{"not allowed by any rule", "GET", "/private", nil, 403},
	} {
		code, body, err := do(c, tc.method, base+tc.path, tc.hdr...)
		if err != nil || code != tc.want {
			t.Errorf("%s: %d %q %v, want %d", tc.name, code, body, err, tc.want)
			continue
		}
		if code == 403 && body != "RBAC: access denied" {
			t.Errorf("%s: body %q, want %q", tc.name, body, "RBAC: access denied")
		}
		if code == 200 && body != "secure" {
			t.Errorf("%s: body %q, want the app's", tc.name, body)
		}
	}
	st := server.srv.Stats()
	prefix := "http.inbound_127.0.0.7_" + strconv.Itoa(web.port) + ".rbac."
	// Both filters count in the same stats (Envoy's names): the DENY
	// filter allows 7 of the 8 requests and denies 1; the ALLOW filter sees
	// those 7, allows 3 and denies 4.
	if a, d := st.CounterValue(prefix+"allowed"), st.CounterValue(prefix+"denied"); a != 7+3 || d != 1+4 {
		t.Errorf("%sallowed = %d, denied = %d; want 10, 5", prefix, a, d)
	}

	// The DENY rule's only condition is HTTP: on the TCP port it denies
	// every connection.
	if got := echoOnce(t, tcpAddr); got != "" {
		t.Errorf("TCP port with a DENY rule of HTTP conditions: echo %q, want a closed connection", got)
	}
	if v := st.CounterValue("tcp.rbac.denied"); v != 1 {
		t.Errorf("tcp.rbac.denied = %d, want 1", v)
	}

	// Scope the DENY rule to the HTTP port: the TCP port is then allowed by
	// the ALLOW rule on its port, and HTTP keeps the DENY.
	vars["port"] = web.port
	cp.write("deny.yaml", render(t, secureDeny, vars))
	waitFor(t, "TCP allowed after the DENY policy update", 10*time.Second, func() bool { return echoOnce(t, tcpAddr) == "ping" })
	if code, _, err := do(c, "GET", base+"/public/x", "x-user", "banned-eve"); err != nil || code != 403 {
		t.Errorf("after the update, banned user: %d %v, want 403", code, err)
	}

	// Removing the ALLOW policy leaves only DENY: everything else passes.
	cp.remove("allow.yaml")
	waitFor(t, "requests allowed once the ALLOW policy is removed", 10*time.Second, func() bool {
		code, _, err := do(c, "GET", base+"/private")
		return err == nil && code == 200
	})
}

// do sends a request with headers and returns status and body.
func do(c *http.Client, method, url string, hdr ...string) (int, string, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, "", err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// echoOnce connects to addr, sends "ping" and returns what comes back ("" when
// the connection is closed or reset first).
func echoOnce(t *testing.T, addr string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "ping"); err != nil {
		return ""
	}
	buf := make([]byte, 4)
	n, err := io.ReadFull(conn, buf)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("echo via %s: %v", addr, fmt.Errorf("read: %w", err))
	}
	return string(buf[:n])
}
