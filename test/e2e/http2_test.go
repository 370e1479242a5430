package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

// h2Proxy is a bootstrap with one HTTP listener ("front", codec AUTO)
// routing everything to the cluster "backend" at {{.host}}:{{.port}}, whose
// upstream protocol block is {{.protocol}} (see the h2* constants; "" is
// HTTP/1.1). {{.hcm}} holds extra connection manager fields (indented by
// ten spaces) or "".
const h2Proxy = adminHead + frontListener + frontHCM + `
{{.hcm}}` + allToBackend + `
  clusters:` + backendCluster + `
{{.protocol}}` + backendEndpoint

func startH2Proxy(t *testing.T, upstream, protocol string) *Proxy {
	t.Helper()
	return startH2ProxyHCM(t, upstream, protocol, "")
}

func startH2ProxyHCM(t *testing.T, upstream, protocol, hcm string) *Proxy {
	t.Helper()
	host, port := HostPort(upstream)
	return StartProxy(t, Render(t, h2Proxy, map[string]any{"host": host, "port": port, "protocol": protocol, "hcm": hcm}))
}

// echoUpstream answers every request with its body, reporting how the
// request arrived (protocol, length, transfer-encoding, body digest) in
// headers and sending a trailer after the body.
func echoUpstream(t *testing.T) string {
	return StartHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		sum := sha256.Sum256(body)
		h := w.Header()
		h.Set("Trailer", "X-Body-Sha256")
		h.Set("x-upstream-proto", r.Proto)
		h.Set("x-upstream-cl", strconv.FormatInt(r.ContentLength, 10))
		h.Set("x-upstream-te", fmt.Sprint(r.TransferEncoding))
		h.Set("x-upstream-trailer", r.Trailer.Get("x-req-trailer"))
		if r.URL.Query().Get("length") == "1" {
			h.Set("content-length", strconv.Itoa(len(body)))
			h.Del("Trailer")
		}
		w.WriteHeader(200)
		w.Write(body)
		if h.Get("Trailer") != "" {
			h.Set("X-Body-Sha256", hex.EncodeToString(sum[:]))
		}
	}))
}

// unsizedReader hides the length of a body, so that clients send it
// chunked (HTTP/1.1) or without content-length (HTTP/2).
type unsizedReader struct{ r io.Reader }

func (u unsizedReader) Read(p []byte) (int, error) { return u.r.Read(p) }

// TestHTTP2AndHTTP1Translation sends bodies both ways across a protocol
// change: HTTP/2 downstream to an HTTP/1.1 upstream and HTTP/1.1
// downstream to an HTTP/2 (h2c) upstream, with known and unknown lengths,
// and response trailers.
func TestHTTP2AndHTTP1Translation(t *testing.T) {
	up := echoUpstream(t)
	for _, c := range []struct {
		name      string
		protocol  string
		client    *http.Client
		wantProto string // what the upstream sees
	}{
		{"h2_to_h1", "", H2CClient(), "HTTP/1.1"},
		{"h1_to_h2", h2Explicit, Client(), "HTTP/2.0"},
		{"downstream_h1", h2Downstream, Client(), "HTTP/1.1"},
		{"downstream_h2", h2Downstream, H2CClient(), "HTTP/2.0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := startH2Proxy(t, up, c.protocol)
			// Idle client connections closed before the proxy drains, so
			// that the drain does not wait for them.
			t.Cleanup(c.client.CloseIdleConnections)
			body := payload(7, 1<<20+123)
			for _, b := range []struct {
				name   string
				body   func() io.Reader
				sized  bool
				length string // query: upstream sends content-length
			}{
				{"sized", func() io.Reader { return bytes.NewReader(body) }, true, "0"},
				{"unsized", func() io.Reader { return unsizedReader{bytes.NewReader(body)} }, false, "0"},
				{"sized_response_length", func() io.Reader { return bytes.NewReader(body) }, true, "1"},
			} {
				t.Run(b.name, func(t *testing.T) {
					req, _ := http.NewRequest("POST", p.URL("front")+"/echo?length="+b.length, b.body())
					resp, err := c.client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					got, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil {
						t.Fatalf("response body: %v", err)
					}
					if resp.StatusCode != 200 || !bytes.Equal(got, body) {
						t.Fatalf("status %d, %d bytes back, want 200 and the %d sent", resp.StatusCode, len(got), len(body))
					}
					if g := resp.Header.Get("x-upstream-proto"); g != c.wantProto {
						t.Errorf("upstream saw %s, want %s", g, c.wantProto)
					}
					checkUpstreamFraming(t, resp.Header, b.sized, len(body), c.wantProto)
					// Response trailers are checked where both legs are
					// HTTP/2. On an HTTP/1 leg Envoy drops trailers unless
					// http_protocol_options.enable_trailers is set; weft
					// forwards them (a benign difference, not asserted).
					sum := sha256.Sum256(body)
					bothH2 := c.wantProto == "HTTP/2.0" && resp.ProtoMajor == 2
					if bothH2 && b.length == "0" && resp.Trailer.Get("x-body-sha256") != hex.EncodeToString(sum[:]) {
						t.Errorf("response trailer x-body-sha256 = %q, want the body's digest (trailers: %v)", resp.Trailer.Get("x-body-sha256"), resp.Trailer)
					}
					if b.length == "1" && resp.ContentLength != int64(len(body)) {
						t.Errorf("response content-length %d, want %d", resp.ContentLength, len(body))
					}
				})
			}
		})
	}
}

