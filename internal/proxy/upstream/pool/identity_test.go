package pool

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/codec/http1"
	"github.com/weftmesh/weft/internal/proxy/tlsctx/tlsctxtest"
	"github.com/weftmesh/weft/internal/proxy/upstream/breaker"
)

// TestIdentity: a pooled connection keeps the URI SANs its TLS handshake
// exchanged (the server's certificate, the client's own), computed once
// at dial; a plaintext connection has none.
func TestIdentity(t *testing.T) {
	const (
		serverID = "spiffe://cluster.local/ns/default/sa/hello"
		clientID = "spiffe://cluster.local/ns/default/sa/sleep"
	)
	ca := tlsctxtest.NewCA(t, "root")
	server := ca.Issue(t, tlsctxtest.LeafOptions{URIs: []string{serverID}})
	client := ca.Issue(t, tlsctxtest.LeafOptions{URIs: []string{clientID}})
	for _, tc := range []struct {
		name string
		tls  bool
		want Identity
	}{
		{"mTLS", true, Identity{Peer: serverID, Local: clientID}},
		{"plaintext", false, Identity{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if tc.tls {
				ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{server.TLS}, ClientAuth: tls.RequireAnyClientCert})
			}
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() { // finish the server handshake, then hold the connection
						if tc, ok := c.(*tls.Conn); ok {
							_ = tc.Handshake()
						}
						buf := make([]byte, 1)
						c.Read(buf)
						c.Close()
					}()
				}
			}()
			o, _ := testOptions(ln.Addr().String(), breaker.Defaults())
			if tc.tls {
				o.Handshake = func(ctx context.Context, c net.Conn) (net.Conn, error) {
					tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{client.TLS}})
					return tc, tc.HandshakeContext(ctx)
				}
				o.LocalPrincipal = func() string { return clientID }
			}
			p := NewH1(o, http1.Options{})
			defer p.Close()
			c, err := p.Acquire(time.Now().Add(5 * time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if c.Identity != tc.want {
				t.Errorf("H1 connection identity %+v, want %+v", c.Identity, tc.want)
			}
			c.Release(false)
			raw, release, err := DialTCP(&o, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			defer raw.Close()
			if got := o.IdentityOf(raw); got != tc.want {
				t.Errorf("DialTCP connection identity %+v, want %+v", got, tc.want)
			}
		})
	}
}
