package tlsinspect

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"testing"
	"time"
)

// replayConn reads from r (which replays inspected bytes) before the socket.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// acceptOne listens on loopback port 0 and returns the address and a
// channel delivering the first accepted connection.
func acceptOne(t *testing.T) (string, <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ln.Addr().String(), ch
}

func accepted(t *testing.T, ch <-chan net.Conn) net.Conn {
	t.Helper()
	c, ok := <-ch
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// inspectConn inspects c with the given API and returns a conn that
// replays the inspected bytes.
func inspectConn(t *testing.T, api string, c net.Conn) (Result, net.Conn, error) {
	t.Helper()
	switch api {
	case "bufio":
		br := bufio.NewReaderSize(c, defaultInspector.BufferSize())
		res, err := Inspect(br)
		return res, &replayConn{Conn: c, r: br}, err
	default:
		res, peeked, err := defaultInspector.ReadClientHello(c, nil)
		return res, &replayConn{Conn: c, r: io.MultiReader(bytes.NewReader(peeked), c)}, err
	}
}

// TestLoopbackTLSTerminationAfterInspect inspects a real TLS client's
// connection, then completes a TLS handshake on the same bytes: the
// inspector consumed nothing, and it saw what crypto/tls's server sees.
func TestLoopbackTLSTerminationAfterInspect(t *testing.T) {
	cert := selfSignedCert(t, "www.example.com")
	roots := x509.NewCertPool()
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots.AddCert(leaf)

	for _, api := range []string{"bufio", "read"} {
		t.Run(api, func(t *testing.T) {
			addr, ch := acceptOne(t)
			clientErr := make(chan error, 1)
			go func() {
				c, err := tls.Dial("tcp", addr, &tls.Config{
					ServerName: "WWW.Example.com", RootCAs: roots, NextProtos: []string{"h2", "http/1.1"},
				})
				if err == nil {
					_, err = io.ReadAll(c) // until the server closes
					c.Close()
				}
				clientErr <- err
			}()

			conn := accepted(t, ch)
			if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			res, replay, err := inspectConn(t, api, conn)
			if err != nil {
				t.Fatal(err)
			}
			var seen *tls.ClientHelloInfo
			srv := tls.Server(replay, &tls.Config{
				Certificates: []tls.Certificate{cert},
				NextProtos:   []string{"h2"},
				GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
					seen = h
					return nil, nil
				},
			})
			if err := srv.Handshake(); err != nil {
				t.Fatalf("TLS handshake after inspection: %v", err)
			}
			srv.Close()
			if err := <-clientErr; err != nil {
				t.Fatalf("client: %v", err)
			}
			if !res.IsTLS || res.ServerName != "www.example.com" || !reflect.DeepEqual(res.ALPN, seen.SupportedProtos) {
				t.Fatalf("inspector saw %+v; crypto/tls saw sni=%q alpn=%q", res, seen.ServerName, seen.SupportedProtos)
			}
		})
	}
}

func TestLoopbackPlainTextPassesThrough(t *testing.T) {
	const request = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
	for _, api := range []string{"bufio", "read"} {
		t.Run(api, func(t *testing.T) {
			addr, ch := acceptOne(t)
			client := dial(t, addr)
			if _, err := io.WriteString(client, request); err != nil {
				t.Fatal(err)
			}
			if err := client.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			conn := accepted(t, ch)
			if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			res, replay, err := inspectConn(t, api, conn)
			if err != nil || res.IsTLS || res.TransportProtocol() != TransportRawBuffer {
				t.Fatalf("got %+v, %v; want raw_buffer", res, err)
			}
			got, err := io.ReadAll(replay)
			if err != nil || string(got) != request {
				t.Fatalf("replayed %q, %v; want %q", got, err, request)
			}
		})
	}
}

// TestLoopbackFirstByteDecides sends one plain-text byte and keeps the
// connection open: the verdict must not wait for more (the deadline is only
// a safety net and must not be what ends the call).
func TestLoopbackFirstByteDecides(t *testing.T) {
	for _, api := range []string{"bufio", "read"} {
		t.Run(api, func(t *testing.T) {
			addr, ch := acceptOne(t)
			client := dial(t, addr)
			if _, err := client.Write([]byte("G")); err != nil {
				t.Fatal(err)
			}
			conn := accepted(t, ch)
			if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
				t.Fatal(err)
			}
			res, _, err := inspectConn(t, api, conn)
			if err != nil || res.IsTLS || res.BytesProcessed != 1 {
				t.Fatalf("got %+v, %v; want raw_buffer after one byte", res, err)
			}
		})
	}
}

// TestLoopbackDeadline: a silent client, or one that stops in the middle of
// its ClientHello, blocks until the caller's read deadline.
func TestLoopbackDeadline(t *testing.T) {
	hello := captureClientHello(t, &tls.Config{ServerName: "a.example"})
	for _, sent := range [][]byte{nil, hello[:3], hello[:len(hello)-1]} {
		for _, api := range []string{"bufio", "read"} {
			addr, ch := acceptOne(t)
			client := dial(t, addr)
			if _, err := client.Write(sent); err != nil {
				t.Fatal(err)
			}
			conn := accepted(t, ch)
			if err := conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			_, _, err := inspectConn(t, api, conn)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("%s, %d bytes sent: err = %v, want os.ErrDeadlineExceeded", api, len(sent), err)
			}
		}
	}
}

func TestLoopbackPeerClosesMidHello(t *testing.T) {
	hello := captureClientHello(t, &tls.Config{ServerName: "a.example"})
	for _, api := range []string{"bufio", "read"} {
		addr, ch := acceptOne(t)
		client := dial(t, addr)
		if _, err := client.Write(hello[:len(hello)/2]); err != nil {
			t.Fatal(err)
		}
		client.Close()
		conn := accepted(t, ch)
		if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := inspectConn(t, api, conn); !errors.Is(err, io.EOF) {
			t.Fatalf("%s: err = %v, want io.EOF", api, err)
		}
	}
}
