package http2

import (
	"bytes"
	"io"
	"testing"

	xh2 "golang.org/x/net/http2"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// readFrame reads the next frame other than SETTINGS and PING.
func (rc *rawConn) readFrame() xh2.Frame {
	rc.t.Helper()
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			rc.t.Fatalf("read: %v", err)
		}
		switch f := f.(type) {
		case *xh2.SettingsFrame:
			if !f.IsAck() {
				rc.fr.WriteSettingsAck()
			}
			continue
		case *xh2.PingFrame:
			continue
		}
		return f
	}
}

// TestWindowUpdateBatching: consumed request bytes are returned to the
// client once half a window is consumed, not per read.
func TestWindowUpdateBatching(t *testing.T) {
	steps := make(chan int)
	h := handlerFunc(func(st *ServerStream) {
		st.WriteHeaders(&headers.Response{Status: 200}, false)
		buf := make([]byte, 64<<10)
		for n := range steps {
			if _, err := io.ReadFull(st, buf[:n]); err != nil {
				return
			}
			st.Write([]byte("k")) // the client sees what the read sent before this
			st.Flush()
		}
		st.Finish(nil)
	})
	const window = 64 << 10
	ts := startServer(t, ServerOptions{Handler: h, InitialStreamWindowSize: window, InitialConnectionWindowSize: 4 * window})
	rc := dialRaw(t, ts.addr)
	rc.headers(1, rc.post("/"), false)
	rc.fr.WriteData(1, false, make([]byte, 12<<10))
	rc.fr.WriteData(1, false, make([]byte, 8<<10))
	steps <- 20 << 10 // under half the window: no WINDOW_UPDATE yet
	for {
		f := rc.readFrame()
		if wu, ok := f.(*xh2.WindowUpdateFrame); ok && wu.StreamID == 1 {
			t.Fatalf("WINDOW_UPDATE +%d after 20 KiB of a 64 KiB window", wu.Increment)
		}
		if d, ok := f.(*xh2.DataFrame); ok && d.StreamID == 1 {
			break
		}
	}
	rc.fr.WriteData(1, false, make([]byte, 16<<10))
	steps <- 16 << 10 // 36 KiB consumed: over half, one update for all of it
	var inc uint32
	for {
		f := rc.readFrame()
		if wu, ok := f.(*xh2.WindowUpdateFrame); ok && wu.StreamID == 1 {
			inc += wu.Increment
		}
		if d, ok := f.(*xh2.DataFrame); ok && d.StreamID == 1 {
			break
		}
	}
	if inc != 36<<10 {
		t.Fatalf("stream WINDOW_UPDATE total %d, want %d (the bytes consumed)", inc, 36<<10)
	}
	close(steps)
}

// TestConnectionWindowBoundsBuffering: streams together cannot send more
// than the connection window, whatever their stream windows.
func TestConnectionWindowBoundsBuffering(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	h := handlerFunc(func(st *ServerStream) { <-block })
	ts := startServer(t, ServerOptions{Handler: h, InitialStreamWindowSize: 1 << 20, InitialConnectionWindowSize: initialWindow})
	rc := dialRaw(t, ts.addr)
	rc.headers(1, rc.post("/"), false)
	rc.headers(3, rc.post("/"), false)
	for i := 0; i < 3; i++ {
		rc.fr.WriteData(1, false, make([]byte, 16<<10))
		rc.fr.WriteData(3, false, make([]byte, 16<<10)) // 96 KiB in all > 64 KiB
	}
	rc.expectGoAway(ErrCodeFlowControl)
}

// TestSendWindowFollowsSettings: the server's send windows follow the
// client's SETTINGS_INITIAL_WINDOW_SIZE changes, below zero included (RFC
// 9113 §6.9.2).
func TestSendWindowFollowsSettings(t *testing.T) {
	ts := startServer(t, ServerOptions{Handler: handlerFunc(echoHandler)})
	rc := dialRaw(t, ts.addr, xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: 3})
	rc.headers(1, rc.post("/"), false)
	rc.fr.WriteData(1, true, []byte("abcdefgh"))
	d := rc.expect("DATA", func(f xh2.Frame) bool { _, ok := f.(*xh2.DataFrame); return ok }).(*xh2.DataFrame)
	if string(d.Data()) != "abc" {
		t.Fatalf("first DATA %q, want the 3-byte window's worth", d.Data())
	}
	// Window 3 → 2: the stream's window is now -1; +2 makes it 1.
	rc.fr.WriteSettings(xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: 2})
	rc.fr.WriteWindowUpdate(1, 2)
	d = rc.expect("DATA", func(f xh2.Frame) bool { _, ok := f.(*xh2.DataFrame); return ok }).(*xh2.DataFrame)
	if string(d.Data()) != "d" {
		t.Fatalf("DATA %q after the window went to -1 then +2, want one byte", d.Data())
	}
	// Raising the initial window opens the stream's window by the
	// difference.
	rc.fr.WriteSettings(xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: 100})
	var got []byte
	for len(got) < 4 {
		f := rc.expect("DATA", func(f xh2.Frame) bool { _, ok := f.(*xh2.DataFrame); return ok }).(*xh2.DataFrame)
		got = append(got, f.Data()...)
	}
	if string(got) != "efgh" {
		t.Fatalf("rest %q, want efgh", got)
	}
}

// TestConnectionSendWindow: the server stops at the client's connection
// window and resumes on its WINDOW_UPDATE.
func TestConnectionSendWindow(t *testing.T) {
	body := bytes.Repeat([]byte("z"), 100<<10)
	h := handlerFunc(func(st *ServerStream) {
		st.WriteHeaders(&headers.Response{Status: 200}, false)
		st.Write(body)
		st.Finish(nil)
	})
	ts := startServer(t, ServerOptions{Handler: h})
	rc := dialRaw(t, ts.addr, xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: 1 << 20})
	rc.headers(1, rc.get("/"), true)
	total := 0
	for total < initialWindow {
		if d, ok := rc.readFrame().(*xh2.DataFrame); ok {
			total += len(d.Data())
		}
	}
	if total != initialWindow {
		t.Fatalf("%d bytes before any connection WINDOW_UPDATE, want exactly %d", total, initialWindow)
	}
	rc.fr.WriteWindowUpdate(0, 10)
	d := rc.expect("DATA", func(f xh2.Frame) bool { _, ok := f.(*xh2.DataFrame); return ok }).(*xh2.DataFrame)
	if len(d.Data()) != 10 {
		t.Fatalf("%d bytes after a connection WINDOW_UPDATE of 10", len(d.Data()))
	}
}

// TestSlowReaderLargeBodies: 8 MiB each way between the codec's client and
// server with the smallest windows: flow control throttles both sides and
// nothing is lost or reordered.
func TestSlowReaderLargeBodies(t *testing.T) {
	ts := startServer(t, ServerOptions{Handler: handlerFunc(echoHandler), InitialStreamWindowSize: initialWindow, InitialConnectionWindowSize: initialWindow})
	cc := dialClient(t, ts.addr, ClientOptions{InitialStreamWindowSize: initialWindow, InitialConnectionWindowSize: initialWindow})
	body := make([]byte, 8<<20)
	for i := range body {
		body[i] = byte(i * 7)
	}
	resp, got, tr, err := roundTrip(cc, newRequest("POST", "/big"), body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || !bytes.Equal(got, body) || string(tr.Get("x-len")) != "8388608" {
		t.Fatalf("status %d, %d bytes back (equal %v), x-len %q", resp.Status, len(got), bytes.Equal(got, body), tr.Get("x-len"))
	}
}
