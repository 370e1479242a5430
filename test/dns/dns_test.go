// Package dns tests the DNS proxy end to end: weft-control allocates a
// service's virtual IP and sends the name table over ADS, a sidecar's
// agent runs the DNS proxy on it, and real resolvers (Go's, and glibc's
// inside a network namespace) get the VIP for service names and the
// upstream's answers for everything else.
package dns

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/meshtest"
	"github.com/weftmesh/weft/internal/proxy/agent"
	"github.com/weftmesh/weft/internal/proxy/dnsproxy"
	"github.com/weftmesh/weft/internal/proxy/dnsproxy/dnstest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const helloSE = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hello, namespace: default}
spec:
  hosts: [hello.default.svc.cluster.local]
  ports: [{number: 8080, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.10}]
`

// controlPlane is a running weft-control and its configuration directory.
type controlPlane struct {
	*controlplane.ControlPlane
	dir string
}

// startControlPlane runs weft-control on loopback with the files given.
func startControlPlane(t *testing.T, files map[string]string) *controlPlane {
	t.Helper()
	return startControlPlaneOn(t, "127.0.0.1", files)
}

// startControlPlaneOn runs weft-control's xDS server on ip (port 0).
func startControlPlaneOn(t *testing.T, ip string, files map[string]string) *controlPlane {
	t.Helper()
	cp, dir := meshtest.RunConfigDir(t, controlplane.Options{XDSAddress: net.JoinHostPort(ip, "0"), Debounce: 50 * time.Millisecond, Logger: quiet}, files)
	return &controlPlane{ControlPlane: cp, dir: dir}
}

// helloVIP is the IPv4 address weft-control allocated to hello.
func helloVIP(t *testing.T, cp *controlPlane) string {
	t.Helper()
	var vip string
	waitFor(t, "the first snapshot", 10*time.Second, func() bool {
		s := cp.Snapshot()
		if s == nil {
			return false
		}
		svcs := s.ServicesByHost("hello.default.svc.cluster.local")
		if len(svcs) == 1 && len(svcs[0].AutoAllocated) > 0 {
			vip = svcs[0].AutoAllocated[0]
			return true
		}
		return false
	})
	if !strings.HasPrefix(vip, "240.240.") {
		t.Fatalf("hello's VIP %q is not in 240.240.0.0/16", vip)
	}
	return vip
}

// startAgentDNS runs a sidecar agent's DNS proxy (as `weft-proxy sidecar`
// does) for a workload of namespace default.
func startAgentDNS(t *testing.T, cp *controlPlane, so dnsproxy.Options) *agent.DNS {
	t.Helper()
	ao := &agent.Options{
		DiscoveryAddress: cp.XDSAddr().String(), Type: "sidecar", IP: "127.0.0.1",
		Name: "client-1", Namespace: "default", AdminAddress: "127.0.0.1:0",
	}
	ao.EnableDNSMetadata()
	d, err := agent.StartDNS(agent.DNSOptions{Agent: ao, Server: so, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	waitFor(t, "the name table", 10*time.Second, d.Server().Ready)
	return d
}

// TestDNSProxyEndToEnd: the agent's DNS proxy resolves the service's FQDN
// and short names to the VIP weft-control allocated, and forwards
// example.invalid to the upstream of its resolv.conf (over UDP and TCP).
func TestDNSProxyEndToEnd(t *testing.T) {
	cp := startControlPlane(t, map[string]string{"hello.yaml": helloSE})
	vip := helloVIP(t, cp)
	up := dnstest.Start(t, "127.0.0.1:0", map[string][4]byte{"example.invalid.": {192, 0, 2, 7}})
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("nameserver 127.0.0.1\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startAgentDNS(t, cp, dnsproxy.Options{Address: "127.0.0.1:0", ResolvConf: rc, UpstreamPort: up.Port})
	for _, network := range []string{"udp", "tcp"} {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, network, d.Server().UDPAddr().String())
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for _, name := range []string{"hello.default.svc.cluster.local", "hello.default", "hello.default.svc", "hello"} {
			got, err := r.LookupHost(ctx, name+".")
			if err != nil || !reflect.DeepEqual(got, []string{vip}) {
				t.Errorf("%s: %s = %v, %v; want [%s]", network, name, got, err, vip)
			}
		}
		got, err := r.LookupHost(ctx, "example.invalid.")
		if err != nil || !reflect.DeepEqual(got, []string{"192.0.2.7"}) {
			t.Errorf("%s: example.invalid = %v, %v; want the upstream's 192.0.2.7", network, got, err)
		}
		cancel()
	}
	if up.Queries.Load() == 0 {
		t.Error("the upstream saw no query")
	}
}

// TestNameTableFollowsConfig: a new ServiceEntry is answered once
// weft-control pushed the new table; one with an address gets it.
func TestNameTableFollowsConfig(t *testing.T) {
	dir := t.TempDir()
	rc := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(rc, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cp := startControlPlane(t, map[string]string{"hello.yaml": helloSE})
	helloVIP(t, cp)
	up := dnstest.Start(t, "127.0.0.1:0", nil)
	d := startAgentDNS(t, cp, dnsproxy.Options{Address: "127.0.0.1:0", ResolvConf: rc, UpstreamPort: up.Port})
	addr := d.Server().UDPAddr().String()
	if rcode, _ := query(t, addr, "db.example.com.", dnsmessage.TypeA); rcode != dnsmessage.RCodeNameError {
		t.Fatalf("db.example.com before its ServiceEntry: %v, want NXDOMAIN from the upstream", rcode)
	}
	writeConfig(t, cp, "db.yaml", `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  addresses: [10.20.30.40]
  ports: [{number: 5432, name: tcp}]
  resolution: DNS
`)
	waitFor(t, "db.example.com in the table", 10*time.Second, func() bool {
		rcode, addrs := query(t, addr, "db.example.com.", dnsmessage.TypeA)
		return rcode == dnsmessage.RCodeSuccess && reflect.DeepEqual(addrs, []string{"10.20.30.40"})
	})
}

// writeConfig adds a file to weft-control's configuration directory
// (written aside, then renamed, as tools do).
func writeConfig(t *testing.T, cp *controlPlane, name, content string) {
	t.Helper()
	dir := cp.dir
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// query sends one UDP query and returns the rcode and the A/AAAA answers.
func query(t *testing.T, addr, name string, typ dnsmessage.Type) (dnsmessage.RCode, []string) {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET})
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range m.Answers {
		switch r := a.Body.(type) {
		case *dnsmessage.AResource:
			out = append(out, net.IP(r.A[:]).String())
		case *dnsmessage.AAAAResource:
			out = append(out, net.IP(r.AAAA[:]).String())
		}
	}
	return m.RCode, out
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
