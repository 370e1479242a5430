package http1

import "errors"

// Envoy's %RESPONSE_CODE_DETAILS% values for codec errors, as listed in
// Envoy's "Response Code Details" page (http_conn_man/response_code_details)
// and defined in source/common/http/http1/codec_impl.cc. The two without the
// "http1." prefix come from Envoy's shared header checks (header_utility.cc)
// and the connection manager.
const (
	DetailCodecError              = "http1.codec_error"
	DetailHeadersTooLarge         = "http1.headers_too_large"
	DetailTooManyHeaders          = "http1.too_many_headers"
	DetailInvalidCharacters       = "http1.invalid_characters"
	DetailInvalidURL              = "http1.invalid_url"
	DetailInvalidScheme           = "http1.invalid_scheme"
	DetailInvalidTransferEncoding = "http1.invalid_transfer_encoding"
	DetailChunkedContentLength    = "http1.content_length_and_chunked_not_allowed"
	DetailBodyDisallowed          = "http1.body_disallowed"
	DetailTENotAllowed            = "http1.transfer_encoding_not_allowed"
	DetailCLNotAllowed            = "http1.content_length_not_allowed"
	DetailInvalidAuthority        = "http.invalid_authority"
	DetailMissingHost             = "missing_host_header"
)

// Sentinel errors of the codec's own contract (not protocol errors).
var (
	// ErrBodyUnread: ReadRequest or ReadResponse was called before the body
	// of the previous message was read to its end (Drain it, or close).
	ErrBodyUnread = errors.New("http1: previous message body not fully read; drain it or close the connection")
	// ErrBodyNotAllowed: Write was given bytes for a message framed as
	// BodyNone.
	ErrBodyNotAllowed = errors.New("http1: message has no body (BodyNone); body bytes refused")
	// ErrBodyTooLong: Write would exceed the Content-Length announced in
	// the head; nothing was written.
	ErrBodyTooLong = errors.New("http1: body longer than its Content-Length; bytes refused")
	// ErrBodyIncomplete: EndBody was called before Content-Length bytes
	// were written; the peer cannot find the end of the message, so the
	// connection must be closed.
	ErrBodyIncomplete = errors.New("http1: body shorter than its Content-Length; close the connection")
	// ErrNoMessage: Write or EndBody was called with no message head
	// written (or after EndBody).
	ErrNoMessage = errors.New("http1: no outgoing message; write a head first")
	// ErrInvalidField: a header or trailer to be written has a name that is
	// not a token or a value with CR, LF, NUL or another control character.
	// Nothing of the head was sent when the head fits in the write buffer.
	ErrInvalidField = errors.New("http1: invalid header field")
	// ErrInvalidFraming: the Framing or start-line data given to a write
	// call cannot be sent (for example BodyUntilClose on a request, a status
	// outside 100..999, or an empty path).
	ErrInvalidFraming = errors.New("http1: invalid framing or start line for this message")
)

