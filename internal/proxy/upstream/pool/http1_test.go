package pool

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/codec/http1"
	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/upstream/breaker"
)

// server is a loopback TCP server that keeps the connections it accepts
// (the tests only look at connection-level behaviour).
type server struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

func startServer(t *testing.T) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.accepted.Add(1)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.closeAll()
	})
	return s
}

// closeAll closes every accepted connection (the upstream going away).
func (s *server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

func testOptions(addr string, t breaker.Thresholds) (Options, *stats.Store) {
	st := stats.NewStore()
	sc := st.Root().Scope("cluster.c")
	o := Options{
		Addr:           func() string { return addr },
		ConnectTimeout: time.Second,
		Breakers:       breaker.New(t, sc),
		Stats: &Stats{
			CxTotal: sc.Counter("upstream_cx_total"), CxActive: sc.Gauge("upstream_cx_active"),
			CxConnectFail: sc.Counter("upstream_cx_connect_fail"), CxConnectTimeout: sc.Counter("upstream_cx_connect_timeout"),
			CxDestroy: sc.Counter("upstream_cx_destroy"), CxHTTP1Total: sc.Counter("upstream_cx_http1_total"),
			CxHTTP2Total: sc.Counter("upstream_cx_http2_total"), CxOverflow: sc.Counter("upstream_cx_overflow"),
			RqPendingTotal: sc.Counter("upstream_rq_pending_total"), RqPendingActive: sc.Gauge("upstream_rq_pending_active"),
			RqPendingOverflw: sc.Counter("upstream_rq_pending_overflow"),
			HostCxActive:     sc.Gauge("host.cx_active"), HostCxTotal: sc.Counter("host.cx_total"), HostCxFail: sc.Counter("host.cx_fail"),
		},
	}
	return o, st
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling a condition with a deadline
	}
}

