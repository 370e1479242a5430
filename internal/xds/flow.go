package xds

import (
	"context"
	"sync"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// sendBudget bounds the bytes of responses sent to proxies and not yet
// acknowledged, across all streams. gRPC queues a sent message in memory
// until the proxy reads it, so without a bound a push to hundreds of
// proxies holds every proxy's encoded configuration at once (hundreds of
// MiB for a 1,000-service mesh). With it, a stream's Send waits until
// enough earlier responses were ACKed or NACKed (Istio bounds concurrent
// pushes the same way, PILOT_PUSH_THROTTLE). A proxy that does not answer
// within holdTimeout stops counting, so a stuck proxy cannot stall the
// others; one response larger than the budget is sent alone.
type sendBudget struct {
	capacity    int64
	holdTimeout time.Duration

	mu    sync.Mutex
	used  int64
	holds map[*hold]struct{}
	wake  chan struct{} // closed and replaced when budget is released
	// idle gets a token (never blocking) each time the last held byte is
	// released: every response sent so far was answered.
	idle chan struct{}
}

// hold is budget held by one sent response.
type hold struct {
	n  int64
	at time.Time
}

func newSendBudget(capacity int64, holdTimeout time.Duration) *sendBudget {
	return &sendBudget{capacity: capacity, holdTimeout: holdTimeout, holds: map[*hold]struct{}{},
		wake: make(chan struct{}), idle: make(chan struct{}, 1)}
}

// acquire waits until n bytes fit (or nothing else is held) and returns
// the hold, or nil when ctx ends first.
func (b *sendBudget) acquire(ctx context.Context, n int64) *hold {
	for {
		b.mu.Lock()
		now := time.Now()
		next := b.expire(now)
		if b.used+n <= b.capacity || b.used == 0 {
			h := &hold{n: n, at: now}
			b.holds[h] = struct{}{}
			b.used += n
			b.mu.Unlock()
			return h
		}
		wake := b.wake
		b.mu.Unlock()
		t := time.NewTimer(next.Sub(now))
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
		t.Stop()
	}
}

// expire drops holds older than holdTimeout and returns when the oldest
// remaining one expires. b.mu is held.
func (b *sendBudget) expire(now time.Time) time.Time {
	next := now.Add(b.holdTimeout)
	for h := range b.holds {
		deadline := h.at.Add(b.holdTimeout)
		if !deadline.After(now) {
			b.drop(h)
			continue
		}
		if deadline.Before(next) {
			next = deadline
		}
	}
	return next
}

// release returns a hold's bytes; releasing twice is harmless.
func (b *sendBudget) release(h *hold) {
	if h == nil {
		return
	}
	b.mu.Lock()
	b.drop(h)
	b.mu.Unlock()
}

func (b *sendBudget) drop(h *hold) {
	if _, ok := b.holds[h]; !ok {
		return
	}
	delete(b.holds, h)
	b.used -= h.n
	close(b.wake)
	b.wake = make(chan struct{})
	if b.used == 0 {
		select {
		case b.idle <- struct{}{}:
		default:
		}
	}
}

// pending returns the bytes sent and not yet answered.
func (b *sendBudget) pending() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// pendingSend is a response a stream waits to see answered.
type pendingSend struct {
	nonce string
	h     *hold
}

// budgeted tracks one stream's holds: a response's hold is released by the
// request answering its nonce (ACK or NACK), by the next response of the
// same type, or when the stream ends. Requests are read on a goroutine of
// the stream's own (readRequests), so a stream blocked in Send still
// releases budget as its ACKs arrive.
type budgeted struct {
	b        *sendBudget
	ctx      context.Context
	typeURL  string // of a per-type stream; "" for ADS
	mu       sync.Mutex
	byType   map[string]pendingSend
	finished bool
}

func newBudgeted(ctx context.Context, b *sendBudget, typeURL string) *budgeted {
	return &budgeted{b: b, ctx: ctx, typeURL: typeURL, byType: map[string]pendingSend{}}
}

// sent acquires budget for a response about to be sent; false means the
// stream ended while waiting.
func (s *budgeted) sent(typeURL, nonce string, size int) bool {
	h := s.b.acquire(s.ctx, int64(size))
	if h == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		s.b.release(h)
		return false
	}
	if old, ok := s.byType[typeURL]; ok {
		s.b.release(old.h)
	}
	s.byType[typeURL] = pendingSend{nonce: nonce, h: h}
	return true
}

