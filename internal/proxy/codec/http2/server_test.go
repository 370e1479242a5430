package http2

import (
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xh2 "golang.org/x/net/http2"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// TestServerConnectionErrors: frames that break the protocol at the
// connection level get GOAWAY with the RFC 9113 error code.
func TestServerConnectionErrors(t *testing.T) {
	ts := startServer(t, ServerOptions{Handler: handlerFunc(echoHandler)})
	for _, c := range []struct {
		name string
		send func(rc *rawConn)
		code ErrCode
	}{
		{"DATA on an idle stream (§5.1)", func(rc *rawConn) { rc.fr.WriteData(1, true, []byte("x")) }, ErrCodeProtocol},
		{"RST_STREAM on an idle stream (§6.4)", func(rc *rawConn) { rc.fr.WriteRSTStream(1, ErrCodeCancel) }, ErrCodeProtocol},
		{"WINDOW_UPDATE on an idle stream (§5.1)", func(rc *rawConn) { rc.fr.WriteWindowUpdate(1, 10) }, ErrCodeProtocol},
		{"even stream id (§5.1.1)", func(rc *rawConn) { rc.headers(2, rc.get("/"), true) }, ErrCodeProtocol},
		{"decreasing stream id (§5.1.1)", func(rc *rawConn) {
			rc.headers(5, rc.get("/"), true)
			rc.headers(3, rc.get("/"), true)
		}, ErrCodeProtocol},
		{"HEADERS on a closed stream (§5.1)", func(rc *rawConn) {
			rc.headers(1, rc.get("/"), true)
			rc.expect("the response's end", func(f xh2.Frame) bool { return endsStream(f) })
			rc.headers(1, rc.get("/"), true)
		}, ErrCodeStreamClosed},
		{"invalid header block (§4.3)", func(rc *rawConn) { rc.headers(1, []byte{0xff, 0xff, 0xff, 0xff}, true) }, ErrCodeCompression},
		{"CONTINUATION without HEADERS (§6.10)", func(rc *rawConn) { rc.fr.WriteContinuation(1, true, rc.get("/")) }, ErrCodeProtocol},
		{"frame between HEADERS and CONTINUATION (§6.10)", func(rc *rawConn) {
			rc.fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.get("/"), EndStream: true})
			rc.fr.WritePing(false, [8]byte{})
		}, ErrCodeProtocol},
		{"PUSH_PROMISE from a client (§8.4)", func(rc *rawConn) {
			rc.fr.WritePushPromise(xh2.PushPromiseParam{StreamID: 1, PromiseID: 2, EndHeaders: true})
		}, ErrCodeProtocol},
		{"SETTINGS_ENABLE_PUSH 2 (§6.5.2)", func(rc *rawConn) { rc.fr.WriteSettings(xh2.Setting{ID: xh2.SettingEnablePush, Val: 2}) }, ErrCodeProtocol},
		{"SETTINGS_MAX_FRAME_SIZE too small (§6.5.2)", func(rc *rawConn) { rc.fr.WriteSettings(xh2.Setting{ID: xh2.SettingMaxFrameSize, Val: 100}) }, ErrCodeProtocol},
		{"connection window above 2^31-1 (§6.9.1)", func(rc *rawConn) {
			rc.fr.WriteWindowUpdate(0, maxWindow)
			rc.fr.WriteWindowUpdate(0, maxWindow)
		}, ErrCodeFlowControl},
		{"frame above SETTINGS_MAX_FRAME_SIZE (§4.2)", func(rc *rawConn) {
			rc.headers(1, rc.post("/"), false)
			rc.fr.WriteData(1, true, make([]byte, defaultMaxFrame+1))
		}, ErrCodeFrameSize},
		{"DATA padding beyond the payload (§6.1)", func(rc *rawConn) {
			rc.headers(1, rc.post("/"), false)
			rc.nc.Write([]byte{0, 0, 2, 0, 0x9, 0, 0, 0, 1, 5, 'x'}) // PADDED, pad length 5 > 1
		}, ErrCodeProtocol},
	} {
		t.Run(c.name, func(t *testing.T) {
			rc := dialRaw(t, ts.addr)
			c.send(rc)
			rc.expectGoAway(c.code)
			if rc.next() != nil {
				t.Fatal("the connection stayed open after GOAWAY")
			}
		})
	}
}

