package http2

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	xh2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// fuzzSeeds are frame sequences (after the client preface): valid
// exchanges and the shapes of h2spec's failure cases.
func fuzzSeeds() [][]byte {
	var out [][]byte
	frames := func(fn func(fr *xh2.Framer, enc *hpack.Encoder, hb *bytes.Buffer)) []byte {
		var b, hb bytes.Buffer
		fr := xh2.NewFramer(&b, nil)
		fr.AllowIllegalWrites = true
		fr.WriteSettings(xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: 10})
		fn(fr, hpack.NewEncoder(&hb), &hb)
		return b.Bytes()
	}
	block := func(enc *hpack.Encoder, hb *bytes.Buffer, kv ...string) []byte {
		hb.Reset()
		for i := 0; i+1 < len(kv); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return append([]byte(nil), hb.Bytes()...)
	}
	req := []string{":method", "POST", ":scheme", "http", ":authority", "a", ":path", "/p"}
	out = append(out, frames(func(fr *xh2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: 1, BlockFragment: block(enc, hb, req...), EndHeaders: true})
		fr.WriteData(1, false, []byte("hello"))
		fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: 1, BlockFragment: block(enc, hb, "x-t", "1"), EndHeaders: true, EndStream: true})
		fr.WritePing(false, [8]byte{1})
		fr.WriteWindowUpdate(0, 100)
		fr.WriteWindowUpdate(1, 100)
	}))
	out = append(out, frames(func(fr *xh2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		b := block(enc, hb, append(req, "content-length", "3")...)
		fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: 3, BlockFragment: b[:4]})
		fr.WriteContinuation(3, true, b[4:])
		fr.WriteDataPadded(3, true, []byte("abc"), make([]byte, 4))
		fr.WriteRSTStream(3, ErrCodeCancel)
		fr.WritePriority(5, xh2.PriorityParam{StreamDep: 3})
		fr.WriteGoAway(0, ErrCodeNo, nil)
	}))
	out = append(out, frames(func(fr *xh2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: 1, BlockFragment: block(enc, hb, req...), EndHeaders: true, EndStream: true})
		fr.WriteSettings(xh2.Setting{ID: xh2.SettingInitialWindowSize, Val: 1}, xh2.Setting{ID: xh2.SettingMaxFrameSize, Val: 1 << 20})
		fr.WriteData(1, true, []byte("late"))
		fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0xff, 0x80}, EndHeaders: true})
	}))
	return out
}

// fuzzHandler reads a bounded body and answers with headers, body and
// trailers, as the proxy does.
func fuzzHandler(active *atomic.Int64) Handler {
	return handlerFunc(func(st *ServerStream) {
		active.Add(1)
		defer active.Add(-1)
		echoHandler(st)
	})
}

// FuzzServerConn feeds arbitrary frames to a server connection: it must
// never panic, Serve must return once the client goes away, and every
// handler must end (no stream left waiting: nothing deadlocks). Memory is
// bounded by construction (windows, header limits, write back-pressure);
// the small windows here keep each input cheap.
func FuzzServerConn(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		var active atomic.Int64
		sc := NewServerConn(server, ServerOptions{
			Handler:                     fuzzHandler(&active),
			MaxConcurrentStreams:        8,
			InitialStreamWindowSize:     initialWindow,
			InitialConnectionWindowSize: initialWindow,
			MaxHeaderListSize:           4 << 10,
			DelayedCloseTimeout:         10 * time.Millisecond,
		})
		done := make(chan struct{})
		go func() {
			sc.Serve()
			close(done)
		}()
		go io.Copy(io.Discard, client) // responses
		client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		client.Write([]byte(xh2.ClientPreface))
		client.Write(data)
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return after the client closed")
		}
		deadline := time.Now().Add(5 * time.Second)
		for active.Load() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d handlers still running after the connection ended", active.Load())
			}
			time.Sleep(time.Millisecond) // polling a condition with a deadline
		}
	})
}
