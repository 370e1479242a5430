package dnsproxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/weftmesh/weft/internal/proxy/dnsproxy/dnstest"
)

// startUpstream starts a fake resolver on loopback (dnstest.Upstream).
func startUpstream(t *testing.T, answers map[string][4]byte) *dnstest.Upstream {
	return dnstest.Start(t, "127.0.0.1:0", answers)
}

// writeResolvConf writes dir/resolv.conf atomically (rename) and returns
// its path.
func writeResolvConf(t *testing.T, dir, content string) string {
	t.Helper()
	p := filepath.Join(dir, "resolv.conf")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// result is one answer, decoded.
type result struct {
	header  dnsmessage.Header
	answers []dnsmessage.Resource
}

func (r result) addrs() []string {
	var out []string
	for _, a := range r.answers {
		switch b := a.Body.(type) {
		case *dnsmessage.AResource:
			out = append(out, net.IP(b.A[:]).String())
		case *dnsmessage.AAAAResource:
			out = append(out, net.IP(b.AAAA[:]).String())
		case *dnsmessage.CNAMEResource:
			out = append(out, "cname:"+b.CNAME.String())
		}
	}
	return out
}

// exchange sends one query over network ("udp" or "tcp") and decodes the
// answer.
func exchange(t *testing.T, network, addr, name string, typ dnsmessage.Type) result {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 4242, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var resp []byte
	if network == "tcp" {
		if err := writeTCPMessage(c, q); err != nil {
			t.Fatal(err)
		}
		if resp, err = readTCPMessage(c); err != nil {
			t.Fatal(err)
		}
	} else {
		if _, err := c.Write(q); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		resp = buf[:n]
	}
	var m dnsmessage.Message
	if err := m.Unpack(resp); err != nil {
		t.Fatalf("answer does not parse: %v", err)
	}
	if m.ID != 4242 || !m.Response {
		t.Fatalf("answer id %d response %v, want 4242 and a response", m.ID, m.Response)
	}
	return result{header: m.Header, answers: m.Answers}
}

// startProxy runs a Server on a free loopback port.
func startProxy(t *testing.T, o Options) *Server {
	t.Helper()
	if o.Address == "" {
		o.Address = "127.0.0.1:0"
	}
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// waitFor polls cond until it holds or the deadline passes.
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