// checkUpstreamFraming checks how the request body was framed upstream: a
// known length stays a content-length; an unknown one is chunked on
// HTTP/1.1 and has no content-length on HTTP/2.
func checkUpstreamFraming(t *testing.T, h http.Header, sized bool, n int, proto string) {
	t.Helper()
	cl, te := h.Get("x-upstream-cl"), h.Get("x-upstream-te")
	switch {
	case sized && cl != strconv.Itoa(n):
		t.Errorf("upstream content-length %s, want %d", cl, n)
	case !sized && cl != "-1":
		t.Errorf("upstream content-length %s, want none (-1)", cl)
	case !sized && proto == "HTTP/1.1" && te != "[chunked]":
		t.Errorf("upstream transfer-encoding %s, want [chunked]", te)
	case proto == "HTTP/2.0" && te != "[]":
		t.Errorf("upstream transfer-encoding %s over HTTP/2", te)
	}
}

// TestHTTP2RequestTrailers sends request trailers over HTTP/2: an HTTP/2
// upstream gets them; an HTTP/1.1 upstream does not, as with Envoy, whose
// HTTP/1 codec drops trailers unless http_protocol_options.enable_trailers
// is set.
func TestHTTP2RequestTrailers(t *testing.T) {
	up := echoUpstream(t)
	for _, c := range []struct{ name, protocol, want string }{{"to_h2", h2Explicit, "end"}, {"to_h1", "", ""}} {
		t.Run(c.name, func(t *testing.T) {
			p := startH2Proxy(t, up, c.protocol)
			pr, pw := io.Pipe()
			req, _ := http.NewRequest("POST", p.URL("front")+"/echo?length=0", pr)
			req.Trailer = http.Header{"X-Req-Trailer": nil}
			go func() {
				pw.Write([]byte("some body"))
				req.Trailer.Set("X-Req-Trailer", "end")
				pw.Close()
			}()
			client := H2CClient()
			t.Cleanup(client.CloseIdleConnections)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := resp.Header.Get("x-upstream-trailer"); got != c.want {
				t.Errorf("upstream request trailer x-req-trailer = %q, want %q", got, c.want)
			}
		})
	}
}

