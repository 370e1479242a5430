package http2

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	xh2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// startH2C serves h with net/http's HTTP/2 server (h2c prior knowledge).
func startH2C(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, Protocols: new(http.Protocols)}
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestClientAgainstNetHTTP: the codec's client against net/http's HTTP/2
// server: bodies both ways, trailers both ways, concurrent streams.
func TestClientAgainstNetHTTP(t *testing.T) {
	addr := startH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Got-Trailer")
		w.Header().Set("x-method", r.Method)
		w.Header().Set("x-proto", r.Proto)
		w.Write(body)
		w.Header().Set("X-Got-Trailer", r.Trailer.Get("x-req-trailer"))
	}))
	cc := dialClient(t, addr, ClientOptions{})

	body := bytes.Repeat([]byte("0123456789"), 300_000)
	req := newRequest("POST", "/upload")
	req.Set("trailer", "x-req-trailer")
	var tr headers.Map
	tr.Set("x-req-trailer", "sent after the body")
	cs, err := cc.Open(req, OpenOptions{Body: body, Trailers: &tr, EndStream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	var resp headers.Response
	if _, err := cs.ReadHeaders(&resp); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(cs)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("%d bytes back, %v", len(got), err)
	}
	var rt headers.Map
	cs.TakeTrailers(&rt)
	if resp.Status != 200 || string(resp.Get("x-proto")) != "HTTP/2.0" || string(rt.Get("x-got-trailer")) != "sent after the body" {
		t.Fatalf("status %d x-proto %q response trailer %q", resp.Status, resp.Get("x-proto"), rt.Get("x-got-trailer"))
	}

	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := []byte(strings.Repeat("x", i*100))
			resp, got, _, err := roundTrip(cc, newRequest("PUT", "/c"), b)
			if err == nil && (resp.Status != 200 || !bytes.Equal(got, b) || string(resp.Get("x-method")) != "PUT") {
				err = errors.New("concurrent stream: wrong response")
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// grpcFrame length-prefixes a message.
func grpcFrame(m proto.Message) []byte {
	b, _ := proto.Marshal(m)
	out := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)))
	return append(out, b...)
}

// TestClientAgainstGRPC: the codec's client calls a grpc-go server: a
// unary call with its trailers, and an unknown method answered
// trailers-only.
func TestClientAgainstGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	cc := dialClient(t, ln.Addr().String(), ClientOptions{})

	call := func(path string) (*headers.Response, bool, []byte, *headers.Map) {
		req := newRequest("POST", path)
		req.Set("content-type", "application/grpc")
		req.Set("te", "trailers")
		cs, err := cc.Open(req, OpenOptions{Body: grpcFrame(&healthpb.HealthCheckRequest{}), EndStream: true})
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		resp := &headers.Response{}
		end, err := cs.ReadHeaders(resp)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(cs)
		if err != nil {
			t.Fatal(err)
		}
		tr := &headers.Map{}
		cs.TakeTrailers(tr)
		return resp, end, body, tr
	}
	resp, end, body, tr := call("/grpc.health.v1.Health/Check")
	var hc healthpb.HealthCheckResponse
	if end || len(body) < 5 || proto.Unmarshal(body[5:], &hc) != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check: end %v, %d body bytes, status %v", end, len(body), hc.GetStatus())
	}
	if resp.Status != 200 || string(tr.Get("grpc-status")) != "0" {
		t.Fatalf("Check: %d, trailers %v", resp.Status, tr.Fields)
	}
	resp, end, _, _ = call("/no.Such/Method")
	if !end || string(resp.Get("grpc-status")) != "12" {
		t.Fatalf("unknown method: end %v grpc-status %q, want a trailers-only UNIMPLEMENTED", end, resp.Get("grpc-status"))
	}
}