// answered releases the hold of the response a request answers.
func (s *budgeted) answered(typeURL, nonce string) {
	if typeURL == "" {
		typeURL = s.typeURL
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.byType[typeURL]; ok && p.nonce == nonce {
		s.b.release(p.h)
		delete(s.byType, typeURL)
	}
}

// finish releases everything the stream holds.
func (s *budgeted) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finished = true
	for t, p := range s.byType {
		s.b.release(p.h)
		delete(s.byType, t)
	}
}

// readAhead is how many requests a stream reads ahead of go-control-plane.
// A stream waiting for budget in Send does not take requests, and the
// ACKs that release budget must still be read: a proxy sends about one
// request per response, so a stream rarely has more than a few queued.
const readAhead = 32

type recvResult[T any] struct {
	req *T
	err error
}

// readRequests reads a stream's requests on a goroutine of its own,
// releasing budget as ACKs arrive, until the stream ends.
func readRequests[T any](recv func() (*T, error), answered func(*T), done <-chan struct{}) <-chan recvResult[T] {
	ch := make(chan recvResult[T], readAhead)
	go func() {
		defer close(ch)
		for {
			req, err := recv()
			if err == nil {
				answered(req)
			}
			select {
			case ch <- recvResult[T]{req, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

func next[T any](ctx context.Context, ch <-chan recvResult[T]) (*T, error) {
	r, ok := <-ch
	if !ok {
		return nil, ctx.Err()
	}
	return r.req, r.err
}

// sotwStream is a SotW stream whose sends are budgeted.
type sotwStream struct {
	grpc.BidiStreamingServer[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]
	bs   *budgeted
	m    *metrics
	reqs <-chan recvResult[discoveryv3.DiscoveryRequest]
}

func newSotwStream(st grpc.BidiStreamingServer[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse], bs *budgeted, in *interner, m *metrics) sotwStream {
	answered := func(r *discoveryv3.DiscoveryRequest) {
		in.names(r.ResourceNames)
		bs.answered(r.GetTypeUrl(), r.GetResponseNonce())
	}
	return sotwStream{BidiStreamingServer: st, bs: bs, m: m, reqs: readRequests(st.Recv, answered, st.Context().Done())}
}

func (w sotwStream) Send(r *discoveryv3.DiscoveryResponse) error {
	if !w.bs.sent(r.GetTypeUrl(), r.GetNonce(), proto.Size(r)) {
		return w.Context().Err()
	}
	start := time.Now()
	err := w.BidiStreamingServer.Send(r)
	w.m.sent(r.GetTypeUrl(), time.Since(start), err)
	return err
}

func (w sotwStream) Recv() (*discoveryv3.DiscoveryRequest, error) { return next(w.Context(), w.reqs) }

// deltaStream is a delta stream whose sends are budgeted.
type deltaStream struct {
	grpc.BidiStreamingServer[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]
	bs   *budgeted
	m    *metrics
	reqs <-chan recvResult[discoveryv3.DeltaDiscoveryRequest]
}

func newDeltaStream(st grpc.BidiStreamingServer[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse], bs *budgeted, in *interner, m *metrics) deltaStream {
	answered := func(r *discoveryv3.DeltaDiscoveryRequest) {
		in.names(r.ResourceNamesSubscribe)
		bs.answered(r.GetTypeUrl(), r.GetResponseNonce())
	}
	return deltaStream{BidiStreamingServer: st, bs: bs, m: m, reqs: readRequests(st.Recv, answered, st.Context().Done())}
}

func (w deltaStream) Send(r *discoveryv3.DeltaDiscoveryResponse) error {
	if !w.bs.sent(r.GetTypeUrl(), r.GetNonce(), proto.Size(r)) {
		return w.Context().Err()
	}
	start := time.Now()
	err := w.BidiStreamingServer.Send(r)
	w.m.sent(r.GetTypeUrl(), time.Since(start), err)
	return err
}

func (w deltaStream) Recv() (*discoveryv3.DeltaDiscoveryRequest, error) {
	return next(w.Context(), w.reqs)
}
