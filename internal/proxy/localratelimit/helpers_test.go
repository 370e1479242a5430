package localratelimit

import (
	"context"
	"testing"
	"time"

	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/httpfilter"
)

// recorder is a ResponseWriter that keeps the status and body.
type recorder struct {
	status  int
	hdr     headers.Response
	body    []byte
	sent    bool
	aborted bool
}

func (r *recorder) WriteHeaders(h *headers.Response, _ bool) error {
	r.status, r.sent = h.Status, true
	r.hdr.Reset()
	r.hdr.Status = h.Status
	r.hdr.Map.CopyFrom(&h.Map)
	return nil
}
func (r *recorder) Write(p []byte) (int, error) { r.body = append(r.body, p...); return len(p), nil }
func (r *recorder) Flush() error                { return nil }
func (r *recorder) Finish(*headers.Map) error   { return nil }
func (r *recorder) HeadersSent() bool           { return r.sent }
func (r *recorder) Abort()                      { r.aborted = true }
func (r *recorder) reset()                      { *r = recorder{} }

// newStream returns a stream for GET / with the given header pairs.
func newStream(w httpfilter.ResponseWriter, hdr ...string) *httpfilter.Stream {
	s := &httpfilter.Stream{Ctx: context.Background(), W: w}
	s.Req.Method = []byte("GET")
	s.Req.Path = []byte("/")
	s.Req.Authority = []byte("h")
	for i := 0; i+1 < len(hdr); i += 2 {
		s.Req.Add(hdr[i], hdr[i+1])
	}
	return s
}

func parseLRL(t testing.TB, y string) *lrlv3.LocalRateLimit {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var cfg lrlv3.LocalRateLimit
	if err := protojson.Unmarshal(js, &cfg); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	return &cfg
}

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
