package http2

import (
	"net"
	"testing"
	"time"

	xh2 "golang.org/x/net/http2"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// TestServerShutdown: Shutdown sends GOAWAY NO_ERROR naming the last
// stream; the stream in flight completes, a new one is refused, then the
// connection closes and Serve reports CloseDrained.
func TestServerShutdown(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	h := handlerFunc(func(st *ServerStream) {
		arrived <- struct{}{}
		<-release
		echoHandler(st)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	scs := make(chan *ServerConn, 1)
	reasons := make(chan CloseReason, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		sc := NewServerConn(nc, ServerOptions{Handler: h})
		scs <- sc
		reasons <- sc.Serve()
	}()
	rc := dialRaw(t, ln.Addr().String())
	rc.headers(1, rc.get("/slow"), true)
	<-arrived
	sc := <-scs
	sc.Shutdown()
	ga := rc.expect("GOAWAY", func(f xh2.Frame) bool { _, ok := f.(*xh2.GoAwayFrame); return ok }).(*xh2.GoAwayFrame)
	if ga.ErrCode != ErrCodeNo || ga.LastStreamID != 1 {
		t.Fatalf("GOAWAY %v last stream %d, want NO_ERROR and 1", ga.ErrCode, ga.LastStreamID)
	}
	rc.headers(3, rc.get("/late"), true)
	rc.expectReset(3, ErrCodeRefusedStream)
	close(release)
	rc.expect("the in-flight response", func(f xh2.Frame) bool { return endsStream(f) })
	if rc.next() != nil {
		t.Fatal("the connection stayed open after its last stream")
	}
	rc.nc.Close()
	select {
	case r := <-reasons:
		if r != CloseDrained {
			t.Fatalf("Serve returned %v, want CloseDrained", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// TestServerIdleTimeout: a connection without streams for IdleTimeout is
// closed with GOAWAY NO_ERROR.
func TestServerIdleTimeout(t *testing.T) {
	ts := startServer(t, ServerOptions{Handler: handlerFunc(echoHandler), IdleTimeout: 100 * time.Millisecond})
	rc := dialRaw(t, ts.addr)
	start := time.Now()
	rc.headers(1, rc.get("/"), true)
	rc.expect("the response", func(f xh2.Frame) bool { return endsStream(f) })
	rc.expectGoAway(ErrCodeNo)
	// The timeout runs in ticks of a tenth: between 1 and 1.1 times it
	// after the last stream, never before.
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Fatalf("GOAWAY after %v, before the 100ms idle timeout", el)
	}
}

// TestServerIdleTimeoutAfterLastStream: the idle timeout runs from the end
// of the last stream, even when the connection had been idle for most of
// it before a short stream that began and ended between two of its ticks.
// It used to count from the connection's start then, and sent GOAWAY right
// after the response.
func TestServerIdleTimeoutAfterLastStream(t *testing.T) {
	const idle = 100 * time.Millisecond
	ts := startServer(t, ServerOptions{Handler: handlerFunc(echoHandler), IdleTimeout: idle})
	rc := dialRaw(t, ts.addr)
	waitFor(t, "the connection to idle for 70% of its timeout", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if len(ts.scs) == 0 {
			return false
		}
		c := &ts.scs[0].c
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.idleTicks >= 7
	})
	rc.headers(1, rc.get("/"), true)
	rc.expect("the response", func(f xh2.Frame) bool { return endsStream(f) })
	end := time.Now()
	rc.expectGoAway(ErrCodeNo)
	// Tolerance: the client sees the response's end a little after the
	// server ended the stream; one tick (10ms) covers it. The old count
	// closed about 30ms after the response.
	if el := time.Since(end); el < idle-idle/10 {
		t.Fatalf("GOAWAY %v after the last stream ended, want the %v idle timeout", el, idle)
	}
}

// TestServerStreamIdleTimeout: a stream whose client never opens its
// window is reset after StreamIdleTimeout and reports IdleTimedOut; an
// active stream is not.
func TestServerStreamIdleTimeout(t *testing.T) {
	const idle = 150 * time.Millisecond
	timedOut := make(chan bool, 2)
	h := handlerFunc(func(st *ServerStream) {
		var req headers.Request
		st.TakeRequest(&req)
		st.WriteHeaders(&headers.Response{Status: 200}, false)
		n := 1 << 20
		if string(req.Path) == "/trickle" {
			n = 1
		}
		for i := 0; i < 6; i++ {
			if _, err := st.Write(make([]byte, n)); err != nil {
				timedOut <- st.IdleTimedOut()
				return
			}
			st.Flush()
			time.Sleep(idle / 3) // pacing: the stream stays active
		}
		st.Finish(nil)
		timedOut <- st.IdleTimedOut()
	})
	ts := startServer(t, ServerOptions{Handler: h, StreamIdleTimeout: idle})

	rc := dialRaw(t, ts.addr, xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: 0})
	start := time.Now()
	rc.headers(1, rc.get("/stalled"), true)
	rc.expectReset(1, ErrCodeInternal)
	if el := time.Since(start); el < idle {
		t.Errorf("reset after %v, before the %v idle timeout", el, idle)
	}
	if !<-timedOut {
		t.Error("IdleTimedOut is false on the stream reset for idling")
	}

	rc2 := dialRaw(t, ts.addr)
	rc2.headers(1, rc2.get("/trickle"), true)
	rc2.expect("the end of the paced response", func(f xh2.Frame) bool {
		if r, ok := f.(*xh2.RSTStreamFrame); ok {
			t.Fatalf("active stream reset (%v)", r.ErrCode)
		}
		return endsStream(f)
	})
	if <-timedOut {
		t.Error("IdleTimedOut on an active stream")
	}
}

// TestServerInvalidPreface: a connection that does not start with the
// client preface gets GOAWAY PROTOCOL_ERROR.
func TestServerInvalidPreface(t *testing.T) {
	ts := startServer(t, ServerOptions{Handler: handlerFunc(echoHandler)})
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	fr := xh2.NewFramer(nil, nc)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY before the connection ended: %v", err)
		}
		if ga, ok := f.(*xh2.GoAwayFrame); ok {
			if ga.ErrCode != ErrCodeProtocol {
				t.Fatalf("GOAWAY %v, want PROTOCOL_ERROR", ga.ErrCode)
			}
			return
		}
	}
}
