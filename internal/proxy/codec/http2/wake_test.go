package http2

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	xh2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// Wake-ups: every wait of a stream (for body bytes, for flow-control
// window, for the write buffer to drain) ends when the stream is reset,
// its deadline passes, it is canceled, the peer's GOAWAY leaves it
// unprocessed, or the connection ends. Each test first makes sure the wait
// is pending (the stream's waiting flag), then triggers the wake-up.

// TestWakeServerWriteOnClientReset: a response body write waiting for the
// client's window returns the client's reset.
func TestWakeServerWriteOnClientReset(t *testing.T) {
	errs := make(chan error, 1)
	blocked := make(chan bool, 1)
	h := handlerFunc(func(st *ServerStream) {
		st.WriteHeaders(&headers.Response{Status: 200}, false)
		polled := make(chan struct{})
		go func() {
			defer close(polled)
			blocked <- eventually(st.sendBlocked)
		}()
		_, err := st.Write([]byte("body"))
		errs <- err
		<-polled
	})
	ts := startServer(t, ServerOptions{Handler: h})
	rc := dialRaw(t, ts.addr, xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: 0})
	rc.headers(1, rc.get("/"), true)
	if !within(t, "the body write", blocked) {
		t.Fatal("the body write never blocked")
	}
	rc.fr.WriteRSTStream(1, ErrCodeCancel)
	var se *StreamError
	if err := within(t, "Write", errs); !asStreamError(err, &se) || !se.Remote || se.Code != ErrCodeCancel {
		t.Fatalf("Write: %v, want the remote CANCEL", err)
	}
}

// TestWakeServerOnConnectionClose: when the client's connection goes away,
// a body read, a write waiting for window and a write waiting for another
// goroutine's socket write to drain (a client that reads nothing) all
// return.
func TestWakeServerOnConnectionClose(t *testing.T) {
	type result struct {
		path string
		err  error
	}
	results := make(chan result, 3)
	ready := make(chan string, 3)
	h := handlerFunc(func(st *ServerStream) {
		path := string(st.Request().Path)
		var err error
		switch path {
		case "/read":
			polled := make(chan struct{})
			go func() {
				defer close(polled)
				if eventually(st.recvBlocked) {
					ready <- path
				}
			}()
			_, err = io.ReadAll(st)
			<-polled
		case "/bulk":
			// The client's windows are open and it reads nothing: the
			// socket fills, one writer blocks in the socket write and
			// the other on the write buffer.
			st.WriteHeaders(&headers.Response{Status: 200}, false)
			buf := make([]byte, 1<<20)
			ready <- path
			for err == nil {
				_, err = st.Write(buf)
			}
		}
		results <- result{path, err}
	})
	ts := startServer(t, ServerOptions{Handler: h})
	rc := dialRaw(t, ts.addr, xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: maxWindow})
	rc.fr.WriteWindowUpdate(0, maxWindow-initialWindow)
	rc.headers(1, rc.post("/read"), false)
	rc.headers(3, rc.get("/bulk"), true)
	rc.headers(5, rc.get("/bulk"), true)
	for i := 0; i < 3; i++ {
		within(t, "the handlers to block", ready)
	}
	rc.nc.Close()
	for i := 0; i < 3; i++ {
		r := within(t, "a blocked handler", results)
		if r.err == nil || r.err == io.EOF {
			t.Errorf("%s: %v after the connection closed, want an error", r.path, r.err)
		}
	}
}

