package http2

import (
	"io"
	"net"
	"sync"
	"testing"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// grpcMessage is a length-prefixed gRPC message of 100 bytes.
var grpcMessage = append([]byte{0, 0, 0, 0, 100}, make([]byte, 100)...)

// grpcUnaryHandler answers like a gRPC server's unary method: response
// HEADERS, one message, trailers with grpc-status.
type grpcUnaryHandler struct {
	pool sync.Pool // *grpcScratch
}

type grpcScratch struct {
	req  headers.Request
	resp headers.Response
	tr   headers.Map
	buf  [512]byte
}

func (h *grpcUnaryHandler) ServeStream(st *ServerStream) {
	sc, _ := h.pool.Get().(*grpcScratch)
	if sc == nil {
		sc = &grpcScratch{}
	}
	defer h.pool.Put(sc)
	st.TakeRequest(&sc.req)
	n := 0
	for {
		k, err := st.Read(sc.buf[n:])
		n += k
		if err != nil {
			break
		}
	}
	sc.resp.Reset()
	sc.resp.Status = 200
	sc.resp.Set("content-type", "application/grpc")
	st.WriteHeaders(&sc.resp, false)
	st.Write(sc.buf[:n])
	sc.tr.Reset()
	sc.tr.Set("grpc-status", "0")
	st.Finish(&sc.tr)
}

// countingListener wraps accepted connections in countingConn.
type countingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*countingConn
}

func (l *countingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Conn: nc}
	l.mu.Lock()
	l.conns = append(l.conns, cc)
	l.mu.Unlock()
	return cc, nil
}

func (l *countingListener) totals() (reads, writes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		reads += c.reads.Load()
		writes += c.writes.Load()
	}
	return reads, writes
}

// serveOn serves h on a counting loopback listener until the benchmark
// ends.
func serveOn(b *testing.B, h Handler) *countingListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	var wg sync.WaitGroup
	var scs []*ServerConn
	var mu sync.Mutex
	go func() {
		for {
			nc, err := cl.Accept()
			if err != nil {
				return
			}
			sc := NewServerConn(nc, ServerOptions{Handler: h})
			mu.Lock()
			scs = append(scs, sc)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); sc.Serve() }()
		}
	}()
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, sc := range scs {
			sc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return cl
}

// dialCounting opens a ClientConn whose socket counts reads and writes.
func dialCounting(b *testing.B, addr string) (*ClientConn, *countingConn) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	cn := &countingConn{Conn: nc}
	cc, err := NewClientConn(cn, ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close(); <-cc.Done() })
	return cc, cn
}

// unaryCall runs one gRPC-shaped unary call on cc.
type unaryCall struct {
	req  headers.Request
	resp headers.Response
	tr   headers.Map
	buf  [512]byte
}

func newUnaryCall() *unaryCall {
	u := &unaryCall{}
	u.req = *newRequest("POST", "/grpc.testing.TestService/UnaryCall")
	u.req.Set("content-type", "application/grpc")
	u.req.Set("te", "trailers")
	u.req.Set("grpc-timeout", "10S")
	return u
}

func (u *unaryCall) run(cc *ClientConn, body []byte) error {
	cs, err := cc.Open(&u.req, OpenOptions{Body: body, EndStream: true})
	if err != nil {
		return err
	}
	defer cs.Close()
	if _, err := cs.ReadHeaders(&u.resp); err != nil {
		return err
	}
	for {
		_, err := cs.Read(u.buf[:])
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	cs.TakeTrailers(&u.tr)
	if string(u.tr.Get("grpc-status")) != "0" {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// BenchmarkUnaryGRPC runs gRPC-shaped unary calls (100-byte message both
// ways) between the codec's client and server on loopback, one at a time,
// and reports the socket reads and writes per call on each side.
func BenchmarkUnaryGRPC(b *testing.B) {
	srv := serveOn(b, &grpcUnaryHandler{})
	cc, cn := dialCounting(b, srv.Addr().String())
	u := newUnaryCall()
	if err := u.run(cc, grpcMessage); err != nil { // warm-up: HPACK tables, pools
		b.Fatal(err)
	}
	r0, w0 := cn.reads.Load(), cn.writes.Load()
	sr0, sw0 := srv.totals()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := u.run(cc, grpcMessage); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	sr, sw := srv.totals()
	n := float64(b.N)
	b.ReportMetric(float64(cn.reads.Load()-r0)/n, "client-reads/op")
	b.ReportMetric(float64(cn.writes.Load()-w0)/n, "client-writes/op")
	b.ReportMetric(float64(sr-sr0)/n, "server-reads/op")
	b.ReportMetric(float64(sw-sw0)/n, "server-writes/op")
}

// proxyHandler forwards each stream to an upstream ClientConn the way the
// proxy's router does for a unary call: the complete request goes out
// with its HEADERS, the response comes back whole.
type proxyHandler struct {
	up   *ClientConn
	pool sync.Pool // *proxyScratch
}

type proxyScratch struct {
	req  headers.Request
	resp headers.Response
	tr   headers.Map
	buf  [32 << 10]byte
}

func (h *proxyHandler) ServeStream(st *ServerStream) {
	sc, _ := h.pool.Get().(*proxyScratch)
	if sc == nil {
		sc = &proxyScratch{}
	}
	defer h.pool.Put(sc)
	st.TakeRequest(&sc.req)
	n := 0
	for {
		k, err := st.Read(sc.buf[n:])
		n += k
		if err != nil {
			break
		}
	}
	cs, err := h.up.Open(&sc.req, OpenOptions{Body: sc.buf[:n], EndStream: true})
	if err != nil {
		st.Reset(ErrCodeInternal)
		return
	}
	defer cs.Close()
	cs.CancelOn(st.ResetSignal())
	end, err := cs.ReadHeaders(&sc.resp)
	if err != nil {
		st.Reset(ErrCodeInternal)
		return
	}
	st.WriteHeaders(&sc.resp, end)
	if end {
		return
	}
	for {
		k, err := cs.Read(sc.buf[:])
		if k > 0 {
			st.Write(sc.buf[:k])
			if m, ended := cs.Buffered(); m == 0 && !ended {
				st.Flush()
			}
		}
		if err != nil {
			break
		}
	}
	sc.tr.Reset()
	cs.TakeTrailers(&sc.tr)
	st.Finish(&sc.tr)
}

// BenchmarkUnaryGRPCProxied runs the same calls through a proxy built of
// the codec's two roles (client → proxy server → proxy client →
// upstream), and reports the proxy's socket reads and writes per call on
// its downstream and upstream sides: the target is one each.
func BenchmarkUnaryGRPCProxied(b *testing.B) {
	upstream := serveOn(b, &grpcUnaryHandler{})
	up, upConn := dialCounting(b, upstream.Addr().String())
	proxy := serveOn(b, &proxyHandler{up: up})
	cc, _ := dialCounting(b, proxy.Addr().String())
	u := newUnaryCall()
	if err := u.run(cc, grpcMessage); err != nil {
		b.Fatal(err)
	}
	dr0, dw0 := proxy.totals()
	ur0, uw0 := upConn.reads.Load(), upConn.writes.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := u.run(cc, grpcMessage); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	dr, dw := proxy.totals()
	n := float64(b.N)
	b.ReportMetric(float64(dr-dr0)/n, "proxy-down-reads/op")
	b.ReportMetric(float64(dw-dw0)/n, "proxy-down-writes/op")
	b.ReportMetric(float64(upConn.reads.Load()-ur0)/n, "proxy-up-reads/op")
	b.ReportMetric(float64(upConn.writes.Load()-uw0)/n, "proxy-up-writes/op")
}
