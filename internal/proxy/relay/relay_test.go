package relay

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// pair returns the two ends of a loopback TCP connection.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-ch
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// TestRunBothWaysWithPendingAndHalfClose: pending bytes go first, every
// byte arrives in order, and each side's FIN reaches the other.
func TestRunBothWaysWithPendingAndHalfClose(t *testing.T) {
	client, a := pair(t) // client ↔ a
	b, server := pair(t) // b ↔ server
	done := make(chan Result, 1)
	go func() { done <- Run(a, b, Options{PendingA: []byte("peeked:"), PendingB: []byte("buffered:")}) }()

	up := bytes.Repeat([]byte("u"), 1<<20)
	go func() {
		client.Write(up)
		client.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(server) // ends at the relayed FIN
	if err != nil || string(got) != "peeked:"+string(up) {
		t.Fatalf("server got %d bytes (err %v), want pending then 1 MiB", len(got), err)
	}
	server.Write([]byte("reply"))
	server.(*net.TCPConn).CloseWrite()
	back, err := io.ReadAll(client)
	if err != nil || string(back) != "buffered:reply" {
		t.Fatalf("client got %q (err %v)", back, err)
	}
	select {
	case r := <-done:
		if r.AToB != int64(len("peeked:")+len(up)) || r.BToA != int64(len("buffered:reply")) || r.IdleTimedOut {
			t.Fatalf("result %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("relay did not end after both FINs")
	}
}

// TestRunIdleTimeout: with no traffic the relay closes both sides after
// the idle timeout; traffic before it postpones it.
func TestRunIdleTimeout(t *testing.T) {
	client, a := pair(t)
	b, server := pair(t)
	start := time.Now()
	done := make(chan Result, 1)
	go func() { done <- Run(a, b, Options{IdleTimeout: 200 * time.Millisecond}) }()
	// Activity at ~100 ms moves the idle deadline to ~300 ms.
	time.AfterFunc(100*time.Millisecond, func() { client.Write([]byte("x")) })
	buf := make([]byte, 1)
	if _, err := io.ReadFull(server, buf); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		took := time.Since(start)
		if !r.IdleTimedOut || took < 280*time.Millisecond || took > 3*time.Second {
			t.Fatalf("idle result %+v after %v, want a timeout after about 300ms", r, took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("idle relay never closed")
	}
	if _, err := client.Read(buf); err == nil {
		t.Fatal("client connection still open after the idle timeout")
	}
}
