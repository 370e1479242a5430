package e2e

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// tcpChain renders one filter chain with a tcp_proxy whose fields are the
// flow mapping entries proxy (e.g. "cluster: a"); match is the
// filter_chain_match flow mapping or "".
func tcpChain(match, proxy string) string {
	var b strings.Builder
	b.WriteString("    - ")
	if match != "" {
		fmt.Fprintf(&b, "filter_chain_match: %s\n      ", match)
	}
	fmt.Fprintf(&b, `filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: tcp, %s}
`, proxy)
	return b.String()
}

// tcpBootstrap is a bootstrap with one listener "tcp" at address (port
// value port) with the given chains; inspector adds tls_inspector.
func tcpBootstrap(address, port string, inspector bool, chains []string, clusters ...string) string {
	filters := ""
	if inspector {
		filters = `    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}
`
	}
	return fmt.Sprintf(`
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  listeners:
  - name: tcp
    address: {socket_address: {address: %q, port_value: %s}}
%s    filter_chains:
%s  clusters:
%s`, address, port, filters, strings.Join(chains, ""), strings.Join(clusters, ""))
}

func staticCluster(name string, addrs ...string) string {
	var es []ep
	for _, a := range addrs {
		es = append(es, ep{addr: a})
	}
	return clusterYAML(name, "", loc{eps: es})
}

// tagUpstream is a raw TCP upstream that writes tag, then relays what it
// reads back (an echo), then closes.
func tagUpstream(t *testing.T, tag string) string {
	addr, _ := rawUpstream(t, func(c net.Conn) {
		io.WriteString(c, tag+"\n")
		io.Copy(c, c)
	})
	return addr
}

// readTag reads the first line a tag upstream wrote.
func readTag(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the upstream's tag: %v (got %q)", err, line)
	}
	return strings.TrimSuffix(line, "\n")
}

func TestTCPProxyRelay(t *testing.T) {
	// The upstream reads until the client's half-close, then answers and
	// closes: the half-close must cross the proxy in both directions.
	addr, _ := rawUpstream(t, func(c net.Conn) {
		b, err := io.ReadAll(c)
		if err == nil {
			io.WriteString(c, "got:"+string(b))
		}
	})
	p := StartProxy(t, tcpBootstrap("127.0.0.1", "0", false, []string{tcpChain("", "cluster: up")}, staticCluster("up", addr)))
	c, err := net.Dial("tcp", p.Addr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "hello")
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got:hello" {
		t.Fatalf("got %q, %v; want \"got:hello\" then EOF", got, err)
	}
	p.WaitStat("tcp.tcp.downstream_cx_total", 1)
	p.WaitStat("tcp.tcp.downstream_cx_rx_bytes_total", 5)
	p.WaitStat("tcp.tcp.downstream_cx_tx_bytes_total", 9)
	p.WaitStat("cluster.up.upstream_cx_total", 1)
	p.WaitStat("cluster.up.upstream_cx_active", 0)
}

