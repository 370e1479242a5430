// Package tlsinspect implements Envoy's envoy.filters.listener.tls_inspector:
// it looks at the first bytes of an accepted connection, without consuming
// them, and decides whether they are a TLS ClientHello. When they are, it
// reports the requested server name (SNI) and the offered application
// protocols (ALPN), which filter-chain matching uses.
//
// The bytes examined stay available to whoever handles the connection next
// (tcp_proxy for TLS passthrough, or a TLS server for termination): Inspect
// only peeks a bufio.Reader, and ReadClientHello returns every byte it read so
// that the caller replays them.
//
// Blocking: Inspect and ReadClientHello return as soon as they can decide. A
// first byte that is not a TLS handshake record decides "raw_buffer" at once,
// without waiting for more bytes. A client that sends nothing, or stops in
// the middle of a ClientHello, blocks the call until the reader returns an
// error: the caller sets Envoy's listener_filters_timeout as a read deadline
// on the connection (and clears it afterwards); the deadline error is then
// returned wrapped, so errors.Is(err, os.ErrDeadlineExceeded) holds. What to
// do on timeout (close, or continue as raw_buffer when
// continue_on_listener_filters_timeout is set) is the caller's decision.
//
// Differences from Envoy (which runs the bytes through BoringSSL), all
// deliberate: a first byte that is not a handshake record decides at once
// (BoringSSL first waits for a 5-byte record header; the verdict is the
// same); of the extensions, only server_name and supported_versions are
// validated, the others only for framing and duplicates (BoringSSL would call
// a few more malformed ClientHellos raw_buffer; the TLS stack that handles the
// connection next rejects them anyway); SSLv2-compatible ClientHellos are
// raw_buffer; JA3/JA4 fingerprints are not computed.
//
// Statistics: the caller maps a Result onto Envoy's tls_inspector.* counters:
// tls_found / tls_not_found (IsTLS), sni_found / sni_not_found (ServerName),
// alpn_found / alpn_not_found (ALPN), client_hello_too_large
// (ErrClientHelloTooLarge), connection_closed / read_error (other errors),
// and the bytes_processed histogram (BytesProcessed).
package tlsinspect

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Transport protocol names set on a connection, as Envoy's
// FilterChainMatch.transport_protocol expects them.
const (
	TransportTLS       = "tls"
	TransportRawBuffer = "raw_buffer"
)

// DefaultMaxClientHelloSize is the largest number of bytes the inspector
// examines, record headers included: Envoy's TLS_MAX_CLIENT_HELLO (16 KiB),
// the default and the upper bound of TlsInspector.max_client_hello_size.
const DefaultMaxClientHelloSize = 16 * 1024

// ErrClientHelloTooLarge is returned when the ClientHello needs more than
// MaxClientHelloSize bytes. Envoy closes such connections and counts
// tls_inspector.client_hello_too_large; the caller should do the same.
var ErrClientHelloTooLarge = errors.New("tlsinspect: ClientHello is larger than max_client_hello_size")

// Result is what the inspector learned about a connection.
type Result struct {
	// IsTLS reports whether the connection starts with a well-formed TLS
	// ClientHello (transport protocol "tls"); otherwise it is "raw_buffer".
	IsTLS bool
	// ServerName is the SNI host name, lower-cased (Envoy lower-cases the
	// requested server name; DNS names are case-insensitive). Empty when the
	// ClientHello has no server_name extension or the connection is not TLS.
	ServerName string
	// ALPN lists the protocols of the application_layer_protocol_negotiation
	// extension in the client's order; nil when absent or not TLS.
	ALPN []string
	// BytesProcessed is the number of bytes examined to reach the decision
	// (Envoy's tls_inspector.bytes_processed histogram).
	BytesProcessed int
}

// TransportProtocol returns "tls" or "raw_buffer".
func (r *Result) TransportProtocol() string {
	if r.IsTLS {
		return TransportTLS
	}
	return TransportRawBuffer
}

// Options configures an Inspector. The zero value gives Envoy's defaults.
type Options struct {
	// MaxClientHelloSize mirrors TlsInspector.max_client_hello_size: the
	// number of bytes examined before a ClientHello counts as too large.
	// 0 means DefaultMaxClientHelloSize; larger values are rejected, as Envoy
	// rejects them.
	MaxClientHelloSize int
}