func endsStream(f xh2.Frame) bool {
	switch f := f.(type) {
	case *xh2.HeadersFrame:
		return f.StreamEnded()
	case *xh2.DataFrame:
		return f.StreamEnded()
	}
	return false
}

// TestServerStreamErrors: malformed requests and stream-level violations
// get RST_STREAM; the connection goes on. A request whose head is
// malformed (§8.2, §8.3) never reaches the handler. One whose body breaks
// the rules (§8.1, §8.1.1) had a valid head, which may have reached a
// handler before the body did (as with x/net or Envoy): that handler's
// body read fails with the reset and never sees the body complete.
func TestServerStreamErrors(t *testing.T) {
	var served atomic.Int64
	// The body read errors of the invalid requests' handlers, by client
	// address (a handler may still run when its subtest has ended).
	var mu sync.Mutex
	bodyErrs := map[string]error{}
	wantCode := map[string]ErrCode{}
	checkBodyErr := func(t *testing.T, client string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		err, ran := bodyErrs[client]
		var se *StreamError
		if ran && (!asStreamError(err, &se) || se.Code != wantCode[client]) {
			t.Errorf("the invalid request's handler read its body with %v, want RST_STREAM %v", err, wantCode[client])
		}
	}
	h := handlerFunc(func(st *ServerStream) {
		served.Add(1)
		if string(st.Request().Method) == "POST" { // the invalid requests are POSTs
			if string(st.Request().Path) == "/stall" {
				// Read nothing (no window goes back) until the reset.
				<-st.ResetSignal()
			}
			_, err := io.ReadAll(st)
			mu.Lock()
			bodyErrs[st.sc.c.nc.RemoteAddr().String()] = err
			mu.Unlock()
			return
		}
		echoHandler(st)
	})
	// The 64 KiB stream window of the case "stream beyond its window"
	// (the default is 1 MiB, the connection's as well).
	ts := startServer(t, ServerOptions{Handler: h, InitialStreamWindowSize: initialWindow})
	for _, c := range []struct {
		name string
		send func(rc *rawConn)
		code ErrCode
	}{
		{"connection-specific field (§8.2.2)", func(rc *rawConn) { rc.headers(1, rc.post("/", "connection", "keep-alive"), true) }, ErrCodeProtocol},
		{"te other than trailers (§8.2.2)", func(rc *rawConn) { rc.headers(1, rc.post("/", "te", "gzip"), true) }, ErrCodeProtocol},
		{"upper-case field name (§8.2.1)", func(rc *rawConn) { rc.headers(1, rc.post("/", "X-Upper", "1"), true) }, ErrCodeProtocol},
		{"field value with LF (§8.2.1)", func(rc *rawConn) { rc.headers(1, rc.post("/", "x-a", "a\nb"), true) }, ErrCodeProtocol},
		{"unknown pseudo-header (§8.3)", func(rc *rawConn) { rc.headers(1, rc.post("/", ":foo", "1"), true) }, ErrCodeProtocol},
		{":status in a request (§8.3)", func(rc *rawConn) { rc.headers(1, rc.post("/", ":status", "200"), true) }, ErrCodeProtocol},
		{"pseudo-header after a regular field (§8.3)", func(rc *rawConn) {
			rc.headers(1, rc.block(":method", "GET", ":scheme", "http", "x-a", "1", ":path", "/"), true)
		}, ErrCodeProtocol},
		{"missing :path (§8.3.1)", func(rc *rawConn) { rc.headers(1, rc.block(":method", "GET", ":scheme", "http"), true) }, ErrCodeProtocol},
		{"empty :path (§8.3.1)", func(rc *rawConn) { rc.headers(1, rc.block(":method", "GET", ":scheme", "http", ":path", ""), true) }, ErrCodeProtocol},
		{"repeated :method (§8.3)", func(rc *rawConn) { rc.headers(1, rc.post("/", ":method", "GET"), true) }, ErrCodeProtocol},
		{"content-length above the body (§8.1.1)", func(rc *rawConn) {
			rc.headers(1, rc.post("/", "content-length", "10"), false)
			rc.fr.WriteData(1, true, []byte("short"))
		}, ErrCodeProtocol},
		{"content-length below the body (§8.1.1)", func(rc *rawConn) {
			rc.headers(1, rc.post("/", "content-length", "2"), false)
			rc.fr.WriteData(1, false, []byte("longer"))
		}, ErrCodeProtocol},
		{"trailers without END_STREAM (§8.1)", func(rc *rawConn) {
			rc.headers(1, rc.post("/"), false)
			rc.fr.WriteData(1, false, []byte("x"))
			rc.headers(1, rc.block("x-trailer", "1"), false)
		}, ErrCodeProtocol},
		{"pseudo-header in trailers (§8.1)", func(rc *rawConn) {
			rc.headers(1, rc.post("/"), false)
			rc.headers(1, rc.block(":path", "/"), true)
		}, ErrCodeProtocol},
		{"stream depending on itself (§5.3.1)", func(rc *rawConn) { rc.fr.WritePriority(1, xh2.PriorityParam{StreamDep: 1, Weight: 1}) }, ErrCodeProtocol},
		{"stream window above 2^31-1 (§6.9.1)", func(rc *rawConn) {
			rc.fr.WriteSettings(xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: 0})
			rc.headers(1, rc.post("/stall"), false) // the stream stays open
			rc.fr.WriteWindowUpdate(1, maxWindow)
			rc.fr.WriteWindowUpdate(1, maxWindow)
		}, ErrCodeFlowControl},
		{"WINDOW_UPDATE of 0 on a stream (§6.9)", func(rc *rawConn) {
			rc.headers(1, rc.post("/"), false)
			rc.nc.Write([]byte{0, 0, 4, 8, 0, 0, 0, 0, 1, 0, 0, 0, 0})
		}, ErrCodeProtocol},
		{"DATA on a half-closed (remote) stream (§5.1)", func(rc *rawConn) {
			rc.fr.WriteSettings(xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: 0}) // keep it open
			rc.headers(1, rc.get("/"), true)
			rc.fr.WriteData(1, true, []byte("x"))
		}, ErrCodeStreamClosed},
		{"stream beyond its window (§6.9.1)", func(rc *rawConn) {
			rc.headers(1, rc.post("/stall"), false)
			for i := 0; i < 5; i++ {
				rc.fr.WriteData(1, false, make([]byte, 16<<10)) // 80 KiB > 64 KiB
			}
		}, ErrCodeFlowControl},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := served.Load()
			rc := dialRaw(t, ts.addr)
			client := rc.nc.LocalAddr().String()
			mu.Lock()
			wantCode[client] = c.code
			mu.Unlock()
			c.send(rc)
			rc.expectReset(1, c.code)
			// The connection is still usable.
			rc.headers(3, rc.get("/after"), true)
			rc.expect("a response on stream 3", func(f xh2.Frame) bool { h, ok := f.(*xh2.HeadersFrame); return ok && h.StreamID == 3 })
			if rc.status() != "200" {
				t.Fatalf("stream 3: status %q", rc.status())
			}
			bodyLevel := strings.Contains(c.name, "§8.1")
			if strings.Contains(c.name, "§8") && !bodyLevel && served.Load()-before != 1 {
				t.Fatalf("%d requests reached the handler, want only the valid one", served.Load()-before)
			}
			checkBodyErr(t, client)
		})
	}
	mu.Lock()
	clients := make([]string, 0, len(bodyErrs))
	for client := range bodyErrs {
		clients = append(clients, client)
	}
	mu.Unlock()
	for _, client := range clients {
		checkBodyErr(t, client)
	}
}

