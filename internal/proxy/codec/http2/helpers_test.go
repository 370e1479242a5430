package http2

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xh2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// handlerFunc adapts a function to Handler.
type handlerFunc func(st *ServerStream)

func (f handlerFunc) ServeStream(st *ServerStream) { f(st) }

// echoHandler answers every request with 200, its body echoed, and a
// trailer x-len with the body's length.
func echoHandler(st *ServerStream) {
	var req headers.Request
	st.TakeRequest(&req)
	body, err := io.ReadAll(st)
	if err != nil {
		st.Reset(ErrCodeInternal)
		return
	}
	resp := headers.Response{Status: 200}
	resp.Set("content-type", "application/octet-stream")
	resp.Set("x-path", string(req.Path))
	if err := st.WriteHeaders(&resp, false); err != nil {
		return
	}
	if _, err := st.Write(body); err != nil {
		return
	}
	var tr headers.Map
	tr.Set("x-len", strconv.Itoa(len(body)))
	st.Finish(&tr)
}

// testServer serves h on a loopback listener until the test ends.
type testServer struct {
	addr  string
	conns sync.WaitGroup
	mu    sync.Mutex
	scs   []*ServerConn
}

func startServer(t testing.TB, o ServerOptions) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: ln.Addr().String()}
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			sc := NewServerConn(nc, o)
			ts.mu.Lock()
			ts.scs = append(ts.scs, sc)
			ts.mu.Unlock()
			ts.conns.Add(1)
			go func() {
				defer ts.conns.Done()
				sc.Serve()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		ts.mu.Lock()
		for _, sc := range ts.scs {
			sc.Close()
		}
		ts.mu.Unlock()
		ts.conns.Wait()
	})
	return ts
}

func dialClient(t testing.TB, addr string, o ClientOptions) *ClientConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := NewClientConn(nc, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); <-cc.Done() })
	return cc
}

func newRequest(method, path string) *headers.Request {
	return &headers.Request{Method: []byte(method), Scheme: []byte("http"), Authority: []byte("test"), Path: []byte(path)}
}

// roundTrip runs one exchange on cc and returns the response, its body
// and trailers.
func roundTrip(cc *ClientConn, req *headers.Request, body []byte) (*headers.Response, []byte, *headers.Map, error) {
	cs, err := cc.Open(req, OpenOptions{Body: body, EndStream: true})
	if err != nil {
		return nil, nil, nil, err
	}
	defer cs.Close()
	cs.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp := &headers.Response{}
	if _, err := cs.ReadHeaders(resp); err != nil {
		return nil, nil, nil, err
	}
	got, err := io.ReadAll(cs)
	if err != nil {
		return resp, got, nil, err
	}
	tr := &headers.Map{}
	cs.TakeTrailers(tr)
	return resp, got, tr, nil
}

// rawConn is a frame-level HTTP/2 client for state-machine tests.
type rawConn struct {
	t    testing.TB
	nc   net.Conn
	fr   *xh2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	dec  *hpack.Decoder
	last []hpack.HeaderField
}

// dialRaw connects and sends the preface and an empty SETTINGS frame.
func dialRaw(t testing.TB, addr string, settings ...xh2.Setting) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	rc := &rawConn{t: t, nc: nc, fr: xh2.NewFramer(nc, nc)}
	rc.enc = hpack.NewEncoder(&rc.hbuf)
	rc.dec = hpack.NewDecoder(4096, func(f hpack.HeaderField) { rc.last = append(rc.last, f) })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(nc, xh2.ClientPreface)
	rc.fr.WriteSettings(settings...)
	return rc
}

// block encodes fields (name, value pairs).
func (rc *rawConn) block(kv ...string) []byte {
	rc.hbuf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		rc.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return append([]byte(nil), rc.hbuf.Bytes()...)
}

// get is the block of a GET request for path.
func (rc *rawConn) get(path string) []byte {
	return rc.block(":method", "GET", ":scheme", "http", ":authority", "test", ":path", path)
}