// TestServerAgainstNetHTTPClient: x/net's HTTP/2 client against the
// codec's server.
func TestServerAgainstNetHTTPClient(t *testing.T) {
	ts := startServer(t, ServerOptions{Handler: handlerFunc(echoHandler)})
	tr := &xh2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	body := bytes.Repeat([]byte("abc"), 700_000)
	resp, err := client.Post("http://"+ts.addr+"/x?y=1", "text/plain", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("%d bytes back: %v", len(got), err)
	}
	if resp.Header.Get("x-path") != "/x?y=1" || resp.Trailer.Get("x-len") != "2100000" {
		t.Fatalf("x-path %q trailer x-len %q", resp.Header.Get("x-path"), resp.Trailer.Get("x-len"))
	}
}

// healthHandler answers grpc.health.v1.Health/Check as a gRPC server.
func healthHandler(st *ServerStream) {
	io.Copy(io.Discard, st)
	resp := headers.Response{Status: 200}
	resp.Set("content-type", "application/grpc")
	st.WriteHeaders(&resp, false)
	st.Write(grpcFrame(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}))
	var tr headers.Map
	tr.Set("grpc-status", "0")
	st.Finish(&tr)
}

// TestServerAgainstGRPCClient: grpc-go's client against the codec's
// server.
func TestServerAgainstGRPCClient(t *testing.T) {
	ts := startServer(t, ServerOptions{Handler: handlerFunc(healthHandler)})
	conn, err := grpc.NewClient(ts.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("call %d: %v %v", i, r, err)
		}
	}
}

// fakeServer accepts one connection, exchanges SETTINGS and runs fn with a
// framer on it (a server whose misbehaviour tests control).
func fakeServer(t *testing.T, fn func(fr *xh2.Framer, dec *hpack.Decoder)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		preface := make([]byte, len(xh2.ClientPreface))
		if _, err := io.ReadFull(nc, preface); err != nil {
			return
		}
		fr := xh2.NewFramer(nc, nc)
		fr.WriteSettings()
		fn(fr, hpack.NewDecoder(4096, nil))
	}()
	return ln.Addr().String()
}

// nextHeaders reads frames until a HEADERS frame and returns its stream.
func nextHeaders(fr *xh2.Framer) uint32 {
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return 0
		}
		if sf, ok := f.(*xh2.SettingsFrame); ok && !sf.IsAck() {
			fr.WriteSettingsAck()
		}
		if h, ok := f.(*xh2.HeadersFrame); ok {
			return h.StreamID
		}
	}
}

func respond200(fr *xh2.Framer, id uint32) {
	var b bytes.Buffer
	hpack.NewEncoder(&b).WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	fr.WriteHeaders(xh2.HeadersFrameParam{StreamID: id, BlockFragment: b.Bytes(), EndHeaders: true, EndStream: true})
}