// TestServerMaxConcurrentStreams: a stream above the advertised limit is
// refused while the others are served.
func TestServerMaxConcurrentStreams(t *testing.T) {
	release := make(chan struct{})
	h := handlerFunc(func(st *ServerStream) {
		<-release
		echoHandler(st)
	})
	ts := startServer(t, ServerOptions{Handler: h, MaxConcurrentStreams: 2})
	defer close(release)
	rc := dialRaw(t, ts.addr)
	for id := uint32(1); id <= 5; id += 2 {
		rc.headers(id, rc.get("/"), true)
	}
	rc.expectReset(5, ErrCodeRefusedStream)
}

// TestServerSettingsInOrder: repeated SETTINGS values apply in order (RFC
// 9113 §6.5.3, h2spec 6.5.3/1, which x/net failed): the last window, 1,
// wins.
func TestServerSettingsInOrder(t *testing.T) {
	ts := startServer(t, ServerOptions{Handler: handlerFunc(echoHandler)})
	rc := dialRaw(t, ts.addr)
	rc.fr.WriteSettings(xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: 100}, xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: 1})
	rc.headers(1, rc.post("/abc"), false)
	rc.fr.WriteData(1, true, []byte("abc")) // echoed: a body of 3 bytes
	d := rc.expect("DATA", func(f xh2.Frame) bool { _, ok := f.(*xh2.DataFrame); return ok }).(*xh2.DataFrame)
	if d.Length != 1 {
		t.Fatalf("DATA of %d bytes, want 1 (the last INITIAL_WINDOW_SIZE)", d.Length)
	}
}