// TestHTTP2Drain checks graceful draining of HTTP/2: when the server
// shuts down, a client with a stream in flight gets GOAWAY (NO_ERROR,
// last-stream-id covering its stream), the stream completes, and the
// connection then closes.
func TestHTTP2Drain(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	var released atomic.Bool
	up := StartHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		io.WriteString(w, "finished")
	}))
	t.Cleanup(func() {
		if released.CompareAndSwap(false, true) {
			close(release)
		}
	})
	p := startH2Proxy(t, up, "")

	fr, conn := rawH2Conn(t, p.Addr("front"))
	writeGET(t, fr, 1, "/slow")
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the request did not reach the upstream")
	}

	shutdownDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdownDone <- p.Server().Shutdown(ctx)
	}()

	// GOAWAY first, while the stream is still in flight.
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for GOAWAY: %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID < 1 {
				t.Fatalf("GOAWAY %v last-stream-id %d, want NO_ERROR covering stream 1", ga.ErrCode, ga.LastStreamID)
			}
			break
		}
		if _, ok := f.(*http2.HeadersFrame); ok {
			t.Fatal("response before GOAWAY: the stream did not wait for the upstream")
		}
	}

	// Then the in-flight stream completes.
	released.Store(true)
	close(release)
	var status string
	var body []byte
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == ":status" {
			status = f.Value
		}
	})
	ended := false
	for !ended {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("in-flight stream after GOAWAY: %v (status %q, %d body bytes)", err, status, len(body))
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			dec.Write(f.HeaderBlockFragment())
			ended = f.StreamEnded()
		case *http2.DataFrame:
			body = append(body, f.Data()...)
			ended = f.StreamEnded()
		case *http2.RSTStreamFrame:
			t.Fatalf("in-flight stream reset (%v) instead of completing", f.ErrCode)
		}
	}
	if status != "200" || string(body) != "finished" {
		t.Fatalf("in-flight stream: status %q body %q, want 200 \"finished\"", status, body)
	}

	// Finally the proxy closes the connection and the shutdown ends.
	for {
		if _, err := fr.ReadFrame(); err != nil {
			break // EOF or reset: closed
		}
	}
	conn.Close() // the proxy lingers for the client's FIN (delayed close)
	select {
	case err := <-shutdownDone:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(8 * time.Second):
		t.Error("Shutdown did not return after the last stream ended")
	}
}

// rawH2Conn opens an h2c connection with a frame-level client: preface and
// an empty SETTINGS are sent, the server's SETTINGS acknowledged as they
// come by the callers' reads.
func rawH2Conn(t *testing.T, addr string) (*http2.Framer, net.Conn) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return fr, conn
}

// writeGET opens stream id with a GET for path, ending the stream.
func writeGET(t *testing.T, fr *http2.Framer, id uint32, path string) {
	t.Helper()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "example.com"}, {":path", path}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
}

// TestHTTP2StreamIdleTimeout checks stream_idle_timeout on HTTP/2 streams:
// a client that never opens its flow-control window has its stream reset
// after the timeout (flag SI), while a slow but active stream lives on.
func TestHTTP2StreamIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	up := StartHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/trickle" {
			for i := 0; i < 8; i++ {
				w.Write([]byte("tick\n"))
				w.(http.Flusher).Flush()
				time.Sleep(idle / 3) // pacing: the stream stays active
			}
			return
		}
		w.Write(make([]byte, 256<<10))
	}))
	p := startH2ProxyHCM(t, up, "", "          stream_idle_timeout: 0.3s")

	t.Run("stalled_reader_reset", func(t *testing.T) {
		fr, conn := rawH2Conn(t, p.Addr("front"))
		// A window of 0: the proxy can send the response headers, never
		// its body.
		if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		writeGET(t, fr, 1, "/big")
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("waiting for the stream to be reset: %v", err)
			}
			if rst, ok := f.(*http2.RSTStreamFrame); ok && rst.StreamID == 1 {
				break
			}
			if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
				fr.WriteSettingsAck()
			}
		}
		if el := time.Since(start); el < idle*8/10 {
			t.Errorf("reset after %v, before the %v idle timeout", el, idle)
		}
		info := p.NextStream(0)
		if info.Flags&streaminfo.StreamIdleTimeout == 0 {
			t.Errorf("flags %v, want SI", info.Flags)
		}
		if n := p.Stat("http.front.downstream_rq_idle_timeout"); n != 1 {
			t.Errorf("http.front.downstream_rq_idle_timeout = %d, want 1", n)
		}
	})

	t.Run("active_stream_survives", func(t *testing.T) {
		client := H2CClient()
		t.Cleanup(client.CloseIdleConnections)
		resp, err := client.Get(p.URL("front") + "/trickle")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || len(body) != 8*len("tick\n") {
			t.Fatalf("%d bytes, %v: a stream active every %v was cut by the %v idle timeout", len(body), err, idle/3, idle)
		}
	})
}