// TestClientGoAway: streams above a GOAWAY's last stream id fail as
// unprocessed (retryable); the others complete; no new stream opens.
func TestClientGoAway(t *testing.T) {
	addr := fakeServer(t, func(fr *xh2.Framer, _ *hpack.Decoder) {
		a, b := nextHeaders(fr), nextHeaders(fr)
		fr.WriteGoAway(min(a, b), ErrCodeNo, nil)
		respond200(fr, min(a, b))
		io.Copy(io.Discard, struct{ io.Reader }{readerOf(fr)})
	})
	cc := dialClient(t, addr, ClientOptions{})
	cs1, err := cc.Open(newRequest("GET", "/1"), OpenOptions{EndStream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cs1.Close()
	cs3, err := cc.Open(newRequest("GET", "/3"), OpenOptions{EndStream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cs3.Close()
	var resp headers.Response
	if _, err := cs3.ReadHeaders(&resp); !errors.Is(err, ErrUnprocessed) {
		t.Fatalf("stream above GOAWAY: %v, want ErrUnprocessed", err)
	}
	if _, err := cs1.ReadHeaders(&resp); err != nil || resp.Status != 200 {
		t.Fatalf("stream below GOAWAY: %d %v, want 200", resp.Status, err)
	}
	if _, err := cc.Open(newRequest("GET", "/5"), OpenOptions{EndStream: true}); !errors.Is(err, ErrUnprocessed) {
		t.Fatalf("Open after GOAWAY: %v, want ErrUnprocessed", err)
	}
	if cc.CanOpen() {
		t.Fatal("CanOpen after GOAWAY")
	}
}

// readerOf drains a framer's connection until it ends.
func readerOf(fr *xh2.Framer) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		if _, err := fr.ReadFrame(); err != nil {
			return 0, err
		}
		return len(p), nil
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestClientRefusedStream: REFUSED_STREAM is reported as unprocessed.
func TestClientRefusedStream(t *testing.T) {
	addr := fakeServer(t, func(fr *xh2.Framer, _ *hpack.Decoder) {
		fr.WriteRSTStream(nextHeaders(fr), ErrCodeRefusedStream)
		io.Copy(io.Discard, readerOf(fr))
	})
	cc := dialClient(t, addr, ClientOptions{})
	cs, err := cc.Open(newRequest("GET", "/"), OpenOptions{EndStream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	var resp headers.Response
	_, err = cs.ReadHeaders(&resp)
	var se *StreamError
	if !errors.Is(err, ErrUnprocessed) || !errors.As(err, &se) || !se.Remote {
		t.Fatalf("refused stream: %v, want a remote StreamError that is ErrUnprocessed", err)
	}
}

// TestClientPeerMaxStreams: the server's SETTINGS_MAX_CONCURRENT_STREAMS is
// known once NewClientConn returns and enforced by Open.
func TestClientPeerMaxStreams(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	ts := startServer(t, ServerOptions{Handler: handlerFunc(func(st *ServerStream) { <-release }), MaxConcurrentStreams: 2})
	cc := dialClient(t, ts.addr, ClientOptions{})
	if n := cc.PeerMaxConcurrentStreams(); n != 2 {
		t.Fatalf("PeerMaxConcurrentStreams %d, want 2", n)
	}
	for i := 0; i < 2; i++ {
		cs, err := cc.Open(newRequest("GET", "/"), OpenOptions{EndStream: true})
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
	}
	if _, err := cc.Open(newRequest("GET", "/"), OpenOptions{EndStream: true}); !errors.Is(err, ErrUnprocessed) {
		t.Fatalf("third stream: %v, want ErrUnprocessed", err)
	}
}

// TestClientDeadlineAndCancel: a read deadline or the cancel signal ends a
// wait for the response and resets the stream (RST_STREAM CANCEL), which
// the server's handler sees. Each reset is triggered only once the
// handler runs: a stream whose HEADERS and RST_STREAM the server reads in
// one batch is never handed to a handler (see Handler).
func TestClientDeadlineAndCancel(t *testing.T) {
	started := make(chan struct{}, 2)
	resets := make(chan error, 2)
	h := handlerFunc(func(st *ServerStream) {
		started <- struct{}{}
		<-st.ResetSignal()
		_, err := st.Read(make([]byte, 1))
		resets <- err
	})
	ts := startServer(t, ServerOptions{Handler: h})
	cc := dialClient(t, ts.addr, ClientOptions{})
	var resp headers.Response

	cs, err := cc.Open(newRequest("POST", "/"), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	cs.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := cs.ReadHeaders(&resp); !errors.Is(err, ErrTimeout) {
		t.Fatalf("past the deadline: %v, want ErrTimeout", err)
	}
	cs.Close()

	cs, err = cc.Open(newRequest("POST", "/"), OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	sig := make(chan struct{}, 1)
	cs.CancelOn(sig)
	sig <- struct{}{}
	if _, err := cs.ReadHeaders(&resp); !errors.Is(err, ErrCanceled) {
		t.Fatalf("canceled: %v, want ErrCanceled", err)
	}
	cs.Close()
	for i := 0; i < 2; i++ {
		var se *StreamError
		if err := <-resets; !errors.As(err, &se) || se.Code != ErrCodeCancel {
			t.Fatalf("server side: %v, want RST_STREAM CANCEL", err)
		}
	}
}
