package mesh

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// egressMesh has a TCP echo service and an HTTP service, and a Sidecar for
// the sleep workload with two egress listeners on loopback: TCP port
// {{.tcp}} for echo and HTTP port {{.http}} for web (whose own port is
// 8080: a single-port service is served on the egress port).
const egressMesh = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 7000, name: tcp, protocol: TCP}
  endpoints:
  - {address: 127.0.0.1, ports: {tcp: {{.echo}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  endpoints:
  - {address: 127.0.0.1, ports: {http: {{.web}}}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: sleep, namespace: default}
spec:
  workloadSelector:
    labels: {app: sleep}
  egress:
  - port: {number: {{.tcp}}, protocol: TCP, name: tcp}
    hosts: [./echo.default.svc.cluster.local]
  - port: {number: {{.http}}, protocol: HTTP, name: http}
    bind: 127.0.0.1
    hosts: [./web.default.svc.cluster.local]
`

// startEcho serves a line echo on loopback and returns its port.
func startEcho(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// TestSidecarEgressListeners: without traffic capture, a Sidecar's egress
// listeners with a port are how applications reach TCP services (and HTTP
// services on a port of their own): the sidecar binds them on loopback.
func TestSidecarEgressListeners(t *testing.T) {
	web := startApp(t, "web")
	tcpPort, httpPort := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	cp := startControlPlane(t, map[string]string{"egress.yaml": render(t, egressMesh, map[string]any{
		"echo": startEcho(t), "web": web.port, "tcp": tcpPort, "http": httpPort,
	})})
	sleep := startSidecar(t, cp, sidecarOptions{Name: "sleep", IP: "127.0.0.3", Labels: map[string]string{"app": "sleep"},
		ProxyPort: freePort(t, "127.0.0.1")})
	for _, name := range []string{"127.0.0.1_" + strconv.Itoa(tcpPort), "127.0.0.1_" + strconv.Itoa(httpPort)} {
		if sleep.srv.ListenerAddr(name) == nil {
			t.Fatalf("egress listener %s not bound: %v", name, sleep.srv.ListenerAddrs())
		}
	}

	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(tcpPort)), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	for _, line := range []string{"ping\n", "through the sidecar\n"} {
		if _, err := io.WriteString(conn, line); err != nil {
			t.Fatal(err)
		}
		if got, err := r.ReadString('\n'); err != nil || got != line {
			t.Fatalf("echo over the TCP egress listener: %q %v, want %q", got, err, line)
		}
	}

	c := &http.Client{Timeout: 10 * time.Second}
	for _, host := range []string{"web.default.svc.cluster.local", "web:" + strconv.Itoa(httpPort)} {
		req, _ := http.NewRequest("GET", "http://127.0.0.1:"+strconv.Itoa(httpPort)+"/", nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("HTTP egress listener, Host %s: %v", host, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "web" {
			t.Fatalf("HTTP egress listener, Host %s: %d %q, want 200 \"web\"", host, resp.StatusCode, b)
		}
	}
}