// Inspector is a configured tls_inspector. It holds no per-connection state
// and is safe for concurrent use.
type Inspector struct {
	max int
}

// New validates o and returns an Inspector.
func New(o Options) (*Inspector, error) {
	switch {
	case o.MaxClientHelloSize == 0:
		o.MaxClientHelloSize = DefaultMaxClientHelloSize
	case o.MaxClientHelloSize < 0 || o.MaxClientHelloSize > DefaultMaxClientHelloSize:
		return nil, fmt.Errorf("tlsinspect: max_client_hello_size %d must be in [1, %d] (Envoy's limit)",
			o.MaxClientHelloSize, DefaultMaxClientHelloSize)
	}
	return &Inspector{max: o.MaxClientHelloSize}, nil
}

// defaultInspector is immutable after package initialisation.
var defaultInspector = &Inspector{max: DefaultMaxClientHelloSize}

// Inspect runs the default Inspector on br; see (*Inspector).Inspect.
func Inspect(br *bufio.Reader) (Result, error) {
	return defaultInspector.Inspect(br)
}

// BufferSize is the smallest bufio.Reader size Inspect accepts.
func (in *Inspector) BufferSize() int { return in.max }

// Inspect peeks br, never consuming, until it can tell whether the
// connection starts with a TLS ClientHello. br must have been created with
// at least BufferSize() bytes of buffer (bufio.NewReaderSize).
//
// A nil error means a decision: IsTLS, or raw_buffer for anything that is not
// a well-formed ClientHello (Envoy cannot tell plain text from a malformed
// ClientHello either, and treats both as raw_buffer). Errors:
// ErrClientHelloTooLarge (close the connection), or the reader's error
// wrapped (peer closed: io.EOF; deadline: os.ErrDeadlineExceeded). On error
// the Result carries only BytesProcessed.
func (in *Inspector) Inspect(br *bufio.Reader) (Result, error) {
	if br.Size() < in.max {
		return Result{}, fmt.Errorf("tlsinspect: bufio.Reader buffer is %d bytes, below max_client_hello_size %d; "+
			"create it with bufio.NewReaderSize(conn, inspector.BufferSize())", br.Size(), in.max)
	}
	s := scanner{max: in.max}
	need := 1
	for {
		data, rerr := br.Peek(max(need, min(br.Buffered(), in.max)))
		res, next, err := s.scan(data)
		if err != nil || next == 0 {
			return res, err
		}
		if rerr != nil {
			return Result{BytesProcessed: len(data)}, readError(len(data), rerr)
		}
		need = next
	}
}

// ReadClientHello reads from r, appending to buf[:0] (which may be nil; it
// grows up to MaxClientHelloSize), until it can tell whether the connection
// starts with a TLS ClientHello. It returns the Result and every byte read:
// the caller must deliver those bytes again, first, to whoever reads the
// connection next. It may read more bytes than the ClientHello when the
// client sent more; it never waits for bytes it does not need.
//
// Results and errors are as for Inspect; the bytes read are returned with
// errors too.
func (in *Inspector) ReadClientHello(r io.Reader, buf []byte) (Result, []byte, error) {
	s := scanner{max: in.max}
	data := buf[:0]
	need := 1
	for {
		for len(data) < need {
			if cap(data) < need {
				grown := make([]byte, len(data), min(max(need, 2*cap(data), 512), in.max))
				copy(grown, data)
				data = grown
			}
			n, err := r.Read(data[len(data):cap(data)])
			data = data[:len(data)+n]
			if err != nil && len(data) < need {
				return Result{BytesProcessed: len(data)}, data, readError(len(data), err)
			}
		}
		res, next, err := s.scan(data)
		if err != nil || next == 0 {
			return res, data, err
		}
		need = next
	}
}

func readError(n int, err error) error {
	if n == 0 {
		return fmt.Errorf("tlsinspect: connection sent no data: %w", err)
	}
	return fmt.Errorf("tlsinspect: incomplete ClientHello after %d bytes: %w", n, err)
}
