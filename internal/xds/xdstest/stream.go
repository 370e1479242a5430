package xdstest

import (
	"time"
)

// This file holds what the state-of-the-world (sotw.go) and the delta
// (delta.go) clients share: the stream's start and receive loop, the
// checks of a response and the bookkeeping of the answer. They differ only
// in their message types and in how a response is installed and answered.

// stream is what the clients use of an ADS stream (SotW or delta).
type stream[Req, Resp any] interface {
	Send(Req) error
	Recv() (Resp, error)
}

// startStream subscribes to clusters and listeners (wildcard) with first,
// as Envoy does (the node on the first request of the stream), and runs
// the receive loop in a goroutine, handing each response to handle.
func startStream[Req, Resp any](c *core, s stream[Req, Resp], first []Req, handle func(Resp) error) {
	c.mu.Lock()
	c.st.typ(ClusterType).asked = true
	c.st.typ(ListenerType).asked = true
	c.mu.Unlock()
	for _, req := range first {
		// A failed send means the stream ended: the receive loop reads
		// why (for example a refused node) and Wait reports it.
		if err := s.Send(req); err != nil {
			break
		}
	}
	go receive(c, s, handle)
}

// receive hands each response to handle until the stream ends, and
// records why. When handle fails (an answer could not be sent), it
// cancels the stream and reads it to its end.
func receive[Req, Resp any](c *core, s stream[Req, Resp], handle func(Resp) error) {
	for {
		resp, err := s.Recv()
		if err != nil {
			c.finish(err)
			return
		}
		if err := handle(resp); err != nil {
			c.cancel()
			for {
				if _, err := s.Recv(); err != nil {
					c.finish(err)
					return
				}
			}
		}
	}
}

// newResponse is the Response of a received message of size bytes.
func newResponse(typeURL, version, nonce string, removed []string, size int) *Response {
	return &Response{TypeURL: typeURL, Version: version, Nonce: nonce, Removed: removed, Bytes: size, Received: time.Now()}
}

// check decodes the resources (values) into r, then runs extra (nil: no
// check; it gets the decoded names) and Options.Reject, and reports r to
// Options.OnResponse. It returns the resources' references and why r is
// rejected (nil: accepted).
func (c *core) check(r *Response, values [][]byte, extra func(names []string) error) (map[string][]string, error) {
	refs, rejectErr := c.decodeAll(r, r.TypeURL, values)
	if rejectErr == nil && extra != nil {
		rejectErr = extra(r.Names)
	}
	if rejectErr == nil && c.o.Reject != nil {
		rejectErr = c.o.Reject(r)
	}
	r.NACKed = rejectErr != nil
	if c.o.OnResponse != nil {
		c.o.OnResponse(r)
	}
	return refs, rejectErr
}

// answer is how a protocol answers a response; its functions run with
// c.mu held.
type answer[Req any] struct {
	// nack returns the NACK of a rejected response.
	nack func(ts *TypeState, err error) Req
	// ack installs an accepted response in ts (ACKs and Version are
	// already counted) and returns its ACK.
	ack func(ts *TypeState) Req
	// resubscribe returns the request that changes the names of the
	// dependent type url to names, or the zero Req if none is needed.
	resubscribe func(url string, names []string) Req
}

// respond records r (rejected when rejectErr is set) in its type's state,
// builds the answer with a, wakes the waiters, then sends the answer.
func respond[Req comparable](c *core, r *Response, rejectErr error, a answer[Req], send func(Req) error) error {
	c.mu.Lock()
	ts := c.st.typ(r.TypeURL)
	ts.Responses++
	ts.Bytes += int64(r.Bytes)
	ts.nonce = r.Nonce
	var out []Req
	if rejectErr != nil {
		ts.NACKs++
		ts.LastNACK = rejectErr.Error()
		out = append(out, a.nack(ts, rejectErr))
	} else {
		ts.ACKs++
		ts.Version = r.Version
		out = append(out, a.ack(ts))
		if dep, ok := dependent(r.TypeURL); ok {
			var none Req
			if req := a.resubscribe(dep, follow(ts)); req != none {
				out = append(out, req)
			}
		}
	}
	c.notify()
	c.mu.Unlock()
	for _, req := range out {
		if err := send(req); err != nil {
			return err
		}
	}
	return nil
}
