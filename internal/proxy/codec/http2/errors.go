package http2

import (
	"errors"
	"fmt"

	xh2 "golang.org/x/net/http2"
)

// ErrCode is an HTTP/2 error code (RFC 9113 §7).
type ErrCode = xh2.ErrCode

// Error codes used by this package's API.
const (
	ErrCodeNo            = xh2.ErrCodeNo
	ErrCodeProtocol      = xh2.ErrCodeProtocol
	ErrCodeInternal      = xh2.ErrCodeInternal
	ErrCodeFlowControl   = xh2.ErrCodeFlowControl
	ErrCodeStreamClosed  = xh2.ErrCodeStreamClosed
	ErrCodeFrameSize     = xh2.ErrCodeFrameSize
	ErrCodeRefusedStream = xh2.ErrCodeRefusedStream
	ErrCodeCancel        = xh2.ErrCodeCancel
	ErrCodeCompression   = xh2.ErrCodeCompression
)

// StreamError reports a stream ended by RST_STREAM: sent by the peer (Remote)
// or by this endpoint, for example because the peer's message was malformed
// (Code PROTOCOL_ERROR).
type StreamError struct {
	StreamID uint32
	Code     ErrCode
	// Remote is true when the peer reset the stream.
	Remote bool
}

// Is reports a stream the server refused (REFUSED_STREAM) as
// ErrUnprocessed: it was not processed (RFC 9113 §8.7).
func (e *StreamError) Is(target error) bool {
	return target == ErrUnprocessed && e.Remote && e.Code == ErrCodeRefusedStream
}

func (e *StreamError) Error() string {
	who := "local"
	if e.Remote {
		who = "remote"
	}
	return fmt.Sprintf("http2: stream %d reset (%s): %v", e.StreamID, who, e.Code)
}

// ConnError reports a connection that ended with an error: a protocol error
// detected by this endpoint (GOAWAY sent), a GOAWAY with an error code from
// the peer (Remote), or an I/O error (Err).
type ConnError struct {
	Code   ErrCode
	Remote bool
	Err    error
	Reason string
}

func (e *ConnError) Error() string {
	switch {
	case e.Err != nil:
		return "http2: connection: " + e.Err.Error()
	case e.Remote:
		return fmt.Sprintf("http2: connection closed by the peer: GOAWAY %v", e.Code)
	}
	return fmt.Sprintf("http2: connection error %v: %s", e.Code, e.Reason)
}

func (e *ConnError) Unwrap() error { return e.Err }

var (
	// ErrUnprocessed is returned (possibly wrapped) for a client stream the
	// server did not process: refused with REFUSED_STREAM, above the last
	// stream id of a GOAWAY, or not sent because the connection was going
	// away. The request may be retried on another connection (RFC 9113
	// §8.7).
	ErrUnprocessed = errors.New("http2: stream not processed by the server (safe to retry)")
	// ErrCanceled is returned by a client stream canceled through its
	// cancel signal (CancelOn) or Cancel.
	ErrCanceled = errors.New("http2: stream canceled")
	// ErrStreamClosed is returned for writes after the stream's send side
	// ended, and by the reads of a server stream whose response is complete
	// while its request was not (the stream was reset with NO_ERROR, RFC
	// 9113 §8.1).
	ErrStreamClosed = errors.New("http2: stream closed")
	// ErrIdleTimeout is returned by the operations of a server stream that
	// the connection reset for its stream idle timeout.
	ErrIdleTimeout = errors.New("http2: stream idle timeout")
	// ErrConnClosed is returned when the connection is closed locally.
	ErrConnClosed = errors.New("http2: connection closed")
	// ErrTimeout is returned by client stream operations whose deadline
	// passed. It is a net.Error whose Timeout method reports true.
	ErrTimeout error = timeoutError{}
)

type timeoutError struct{}

func (timeoutError) Error() string   { return "http2: stream deadline exceeded" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// connErr is a connection error this endpoint detected.
func connErr(code ErrCode, reason string) error {
	return &ConnError{Code: code, Reason: reason}
}