func TestTCPProxyFullDuplex(t *testing.T) {
	addr, _ := rawUpstream(t, func(c net.Conn) {
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
	p := StartProxy(t, tcpBootstrap("127.0.0.1", "0", false, []string{tcpChain("", "cluster: up")}, staticCluster("up", addr)))
	c, err := net.Dial("tcp", p.Addr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// 4 MiB written while the echo is read concurrently: larger than every
	// socket buffer on the way, so it only completes if both directions
	// flow at once.
	data := bytes.Repeat([]byte("0123456789abcdef"), 256<<10)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		c.(*net.TCPConn).CloseWrite()
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if werr := <-errc; werr != nil || err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo of %d bytes: got %d bytes, write err %v, read err %v", len(data), len(got), werr, err)
	}
}

func TestTCPProxyWeightedClusters(t *testing.T) {
	a, b := tagUpstream(t, "a"), tagUpstream(t, "b")
	p := StartProxy(t, tcpBootstrap("127.0.0.1", "0", false,
		[]string{tcpChain("", "weighted_clusters: {clusters: [{name: a, weight: 1}, {name: b, weight: 3}]}")},
		staticCluster("a", a), staticCluster("b", b)))
	const n = 200
	got := map[string]int{}
	for range n {
		c, err := net.Dial("tcp", p.Addr("tcp"))
		if err != nil {
			t.Fatal(err)
		}
		got[readTag(t, c)]++
		c.Close()
	}
	// binomial(200, 1/4): mean 50, sd 6.1; tolerance 30 (4.9 sd).
	if !within(got["a"], 50, 30) || got["a"]+got["b"] != n {
		t.Errorf("a got %d of %d connections, want 50 ± 30 (b got %d)", got["a"], n, got["b"])
	}
}

func TestTCPProxyIdleTimeout(t *testing.T) {
	addr := tagUpstream(t, "echo")
	p := StartProxy(t, tcpBootstrap("127.0.0.1", "0", false, []string{tcpChain("", "cluster: up, idle_timeout: 0.5s")}, staticCluster("up", addr)))
	c, err := net.Dial("tcp", p.Addr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if tag, err := br.ReadString('\n'); err != nil || tag != "echo\n" {
		t.Fatalf("tag %q %v", tag, err)
	}
	// Traffic every 50 ms for 1.5 s (three idle timeouts) keeps it open.
	// The timeout is 0.5 s so that a loaded machine stretching a 50 ms
	// pause tenfold does not look like idleness.
	for i := range 30 {
		msg := fmt.Sprintf("ping%d\n", i)
		io.WriteString(c, msg)
		if got, err := br.ReadString('\n'); err != nil || got != msg {
			t.Fatalf("ping %d while active: got %q, %v", i, got, err)
		}
		time.Sleep(50 * time.Millisecond) // pacing the traffic, not synchronisation
	}
	// Then silence: the proxy closes the relay after the idle timeout.
	start := time.Now()
	if n, err := br.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from an idle relay, want it closed", n)
	}
	if took := time.Since(start); took < 400*time.Millisecond || took > 5*time.Second {
		t.Errorf("the idle relay closed after %v, want about 500ms", took)
	}
	p.WaitStat("tcp.tcp.idle_timeout", 1)
}

func TestTCPProxyConnectFailure(t *testing.T) {
	p := StartProxy(t, tcpBootstrap("127.0.0.1", "0", false, []string{tcpChain("", "cluster: up")}, staticCluster("up", freePort(t))))
	c, err := net.Dial("tcp", p.Addr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read %d, %v; want EOF: the downstream is closed when no upstream connects", n, err)
	}
	p.WaitStat("tcp.tcp.upstream_connect_fail", 1)
	p.WaitStat("cluster.up.upstream_cx_connect_fail", 1)
}

// tlsServer is a TLS upstream that presents a self-signed certificate for
// names, writes tag after the handshake, then echoes.
type tlsServer struct {
	addr  string
	leaf  *x509.Certificate
	roots *x509.CertPool
}

func startTLS(t *testing.T, tag string, names ...string) *tlsServer {
	t.Helper()
	cert, roots := selfSigned(t, names...)
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	addr, _ := rawUpstream(t, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if tc.Handshake() != nil {
			return
		}
		io.WriteString(tc, tag+"\n")
		io.Copy(tc, tc)
	})
	return &tlsServer{addr: addr, leaf: cert.Leaf, roots: roots}
}

// selfSigned makes a self-signed ECDSA certificate for names.
func selfSigned(t *testing.T, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: names[0]},
		DNSNames:              names,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// dialTLS connects through the proxy with SNI name, trusting only roots:
// the handshake succeeds only if the proxy relayed to the server that owns
// the certificate for name. It returns the tag that server wrote.
func dialTLS(t *testing.T, addr, name string, roots *x509.CertPool, alpn ...string) (string, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots, NextProtos: alpn})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return readTag(t, c), nil
}

func TestTCPProxyTLSPassthroughBySNI(t *testing.T) {
	a := startTLS(t, "a", "a.test")
	b := startTLS(t, "b", "b.test")
	w := startTLS(t, "wild", "x.wild.test")
	p := StartProxy(t, tcpBootstrap("127.0.0.1", "0", true, []string{
		tcpChain("{server_names: [a.test]}", "cluster: a"),
		tcpChain("{server_names: [b.test]}", "cluster: b"),
		tcpChain(`{server_names: ["*.wild.test"]}`, "cluster: w"),
	}, staticCluster("a", a.addr), staticCluster("b", b.addr), staticCluster("w", w.addr)))
	for _, tc := range []struct {
		sni, tag string
		roots    *x509.CertPool
	}{{"a.test", "a", a.roots}, {"b.test", "b", b.roots}, {"x.wild.test", "wild", w.roots}} {
		got, err := dialTLS(t, p.Addr("tcp"), tc.sni, tc.roots)
		if err != nil || got != tc.tag {
			t.Errorf("SNI %s: reached %q, %v; want the %s server (verified certificate)", tc.sni, got, err, tc.tag)
		}
	}
	// No chain matches and there is no default chain: the connection is
	// closed before any upstream is involved.
	if _, err := dialTLS(t, p.Addr("tcp"), "other.test", a.roots); err == nil {
		t.Errorf("SNI other.test: handshake succeeded, want the connection closed (no filter chain)")
	}
	ln := strings.ReplaceAll(p.Addr("tcp"), ":", "_")
	p.WaitStat("listener."+ln+".no_filter_chain_match", 1)
}

