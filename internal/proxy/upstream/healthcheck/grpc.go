package healthcheck

import (
	"encoding/binary"
	"io"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/upstream/pool"
)

// grpcProber calls grpc.health.v1.Health/Check over HTTP/2 with the
// configured service_name and authority (default: the cluster name), as
// Envoy's gRPC health checker does. The check passes when the call ends
// with grpc-status 0 and the response says SERVING; any other answer fails
// the host at once, and a transport failure counts as a network failure.
type grpcProber struct {
	cfg      *Config
	po       pool.Options
	h2       *pool.H2
	req      headers.Request
	body     []byte
	resp     headers.Response
	trailers headers.Map
	buf      []byte
}

func newGRPCProber(cfg *Config, po pool.Options) *grpcProber {
	p := &grpcProber{cfg: cfg, po: po, h2: pool.NewH2(po, pool.H2Options{}), buf: make([]byte, 0, 512)}
	p.req.Method = []byte("POST")
	p.req.Scheme = []byte(scheme(po))
	p.req.Authority = []byte(cfg.Host)
	p.req.Path = []byte("/grpc.health.v1.Health/Check")
	p.req.Add("content-type", "application/grpc")
	p.req.Add("te", "trailers")
	p.req.Add("user-agent", "Envoy/HC")
	msg, _ := proto.Marshal(&healthpb.HealthCheckRequest{Service: cfg.ServiceName})
	p.body = make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(p.body[1:5], uint32(len(msg)))
	copy(p.body[5:], msg)
	return p
}

func (p *grpcProber) probe(deadline time.Time) result {
	defer p.recycle()
	cs, done, err := openH2(p.h2, &p.req, p.body, deadline)
	if err != nil {
		return failedNetwork
	}
	defer done()
	end, err := cs.ReadHeaders(&p.resp)
	if err != nil {
		return failedNetwork
	}
	if p.resp.Status != 200 {
		return failedActive
	}
	if end { // trailers-only: an error status
		return statusResult(p.resp.Get("grpc-status"), nil)
	}
	msg, err := io.ReadAll(io.LimitReader(cs, maxBody))
	if err != nil {
		return failedNetwork
	}
	p.trailers.Reset()
	cs.TakeTrailers(&p.trailers)
	return statusResult(p.trailers.Get("grpc-status"), msg)
}

// statusResult passes a call that ended with grpc-status 0 and one
// uncompressed HealthCheckResponse saying SERVING.
func statusResult(status []byte, msg []byte) result {
	if string(status) != "0" || len(msg) < 5 || msg[0] != 0 {
		return failedActive
	}
	n := binary.BigEndian.Uint32(msg[1:5])
	if uint64(len(msg)-5) < uint64(n) {
		return failedActive
	}
	var r healthpb.HealthCheckResponse
	if proto.Unmarshal(msg[5:5+n], &r) != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return failedActive
	}
	return passed
}

func (p *grpcProber) recycle() {
	if !p.cfg.ReuseConnection {
		p.h2.Close()
		p.h2 = pool.NewH2(p.po, pool.H2Options{})
	}
}

func (p *grpcProber) close() { p.h2.Close() }