// Protocol errors found while parsing. They are shared, immutable values so
// that malformed input does not allocate; compare them by Status/Details,
// not by identity.
var (
	errBadRequestLine  = &Error{Status: 400, Details: DetailCodecError, Reason: "malformed request line"}
	errBadMethod       = &Error{Status: 400, Details: DetailCodecError, Reason: "invalid method"}
	errBadTargetChars  = &Error{Status: 400, Details: DetailCodecError, Reason: "invalid characters in request target"}
	errBadVersion      = &Error{Status: 400, Details: DetailCodecError, Reason: "malformed HTTP version"}
	errVersionNotSupp  = &Error{Status: 505, Details: DetailCodecError, Reason: "HTTP version not supported"}
	errBareLF          = &Error{Status: 400, Details: DetailCodecError, Reason: "line ends in LF without CR"}
	errBadFieldName    = &Error{Status: 400, Details: DetailCodecError, Reason: "invalid header field name"}
	errObsFold         = &Error{Status: 400, Details: DetailCodecError, Reason: "obsolete line folding in header"}
	errBadFieldValue   = &Error{Status: 400, Details: DetailInvalidCharacters, Reason: "header value contains invalid characters"}
	errHeadTooLarge    = &Error{Status: 431, Details: DetailHeadersTooLarge, Reason: "headers size exceeds limit"}
	errPeekTooLarge    = errors.New("http1: Peek larger than the read buffer")
	errTooManyHeaders  = &Error{Status: 431, Details: DetailTooManyHeaders, Reason: "headers count exceeds limit"}
	errTrailerTooLarge = &Error{Status: 431, Details: DetailHeadersTooLarge, Reason: "trailers size exceeds limit"}
	errTooManyTrailers = &Error{Status: 431, Details: DetailTooManyHeaders, Reason: "trailers count exceeds limit"}
	errMissingHost     = &Error{Status: 400, Details: DetailMissingHost, Reason: "HTTP/1.1 request without Host"}
	errMultipleHost    = &Error{Status: 400, Details: DetailInvalidAuthority, Reason: "more than one Host header"}
	errBadAuthority    = &Error{Status: 400, Details: DetailInvalidAuthority, Reason: "invalid Host or authority"}
	errBadURL          = &Error{Status: 400, Details: DetailInvalidURL, Reason: "invalid request target"}
	errBadScheme       = &Error{Status: 400, Details: DetailInvalidScheme, Reason: "absolute-form scheme is not http or https"}
	errBadCL           = &Error{Status: 400, Details: DetailCodecError, Reason: "invalid Content-Length"}
	errMultipleCL      = &Error{Status: 400, Details: DetailCodecError, Reason: "more than one Content-Length"}
	errCLAndTE         = &Error{Status: 400, Details: DetailChunkedContentLength, Reason: "both Content-Length and Transfer-Encoding"}
	errBadTE           = &Error{Status: 501, Details: DetailInvalidTransferEncoding, Reason: "unsupported Transfer-Encoding"}
	errTE10            = &Error{Status: 400, Details: DetailInvalidTransferEncoding, Reason: "Transfer-Encoding in an HTTP/1.0 message"}
	errConnectBody     = &Error{Status: 400, Details: DetailBodyDisallowed, Reason: "CONNECT request with a body"}
	errBadChunkSize    = &Error{Status: 400, Details: DetailCodecError, Reason: "invalid chunk size line"}
	errBadChunkEnd     = &Error{Status: 400, Details: DetailCodecError, Reason: "chunk data not followed by CRLF"}

	// Response-side errors: Status is what Envoy answers downstream when an
	// upstream response is malformed (503, upstream protocol error).
	errRespStatusLine = &Error{Status: 503, Details: DetailCodecError, Reason: "malformed status line"}
	errRespTE1xx      = &Error{Status: 503, Details: DetailTENotAllowed, Reason: "transfer encoding not allowed in 1xx or 204"}
	errRespCL1xx      = &Error{Status: 503, Details: DetailCLNotAllowed, Reason: "content length not allowed in 1xx or 204"}
)

// forResponse returns the response-side version of a parse error: same
// details, status 503 (Envoy replies 503 when an upstream response cannot
// be parsed).
func forResponse(e *Error) *Error {
	if e.Status == 503 {
		return e
	}
	if r, ok := respErrors[e]; ok {
		return r
	}
	return &Error{Status: 503, Details: e.Details, Reason: e.Reason}
}

// respErrors maps each request-side error to its 503 twin, built once so the
// response path does not allocate either.
var respErrors = func() map[*Error]*Error {
	m := make(map[*Error]*Error)
	for _, e := range []*Error{
		errBareLF, errBadFieldName, errObsFold, errBadFieldValue, errHeadTooLarge,
		errTooManyHeaders, errTrailerTooLarge, errTooManyTrailers, errBadCL, errMultipleCL,
		errCLAndTE, errBadTE, errTE10, errBadChunkSize, errBadChunkEnd, errVersionNotSupp,
	} {
		m[e] = &Error{Status: 503, Details: e.Details, Reason: e.Reason}
	}
	return m
}()