func TestTCPProxyTransportAndApplicationProtocols(t *testing.T) {
	h2 := startTLS(t, "tls-h2", "svc.test")
	h1 := startTLS(t, "tls-h1", "svc.test")
	raw := tagUpstream(t, "raw")
	// Both TLS upstreams serve the same name: trust both; the tag tells
	// which one was reached.
	roots := mergedRoots(h2, h1)
	p := StartProxy(t, tcpBootstrap("127.0.0.1", "0", true, []string{
		tcpChain("{transport_protocol: tls, application_protocols: [h2]}", "cluster: h2"),
		tcpChain("{transport_protocol: tls, application_protocols: [http/1.1]}", "cluster: h1"),
		tcpChain("{transport_protocol: raw_buffer}", "cluster: raw"),
	}, staticCluster("h2", h2.addr), staticCluster("h1", h1.addr), staticCluster("raw", raw)))
	if got, err := dialTLS(t, p.Addr("tcp"), "svc.test", roots, "h2", "http/1.1"); err != nil || got != "tls-h2" {
		t.Errorf("ALPN [h2 http/1.1]: reached %q, %v; want tls-h2 (the client's first protocol a chain names)", got, err)
	}
	if got, err := dialTLS(t, p.Addr("tcp"), "svc.test", roots, "http/1.1"); err != nil || got != "tls-h1" {
		t.Errorf("ALPN [http/1.1]: reached %q, %v; want tls-h1", got, err)
	}
	c, err := net.Dial("tcp", p.Addr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A plain-text client speaks first; tls_inspector sees no ClientHello
	// and the raw_buffer chain takes it.
	io.WriteString(c, "GET / HTTP/1.1\r\n\r\n")
	if got := readTag(t, c); got != "raw" {
		t.Errorf("plain text reached %q, want raw", got)
	}
}

// mergedRoots trusts every server's certificate.
func mergedRoots(servers ...*tlsServer) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, s := range servers {
		pool.AddCert(s.leaf)
	}
	return pool
}

func TestTCPProxyDestinationPort(t *testing.T) {
	a, b := tagUpstream(t, "a"), tagUpstream(t, "b")
	// destination_port needs the listener's port in the configuration:
	// reserve one and release it just before the proxy binds it.
	_, port := HostPort(freePort(t))
	for _, tc := range []struct {
		name, match, want string
	}{
		// A chain naming the connection's destination port is more
		// specific than one that does not.
		{"matching_port", "{destination_port: " + port + "}", "a"},
		{"other_port", "{destination_port: 1}", "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := StartProxy(t, tcpBootstrap("127.0.0.1", port, false, []string{
				tcpChain(tc.match, "cluster: a"),
				tcpChain("", "cluster: b"),
			}, staticCluster("a", a), staticCluster("b", b)))
			c, err := net.Dial("tcp", p.Addr("tcp"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := readTag(t, c); got != tc.want {
				t.Errorf("reached %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTCPProxyIPv6Listener(t *testing.T) {
	probe, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback on this machine: %v", err) // environmental only
	}
	probe.Close()
	addr := tagUpstream(t, "v4-upstream")
	p := StartProxy(t, tcpBootstrap("::1", "0", false, []string{tcpChain("", "cluster: up")}, staticCluster("up", addr)))
	if !strings.HasPrefix(p.Addr("tcp"), "[::1]:") {
		t.Fatalf("listener bound %s, want [::1]", p.Addr("tcp"))
	}
	c, err := net.Dial("tcp6", p.Addr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := readTag(t, c); got != "v4-upstream" {
		t.Errorf("through the IPv6 listener: %q", got)
	}
	// An IPv6 listener without ipv4_compat does not take IPv4.
	_, port := HostPort(p.Addr("tcp"))
	if c4, err := net.DialTimeout("tcp4", "127.0.0.1:"+port, time.Second); err == nil {
		c4.SetReadDeadline(time.Now().Add(time.Second))
		line, _ := bufio.NewReader(c4).ReadString('\n')
		c4.Close()
		if line == "v4-upstream\n" {
			t.Errorf("127.0.0.1:%s reached the [::1] listener", port)
		}
	}
}