func TestH1ReuseAndStaleDetection(t *testing.T) {
	srv := startServer(t)
	o, st := testOptions(srv.ln.Addr().String(), breaker.Defaults())
	p := NewH1(o, http1.Options{})
	defer p.Close()

	c1, err := p.Acquire(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if c1.Reused {
		t.Error("a new connection reports Reused")
	}
	c1.Release(true)
	if p.IdleCount() != 1 {
		t.Fatalf("idle %d after a clean release, want 1", p.IdleCount())
	}
	c2, err := p.Acquire(time.Time{})
	if err != nil || c2 != c1 || !c2.Reused {
		t.Fatalf("second acquire: %p (reused %v) %v, want the idle connection %p", c2, c2 != nil && c2.Reused, err, c1)
	}
	c2.Release(true)

	// A connection reused soon after its last use is not checked.
	c3, _ := p.Acquire(time.Time{})
	if c3 != c1 {
		t.Fatalf("a recently used connection was not reused")
	}
	c3.Release(true)

	// The upstream closes the idle connection: once it has been idle for
	// staleCheckAfter, the next acquire notices (one peek) and dials a new
	// one instead of handing out a dead one.
	waitUntil(t, "the connection to be accepted", func() bool { return srv.accepted.Load() == 1 })
	srv.closeAll()
	waitUntil(t, "the pool to see the close", func() bool {
		ageIdle(p)
		c, err := p.Acquire(time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		fresh := c != c1
		c.Release(true)
		return fresh
	})
	if got := st.CounterValue("cluster.c.upstream_cx_total"); got != 2 {
		t.Errorf("upstream_cx_total = %d, want 2", got)
	}
	if got := st.CounterValue("cluster.c.upstream_cx_destroy"); got != 1 {
		t.Errorf("upstream_cx_destroy = %d, want 1 (the stale connection)", got)
	}
}

// ageIdle makes every idle connection look idle for longer than
// staleCheckAfter.
func ageIdle(p *H1) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.idle {
		c.lastUsed = time.Now().Add(-2 * staleCheckAfter)
	}
}

func TestH1MaxRequestsPerConnection(t *testing.T) {
	srv := startServer(t)
	o, _ := testOptions(srv.ln.Addr().String(), breaker.Defaults())
	o.MaxRequestsPerConnection = 2
	p := NewH1(o, http1.Options{})
	defer p.Close()
	c1, _ := p.Acquire(time.Time{})
	c1.Release(true)
	c2, _ := p.Acquire(time.Time{})
	c2.Release(true) // second request: the connection retires
	if p.IdleCount() != 0 {
		t.Errorf("idle %d after max_requests_per_connection, want 0", p.IdleCount())
	}
}

func TestH1CircuitBreakers(t *testing.T) {
	srv := startServer(t)
	o, st := testOptions(srv.ln.Addr().String(), breaker.Thresholds{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: 100, MaxRetries: 3})
	p := NewH1(o, http1.Options{})
	defer p.Close()

	busy, err := p.Acquire(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	// The second request waits as pending for the one connection.
	got := make(chan *H1Conn, 1)
	go func() {
		c, err := p.Acquire(time.Now().Add(5 * time.Second))
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	waitUntil(t, "a pending request", func() bool { return st.CounterValue("cluster.c.upstream_rq_pending_active") == 1 })
	// The third is over both limits: refused at once.
	if _, err := p.Acquire(time.Now().Add(5 * time.Second)); !errors.Is(err, ErrOverflow) {
		t.Fatalf("third acquire: %v, want ErrOverflow", err)
	}
	if v := st.CounterValue("cluster.c.upstream_rq_pending_overflow"); v != 1 {
		t.Errorf("upstream_rq_pending_overflow = %d, want 1", v)
	}
	busy.Release(true)
	if c := <-got; c != busy {
		t.Errorf("the pending request got %p, want the released connection %p", c, busy)
	} else {
		c.Release(false) // closing it frees the connection slot
	}
	if o.Breakers.Connections() != 0 {
		t.Errorf("%d connection slots held after every connection closed", o.Breakers.Connections())
	}

	// A pending request whose deadline passes gives up with ErrTimeout.
	busy, _ = p.Acquire(time.Time{})
	if _, err := p.Acquire(time.Now().Add(50 * time.Millisecond)); !errors.Is(err, ErrTimeout) {
		t.Errorf("pending past its deadline: %v, want ErrTimeout", err)
	}
	busy.Release(true)
	if v := st.CounterValue("cluster.c.upstream_rq_pending_active"); v != 0 {
		t.Errorf("upstream_rq_pending_active = %d after the waits, want 0", v)
	}
}

func TestConnectFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	o, st := testOptions(addr, breaker.Defaults())
	p := NewH1(o, http1.Options{})
	defer p.Close()
	_, err = p.Acquire(time.Time{})
	var ce *ConnectError
	if !errors.As(err, &ce) || ce.Addr != addr {
		t.Fatalf("acquire to a closed port: %v, want a ConnectError for %s", err, addr)
	}
	if v := st.CounterValue("cluster.c.upstream_cx_connect_fail"); v != 1 {
		t.Errorf("upstream_cx_connect_fail = %d, want 1", v)
	}
	if o.Breakers.Connections() != 0 {
		t.Errorf("a failed connect kept its connection slot")
	}

	// DialTCP enforces max_connections too.
	srv := startServer(t)
	o2, st2 := testOptions(srv.ln.Addr().String(), breaker.Thresholds{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: 1, MaxRetries: 1})
	c, release, err := DialTCP(&o2, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := DialTCP(&o2, time.Time{}); !errors.Is(err, ErrOverflow) {
		t.Errorf("second raw connection: %v, want ErrOverflow", err)
	}
	c.Close()
	release()
	if v := st2.CounterValue("cluster.c.upstream_cx_active"); v != 0 {
		t.Errorf("upstream_cx_active = %d after release, want 0", v)
	}
}

func BenchmarkH1AcquireRelease(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	o, _ := testOptions(ln.Addr().String(), breaker.Defaults())
	p := NewH1(o, http1.Options{})
	defer p.Close()
	c, _ := p.Acquire(time.Time{})
	c.Release(true)
	for _, bc := range []struct {
		name string
		aged bool // idle past staleCheckAfter: every acquire peeks
	}{{"hot", false}, {"idle_peek", true}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if bc.aged {
					ageIdle(p)
				}
				c, err := p.Acquire(time.Time{})
				if err != nil {
					b.Fatal(err)
				}
				c.Release(true)
			}
		})
	}
}
