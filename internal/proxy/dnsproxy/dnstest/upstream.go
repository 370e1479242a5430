// Package dnstest provides a fake DNS resolver for tests: the upstream the
// DNS proxy forwards to, on a real UDP and TCP socket.
package dnstest

import (
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Upstream is a resolver on one port, UDP and TCP: the names in its
// answers (lower-case, fully qualified: "example.invalid.") get their A
// record, every other name NXDOMAIN. Queries counts what it received.
type Upstream struct {
	// Addr is the bound ip:port; Port its port.
	Addr    string
	Port    int
	Queries atomic.Int64
	answers map[string][4]byte
}

// Start binds addr (ip:port; port 0 for one free for both UDP and TCP)
// and serves until the test ends.
func Start(t testing.TB, addr string, answers map[string][4]byte) *Upstream {
	t.Helper()
	u := &Upstream{answers: answers}
	var udp net.PacketConn
	var tcp net.Listener
	for range 5 {
		var err error
		if udp, err = net.ListenPacket("udp", addr); err != nil {
			t.Fatal(err)
		}
		if tcp, err = net.Listen("tcp", udp.LocalAddr().String()); err == nil {
			break
		}
		udp.Close()
		udp = nil
	}
	if udp == nil {
		t.Fatalf("no port of %s free for UDP and TCP", addr)
	}
	u.Addr = udp.LocalAddr().String()
	_, p, _ := net.SplitHostPort(u.Addr)
	u.Port, _ = strconv.Atoi(p)
	go u.serveUDP(udp)
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			go u.serveConn(c)
		}
	}()
	t.Cleanup(func() { udp.Close(); tcp.Close() })
	return u
}

func (u *Upstream) serveUDP(udp net.PacketConn) {
	buf := make([]byte, 65535)
	for {
		n, from, err := udp.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp := u.answer(buf[:n]); resp != nil {
			udp.WriteTo(resp, from)
		}
	}
}

// serveConn answers DNS over TCP (RFC 1035 4.2.2: two-byte length
// prefixes) until the client closes.
func (u *Upstream) serveConn(c net.Conn) {
	defer c.Close()
	for {
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		resp := u.answer(msg)
		if resp == nil {
			return
		}
		if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(resp)))); err != nil {
			return
		}
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}

func (u *Upstream) answer(msg []byte) []byte {
	u.Queries.Add(1)
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	a, ok := u.answers[strings.ToLower(q.Name.String())]
	if !ok {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.StartQuestions()
	b.Question(q)
	if ok && q.Type == dnsmessage.TypeA {
		b.StartAnswers()
		b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a})
	}
	out, _ := b.Finish()
	return out
}