// TestServerPing: PING is acknowledged with its data; an ACK is not.
func TestServerPing(t *testing.T) {
	ts := startServer(t, ServerOptions{Handler: handlerFunc(echoHandler)})
	rc := dialRaw(t, ts.addr)
	rc.fr.WritePing(true, [8]byte{9})
	rc.fr.WritePing(false, [8]byte{1, 2, 3})
	p := rc.expect("PING", func(f xh2.Frame) bool { _, ok := f.(*xh2.PingFrame); return ok }).(*xh2.PingFrame)
	if !p.IsAck() || p.Data != [8]byte{1, 2, 3} {
		t.Fatalf("PING ack %v data %v, want an ACK of 1 2 3", p.IsAck(), p.Data)
	}
}

// TestServerContinuationAndPadding: a request split over HEADERS and
// CONTINUATION frames, with a padded DATA frame, is served as one.
func TestServerContinuationAndPadding(t *testing.T) {
	ts := startServer(t, ServerOptions{Handler: handlerFunc(echoHandler)})
	rc := dialRaw(t, ts.addr)
	block := rc.post("/split", "x-long", strings.Repeat("v", 100))
	rc.fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:5]})
	rc.fr.WriteContinuation(1, false, block[5:20])
	rc.fr.WriteContinuation(1, true, block[20:])
	rc.fr.WriteDataPadded(1, true, []byte("hello"), make([]byte, 7))
	rc.expect("the response head", func(f xh2.Frame) bool { _, ok := f.(*xh2.HeadersFrame); return ok })
	if rc.status() != "200" {
		t.Fatalf("status %q", rc.status())
	}
	d := rc.expect("DATA", func(f xh2.Frame) bool { _, ok := f.(*xh2.DataFrame); return ok }).(*xh2.DataFrame)
	if string(d.Data()) != "hello" {
		t.Fatalf("echoed %q, want the unpadded body", d.Data())
	}
}