// TestWakeClientOnClose: ClientConn.Close ends a wait for the response
// head and a request body write waiting for the server's window.
func TestWakeClientOnClose(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	ts := startServer(t, ServerOptions{Handler: handlerFunc(func(st *ServerStream) { <-release }), InitialStreamWindowSize: initialWindow})
	cc := dialClient(t, ts.addr, ClientOptions{})
	errs := make(chan error, 2)

	reader, err := cc.Open(newRequest("GET", "/"), OpenOptions{EndStream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	go func() {
		var resp headers.Response
		_, err := reader.ReadHeaders(&resp)
		errs <- err
	}()
	writer, err := cc.Open(newRequest("POST", "/"), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	go func() {
		_, err := writer.Write(make([]byte, 2*initialWindow)) // beyond the stream window
		errs <- err
	}()
	waitFor(t, "the waits to block", func() bool { return reader.recvBlocked() && writer.sendBlocked() })
	cc.Close()
	for i := 0; i < 2; i++ {
		if err := within(t, "a blocked stream", errs); err == nil {
			t.Error("a wait ended without error by Close")
		}
	}
}

// TestWakeClientWriteDeadline: a request body write waiting for window
// fails with ErrTimeout at the write deadline and resets the stream, which
// the server sees.
func TestWakeClientWriteDeadline(t *testing.T) {
	started := make(chan struct{})
	resets := make(chan error, 1)
	h := handlerFunc(func(st *ServerStream) {
		close(started)
		<-st.ResetSignal()
		_, err := st.Read(make([]byte, 1))
		resets <- err
	})
	ts := startServer(t, ServerOptions{Handler: h, InitialStreamWindowSize: initialWindow})
	cc := dialClient(t, ts.addr, ClientOptions{})
	cs, err := cc.Open(newRequest("POST", "/"), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	<-started
	cs.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := cs.Write(make([]byte, 2*initialWindow)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Write past its deadline: %v, want ErrTimeout", err)
	}
	var se *StreamError
	if err := within(t, "the server's read", resets); !asStreamError(err, &se) || se.Code != ErrCodeCancel {
		t.Fatalf("server side: %v, want RST_STREAM CANCEL", err)
	}
}

// TestWakeClientOnGoAway: a wait for the response head of a stream above
// the server's GOAWAY last stream id ends with ErrUnprocessed.
func TestWakeClientOnGoAway(t *testing.T) {
	var cs *ClientStream
	opened := make(chan struct{})
	addr := fakeServer(t, func(fr *xh2.Framer, _ *hpack.Decoder) {
		nextHeaders(fr)
		<-opened
		if !eventually(cs.recvBlocked) {
			return // closing the connection fails the test's ReadHeaders
		}
		fr.WriteGoAway(0, ErrCodeNo, nil)
		io.Copy(io.Discard, readerOf(fr))
	})
	cc := dialClient(t, addr, ClientOptions{})
	var err error
	cs, err = cc.Open(newRequest("GET", "/"), OpenOptions{EndStream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	close(opened)
	var resp headers.Response
	if _, err := cs.ReadHeaders(&resp); !errors.Is(err, ErrUnprocessed) {
		t.Fatalf("ReadHeaders: %v, want ErrUnprocessed", err)
	}
}

// gateConn holds the first large socket write (a response body) until
// release is closed, and records a half-close.
type gateConn struct {
	net.Conn
	entered, release chan struct{}
	held             atomic.Bool
	closedWrite      atomic.Bool
}

func (c *gateConn) Write(p []byte) (int, error) {
	if len(p) >= 16<<10 && c.held.CompareAndSwap(false, true) {
		close(c.entered)
		<-c.release
	}
	return c.Conn.Write(p)
}

func (c *gateConn) CloseWrite() error {
	c.closedWrite.Store(true)
	return c.Conn.(*net.TCPConn).CloseWrite()
}

// serveGated serves one connection through a gateConn and dials it.
func serveGated(t *testing.T, o ServerOptions, settings ...xh2.Setting) (*gateConn, *ServerConn, *rawConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	gc := &gateConn{entered: make(chan struct{}), release: make(chan struct{})}
	scs := make(chan *ServerConn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		gc.Conn = nc
		sc := NewServerConn(gc, o)
		scs <- sc
		sc.Serve()
	}()
	rc := dialRaw(t, ln.Addr().String(), settings...)
	return gc, <-scs, rc
}

// TestTeardownDrainsWriter: a connection error while another goroutine is
// in a socket write still delivers the GOAWAY. The teardown waits for that
// write (bounded by the delayed close timeout) before it half-closes the
// socket; it used to half-close at once, which failed the write in
// progress and lost the GOAWAY queued behind it.
func TestTeardownDrainsWriter(t *testing.T) {
	h := handlerFunc(func(st *ServerStream) {
		// The reader goroutine is done writing its replies (it has no
		// more input until the test sends the bad frame): the body's
		// write is this goroutine's, not the reader's, which must stay
		// free to read that frame.
		idle := eventually(func() bool {
			st.c.mu.Lock()
			defer st.c.mu.Unlock()
			return !st.c.writing && len(st.c.wbuf) == 0
		})
		if !idle {
			return // the test fails waiting for the gate
		}
		st.WriteHeaders(&headers.Response{Status: 200}, false)
		st.Write(make([]byte, 64<<10))
		st.Flush()
		<-st.ResetSignal()
	})
	gc, sc, rc := serveGated(t, ServerOptions{Handler: h, DelayedCloseTimeout: 5 * time.Second})
	rc.headers(1, rc.get("/"), true)
	<-gc.entered                          // the handler is in the socket write of the body
	rc.fr.WriteData(7, true, []byte("x")) // DATA on an idle stream: a connection error
	waitFor(t, "the teardown to begin closing", func() bool {
		sc.c.mu.Lock()
		defer sc.c.mu.Unlock()
		return sc.c.err != nil && (!sc.c.wlimit.IsZero() || gc.closedWrite.Load())
	})
	close(gc.release)
	rc.expectGoAway(ErrCodeProtocol)
}

// TestShutdownDrainsLastResponse: a draining connection whose last stream
// ends closes only once that stream's response is on the socket. The close
// (on its own goroutine) used to flush, return at once because the
// handler's goroutine was still writing the response, and half-close the
// socket under that write, cutting the response short.
func TestShutdownDrainsLastResponse(t *testing.T) {
	started, finish := make(chan struct{}), make(chan struct{})
	h := handlerFunc(func(st *ServerStream) {
		close(started)
		<-finish
		st.WriteHeaders(&headers.Response{Status: 200}, false)
		st.Write(make([]byte, 20<<10)) // buffered: under the flush threshold
		st.Finish(nil)                 // one write of 20 KiB, held by the gate
	})
	gc, sc, rc := serveGated(t, ServerOptions{Handler: h}, xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: maxWindow})
	rc.headers(1, rc.get("/"), true)
	<-started
	sc.Shutdown()
	rc.expectGoAway(ErrCodeNo)
	close(finish)
	within(t, "the response's socket write", gc.entered)
	waitFor(t, "the connection to begin closing", func() bool {
		sc.c.mu.Lock()
		defer sc.c.mu.Unlock()
		return !sc.c.wlimit.IsZero() || gc.closedWrite.Load()
	})
	close(gc.release)
	n := 0
	rc.expect("the end of the last response", func(f xh2.Frame) bool {
		if d, ok := f.(*xh2.DataFrame); ok {
			n += len(d.Data())
		}
		return endsStream(f)
	})
	if n != 20<<10 {
		t.Fatalf("response body of %d bytes, want %d", n, 20<<10)
	}
}
