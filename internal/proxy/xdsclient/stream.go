package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// streamState runs one ADS stream. It lives on Run's goroutine, except for
// the receiving goroutine, which only hands responses over.
type streamState struct {
	c        *Client
	stream   grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]
	nodeSent bool
	// deferred holds the NACKs held back by pacing, by type; due receives
	// a type when its NACK is due.
	deferred map[string]*deferredNack
	due      chan *deferredNack
}

// deferredNack is a NACK held back by pacing.
type deferredNack struct {
	url    string
	timer  *time.Timer
	status *statuspb.Status
}

// received is what the receiving goroutine hands over.
type received struct {
	resp *discoveryv3.DiscoveryResponse
	err  error
}

// run sends the subscriptions the client has (resuming with the versions
// it accepted, in Envoy's order) and then processes responses until the
// stream fails or ctx ends.
func (s *streamState) run(ctx context.Context) (progressed bool, err error) {
	s.deferred = map[string]*deferredNack{}
	s.due = make(chan *deferredNack, len(typeOrder))
	defer func() {
		for _, d := range s.deferred {
			d.timer.Stop()
		}
	}()
	for _, url := range typeOrder {
		ts := s.c.types[url]
		ts.nonce = "" // nonces belong to a stream
		if ts.started && (ts.wildcard || len(ts.names) > 0) {
			if err := s.send(ts, nil); err != nil {
				return false, err
			}
		}
	}
	in := make(chan received, 1)
	go func() {
		for {
			resp, err := s.stream.Recv()
			select {
			case in <- received{resp, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return progressed, ctx.Err()
		case d := <-s.due:
			if s.deferred[d.url] == d { // not superseded meanwhile
				delete(s.deferred, d.url)
				if err := s.send(s.c.types[d.url], d.status); err != nil {
					return progressed, err
				}
			}
		case r := <-in:
			if r.err != nil {
				if errors.Is(r.err, io.EOF) {
					r.err = errors.New("the control plane closed the stream")
				}
				return progressed, r.err
			}
			if !progressed {
				progressed = true
				s.c.connected.Store(1)
				s.c.o.Logger.Info("xds: connected to the control plane", "target", s.c.o.Target)
			}
			if err := s.handle(r.resp); err != nil {
				return progressed, err
			}
		}
	}
}

// handle applies one response, answers it with an ACK or a NACK, and
// sends the subscriptions the update changed.
func (s *streamState) handle(resp *discoveryv3.DiscoveryResponse) error {
	ts, ok := s.c.types[resp.GetTypeUrl()]
	if !ok {
		// Not a type weft-proxy asked for: refuse it, naming the type.
		s.c.o.Logger.Warn("xds: response of an unrequested type", "type", resp.GetTypeUrl())
		return s.sendRaw(&discoveryv3.DiscoveryRequest{
			TypeUrl:       resp.GetTypeUrl(),
			ResponseNonce: resp.GetNonce(),
			ErrorDetail:   &statuspb.Status{Code: int32(codes.InvalidArgument), Message: "weft-proxy does not subscribe to " + resp.GetTypeUrl()},
		})
	}
	if d := s.deferred[ts.url]; d != nil { // superseded by this response
		d.timer.Stop()
		delete(s.deferred, ts.url)
	}
	st := s.c.stats.perType[ts.url]
	st.attempt.Inc()
	u := decode(resp)
	errs := u.Invalid
	for name, err := range s.c.o.Handler.Apply(u) {
		errs[name] = err
	}
	ts.nonce = resp.GetNonce()
	ts.received = true
	if len(errs) == 0 {
		ts.version = resp.GetVersionInfo()
		ts.lastNack, ts.nackRepeats = "", 0
		st.success.Inc()
		if err := s.send(ts, nil); err != nil {
			return err
		}
		return s.followUp(ts.url)
	}
	st.rejected.Inc()
	detail := errorDetail(errs)
	nack := &statuspb.Status{Code: int32(codes.InvalidArgument), Message: detail}
	if err := s.nack(ts, resp.GetVersionInfo(), nack); err != nil {
		return err
	}
	return s.followUp(ts.url)
}

// nack sends a NACK, or holds it back when it repeats the previous NACK of
// the type word for word: a state-of-the-world server answers a NACK by
// sending its current version again, which would be rejected again at once
// for as long as the control plane keeps that version. Held-back NACKs go
// out after the reconnection back-off (500 ms doubling to 30 s), unless a
// new response of the type arrives first. Envoy offers the same protection
// as ApiConfigSource.rate_limit_settings.
func (s *streamState) nack(ts *typeState, version string, st *statuspb.Status) error {
	key := version + "\x00" + st.GetMessage()
	if key != ts.lastNack {
		ts.lastNack, ts.nackRepeats = key, 0
		s.c.o.Logger.Warn("xds: rejected configuration; the previous one keeps serving",
			"type", Kind(ts.url), "version", version, "errors", st.GetMessage())
		return s.send(ts, st)
	}
	wait := s.c.o.Backoff.next(ts.nackRepeats)
	ts.nackRepeats++
	d := &deferredNack{url: ts.url, status: st}
	d.timer = time.AfterFunc(wait, func() {
		select {
		case s.due <- d:
		default: // the stream is gone and nobody reads: drop it
		}
	})
	s.deferred[ts.url] = d
	return nil
}

// followUp sends the subscriptions an update of typeURL may have changed:
// after CDS, the EDS names (and, the first time, the LDS wildcard); after
// LDS, the RDS names.
func (s *streamState) followUp(typeURL string) error {
	switch typeURL {
	case ClusterType:
		if err := s.resubscribe(s.c.types[EndpointType]); err != nil {
			return err
		}
		if err := s.resubscribe(s.c.types[SecretType]); err != nil {
			return err
		}
		if lds := s.c.types[ListenerType]; !lds.started && !lds.disabled {
			lds.started = true
			return s.send(lds, nil)
		}
	case ListenerType:
		if err := s.resubscribe(s.c.types[SecretType]); err != nil {
			return err
		}
		return s.resubscribe(s.c.types[RouteType])
	}
	return nil
}

// resubscribe asks the Handler which resources of a named type the proxy
// needs and sends the new subscription when it changed. A type is first
// requested when it has a name (an empty first request would be a
// wildcard).
func (s *streamState) resubscribe(ts *typeState) error {
	names := s.c.o.Handler.Names(ts.url)
	if sameNames(names, ts.names) && (ts.started || len(names) == 0) {
		return nil
	}
	ts.names = names
	ts.started = true
	return s.send(ts, nil)
}

// send sends the request of ts: its subscription with the accepted version
// and the last nonce, plus error_detail for a NACK.
func (s *streamState) send(ts *typeState, nack *statuspb.Status) error {
	return s.sendRaw(&discoveryv3.DiscoveryRequest{
		TypeUrl:       ts.url,
		VersionInfo:   ts.version,
		ResourceNames: ts.names,
		ResponseNonce: ts.nonce,
		ErrorDetail:   nack,
	})
}

// sendRaw adds the node (on every request, or on the first only with
// set_node_on_first_message_only) and sends.
func (s *streamState) sendRaw(req *discoveryv3.DiscoveryRequest) error {
	if !s.nodeSent || !s.c.o.SetNodeOnFirstMessageOnly {
		req.Node = s.c.o.Node
		s.nodeSent = true
	}
	if err := s.stream.Send(req); err != nil {
		return fmt.Errorf("sending the %s request: %w", Kind(req.GetTypeUrl()), err)
	}
	return nil
}