// TestServerHeaderListTooLarge: a request over MaxHeaderListSize reaches
// the handler flagged, for a 431.
func TestServerHeaderListTooLarge(t *testing.T) {
	h := handlerFunc(func(st *ServerStream) {
		resp := headers.Response{Status: 200}
		if st.HeaderListTooLarge() {
			resp.Status = 431
		}
		st.WriteHeaders(&resp, true)
	})
	ts := startServer(t, ServerOptions{Handler: h, MaxHeaderListSize: 1024})
	rc := dialRaw(t, ts.addr)
	rc.headers(1, rc.post("/", "x-big", strings.Repeat("a", 2000)), true)
	rc.expect("the response", func(f xh2.Frame) bool { _, ok := f.(*xh2.HeadersFrame); return ok })
	if rc.status() != "431" {
		t.Fatalf("status %q, want 431", rc.status())
	}
	rc.headers(3, rc.post("/", "x-small", "a"), true)
	rc.expect("the response", func(f xh2.Frame) bool { _, ok := f.(*xh2.HeadersFrame); return ok })
	if rc.status() != "200" {
		t.Fatalf("status %q for a small request after a large one, want 200", rc.status())
	}
}

// TestServerClientReset: RST_STREAM from the client cancels the stream's
// context and reset signal, and fails its reads.
func TestServerClientReset(t *testing.T) {
	type result struct {
		readErr    error
		ctxErr     error
		gotSignal  bool
		doneClosed bool
	}
	started := make(chan struct{})
	results := make(chan result, 1)
	h := handlerFunc(func(st *ServerStream) {
		close(started)
		_, err := io.ReadAll(st)
		var r result
		r.readErr = err
		select {
		case <-st.ResetSignal():
			r.gotSignal = true
		case <-time.After(5 * time.Second):
		}
		select {
		case <-st.Done():
			r.doneClosed = true
		default:
		}
		r.ctxErr = st.Err()
		results <- r
	})
	ts := startServer(t, ServerOptions{Handler: h})
	rc := dialRaw(t, ts.addr)
	rc.headers(1, rc.post("/"), false)
	<-started
	rc.fr.WriteRSTStream(1, ErrCodeCancel)
	r := <-results
	var se *StreamError
	if !asStreamError(r.readErr, &se) || !se.Remote || se.Code != ErrCodeCancel {
		t.Errorf("read error %v, want the remote CANCEL", r.readErr)
	}
	if !r.gotSignal || !r.doneClosed || r.ctxErr == nil {
		t.Errorf("reset signal %v, Done closed %v, Err %v: the stream's cancellation was not signalled", r.gotSignal, r.doneClosed, r.ctxErr)
	}
}

// TestServerResponseBeforeRequestEnd: a response that completes while the
// request body is still open ends the stream with RST_STREAM NO_ERROR (RFC
// 9113 §8.1), which also ends a body read pending on another goroutine.
// The handler waits for that goroutine: a stream must not be used once
// ServeStream returned (see Handler).
func TestServerResponseBeforeRequestEnd(t *testing.T) {
	type result struct {
		blocked bool  // the read was pending when the response ended
		err     error // what it returned
	}
	results := make(chan result, 1)
	h := handlerFunc(func(st *ServerStream) {
		readErr := make(chan error, 1)
		go func() { _, err := io.ReadAll(st); readErr <- err }()
		blocked := eventually(st.recvBlocked)
		st.WriteHeaders(&headers.Response{Status: 413}, true)
		results <- result{blocked, <-readErr}
	})
	ts := startServer(t, ServerOptions{Handler: h})
	rc := dialRaw(t, ts.addr)
	rc.headers(1, rc.post("/"), false)
	rc.expectReset(1, ErrCodeNo)
	r := within(t, "the pending body read", results)
	if !r.blocked {
		t.Fatal("the body read never blocked")
	}
	if r.err != ErrStreamClosed {
		t.Fatalf("pending body read: %v, want ErrStreamClosed", r.err)
	}
}