// post is the block of a POST request for path with extra fields.
func (rc *rawConn) post(path string, kv ...string) []byte {
	return rc.block(append([]string{":method", "POST", ":scheme", "http", ":authority", "test", ":path", path}, kv...)...)
}

func (rc *rawConn) headers(id uint32, block []byte, end bool) {
	rc.fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: end, EndHeaders: true})
}

// next returns the next frame other than SETTINGS (acknowledged), PING
// acks and WINDOW_UPDATE, or nil when the connection closed.
func (rc *rawConn) next() xh2.Frame {
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			return nil
		}
		switch f := f.(type) {
		case *xh2.SettingsFrame:
			if !f.IsAck() {
				rc.fr.WriteSettingsAck()
			}
			continue
		case *xh2.WindowUpdateFrame:
			continue
		case *xh2.HeadersFrame:
			rc.last = rc.last[:0]
			rc.dec.Write(f.HeaderBlockFragment())
		}
		return f
	}
}

// expect reads frames until one satisfies ok, failing the test after
// others than skip allows or at the deadline.
func (rc *rawConn) expect(what string, ok func(xh2.Frame) bool) xh2.Frame {
	rc.t.Helper()
	for {
		f := rc.next()
		if f == nil {
			rc.t.Fatalf("connection closed while waiting for %s", what)
		}
		if ok(f) {
			return f
		}
	}
}

// expectGoAway waits for GOAWAY with code (or the connection's end).
func (rc *rawConn) expectGoAway(code ErrCode) {
	rc.t.Helper()
	for {
		f := rc.next()
		if f == nil {
			rc.t.Fatalf("connection closed without GOAWAY %v", code)
		}
		if ga, ok := f.(*xh2.GoAwayFrame); ok {
			if ga.ErrCode != code {
				rc.t.Fatalf("GOAWAY %v, want %v", ga.ErrCode, code)
			}
			return
		}
	}
}

// expectReset waits for RST_STREAM on id with code.
func (rc *rawConn) expectReset(id uint32, code ErrCode) {
	rc.t.Helper()
	for {
		f := rc.next()
		if f == nil {
			rc.t.Fatalf("connection closed without RST_STREAM %v on %d", code, id)
		}
		switch f := f.(type) {
		case *xh2.RSTStreamFrame:
			if f.StreamID == id {
				if f.ErrCode != code {
					rc.t.Fatalf("RST_STREAM %v on %d, want %v", f.ErrCode, id, code)
				}
				return
			}
		case *xh2.GoAwayFrame:
			rc.t.Fatalf("GOAWAY %v while waiting for RST_STREAM %v on %d", f.ErrCode, code, id)
		}
	}
}

// status returns :status of the last HEADERS frame read.
func (rc *rawConn) status() string {
	for _, f := range rc.last {
		if f.Name == ":status" {
			return f.Value
		}
	}
	return ""
}

// countingConn counts the Read and Write calls on a connection.
type countingConn struct {
	net.Conn
	reads, writes atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// CloseWrite keeps the delayed close working through the wrapper.
func (c *countingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// eventually polls cond until it holds (true) or five seconds pass
// (false). Unlike waitFor it may run on any goroutine.
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond) // polling a condition with a deadline
	}
	return true
}

// waitFor polls cond until it holds, failing the test after five seconds
// (test goroutine only).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !eventually(cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func asStreamError(err error, se **StreamError) bool { return errors.As(err, se) }

// recvBlocked reports whether the stream's receiving goroutine is waiting
// for data (a test hook: the wait is then certainly pending).
func (st *stream) recvBlocked() bool {
	st.c.mu.Lock()
	defer st.c.mu.Unlock()
	return st.recvWaiting
}

// sendBlocked reports whether the stream's sending goroutine is waiting
// for flow-control window.
func (st *stream) sendBlocked() bool {
	st.c.mu.Lock()
	defer st.c.mu.Unlock()
	return st.sendWaiting
}

// within receives from ch, failing the test when nothing comes within
// five seconds (a wait that was never woken).
func within[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: not woken within 5s", what)
	}
	var zero T
	return zero
}
