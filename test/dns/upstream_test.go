package dns

import (
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// upstream is a fake resolver (UDP and TCP on one port): names in answers
// get their A record, everything else NXDOMAIN. It counts queries.
type upstream struct {
	port    int
	answers map[string][4]byte
	queries atomic.Int64
}

// startUpstream binds addr (ip:port, port 0 for a free one) for UDP and
// TCP.
func startUpstream(t *testing.T, addr string, answers map[string][4]byte) *upstream {
	t.Helper()
	u := &upstream{answers: answers}
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
	_, p, _ := net.SplitHostPort(udp.LocalAddr().String())
	u.port, _ = strconv.Atoi(p)
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			udp.WriteTo(u.answer(buf[:n]), from)
		}
	}()
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

func (u *upstream) serveConn(c net.Conn) {
	defer c.Close()
	for {
		var l [2]byte
		if _, err := readFull(c, l[:]); err != nil {
			return
		}
		msg := make([]byte, int(l[0])<<8|int(l[1]))
		if _, err := readFull(c, msg); err != nil {
			return
		}
		resp := u.answer(msg)
		if _, err := c.Write(append([]byte{byte(len(resp) >> 8), byte(len(resp))}, resp...)); err != nil {
			return
		}
	}
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (u *upstream) answer(msg []byte) []byte {
	u.queries.Add(1)
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
