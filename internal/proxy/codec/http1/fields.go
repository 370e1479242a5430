package http1

import (
	"io"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// fieldFacts collects what the header fields of one head say about framing
// and the connection, while the fields themselves go to the map.
type fieldFacts struct {
	count int

	clSeen bool
	cl     int64

	teCount   int
	teChunked bool

	hostCount int
	host      []byte

	connClose     bool
	connKeepAlive bool
	connUpgrade   bool

	upgradeSeen bool
	upgrade     []byte

	expectContinue bool
}

// readFields reads header lines up to the empty line. Each field goes to m
// by reference (its name lowered in place in the read buffer), except Host
// in a request, which only goes to f. A head that ends without its empty
// line is io.ErrUnexpectedEOF.
func (c *connState) readFields(m *headers.Map, f *fieldFacts, request bool) error {
	for {
		line, err := c.headLine()
		if err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		if len(line) == 0 {
			return nil
		}
		f.count++
		if f.count > c.maxHeaders {
			return errTooManyHeaders
		}
		name, value, perr := splitField(line)
		if perr != nil {
			return perr
		}
		if err := f.note(name, value, request); err != nil {
			return err
		}
		if request && string(name) == headers.Host {
			continue
		}
		m.AddRef(name, value)
	}
}

// splitField splits a field line (without CRLF) into its name, lowered in
// place, and its value without surrounding OWS. It follows RFC 9112 §5:
// no whitespace before the colon (400), no obs-fold (400, where Envoy would
// unfold), token names, and values without control characters (Envoy's
// "http1.invalid_characters").
func splitField(line []byte) (name, value []byte, err *Error) {
	if line[0] == ' ' || line[0] == '\t' {
		return nil, nil, errObsFold
	}
	i := 0
	for ; i < len(line); i++ {
		l := tokenLower[line[i]]
		if l == 0 {
			break
		}
		line[i] = l
	}
	if i == 0 || i == len(line) || line[i] != ':' {
		return nil, nil, errBadFieldName
	}
	value = trimOWS(line[i+1:])
	if !validValue(value) {
		return nil, nil, errBadFieldValue
	}
	return line[:i], value, nil
}

// note records what a field means for framing and the connection.
func (f *fieldFacts) note(name, value []byte, request bool) *Error {
	switch string(name) {
	case headers.Host:
		if request {
			f.hostCount++
			f.host = value
		}
	case headers.ContentLength:
		// Envoy configures its parser with disallow_multiple_content_length:
		// a second Content-Length is an error even with the same value.
		if f.clSeen {
			return errMultipleCL
		}
		n, ok := parseContentLength(value)
		if !ok {
			return errBadCL
		}
		f.clSeen, f.cl = true, n
	case headers.TransferEncoding:
		f.teCount++
		f.teChunked = equalFold(value, "chunked")
	case headers.Connection:
		f.noteConnection(value)
	case headers.Upgrade:
		if !f.upgradeSeen {
			f.upgradeSeen, f.upgrade = true, value
		}
	case headers.Expect:
		if equalFold(value, "100-continue") {
			f.expectContinue = true
		}
	}
	return nil
}

// noteConnection records the close, keep-alive and upgrade options of a
// Connection value (a comma-separated token list, case-insensitive).
func (f *fieldFacts) noteConnection(v []byte) {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		tok := trimOWS(v[:i])
		switch {
		case equalFold(tok, "close"):
			f.connClose = true
		case equalFold(tok, "keep-alive"):
			f.connKeepAlive = true
		case equalFold(tok, "upgrade"):
			f.connUpgrade = true
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
}

// parseContentLength parses 1*DIGIT. Values over 18 digits are refused
// (they cannot be honoured and would risk overflow).
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// keepAlive applies RFC 9112 §9.3: HTTP/1.1 persists unless "close" is
// sent; HTTP/1.0 persists only with "keep-alive".
func (f *fieldFacts) keepAlive(p headers.Protocol) bool {
	if f.connClose {
		return false
	}
	return p != headers.HTTP10 || f.connKeepAlive
}

// transferFraming checks a Transfer-Encoding as Envoy's codec does
// (codec_impl.cc, onHeadersCompleteImpl): together with Content-Length it is
// a 400 (http1.content_length_and_chunked_not_allowed, Envoy's default with
// allow_chunked_length off); any value but a single "chunked" is a 501
// (http1.invalid_transfer_encoding). In an HTTP/1.0 message it is refused
// as faulty framing (RFC 9112 §6.1).
func (f *fieldFacts) transferFraming(p headers.Protocol) *Error {
	if f.clSeen {
		return errCLAndTE
	}
	if f.teCount > 1 || !f.teChunked {
		return errBadTE
	}
	if p == headers.HTTP10 {
		return errTE10
	}
	return nil
}

// parseVersion parses "HTTP/d.d". HTTP/1.0 is HTTP10; HTTP/1.1 and later
// 1.x minors are HTTP11 (RFC 9110 §2.5: a higher minor is handled as the
// highest supported one). Another major is 505.
func parseVersion(v []byte) (headers.Protocol, *Error) {
	if len(v) != 8 || string(v[:5]) != "HTTP/" || v[6] != '.' ||
		v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9' {
		return 0, errBadVersion
	}
	if v[5] != '1' {
		return 0, errVersionNotSupp
	}
	if v[7] == '0' {
		return headers.HTTP10, nil
	}
	return headers.HTTP11, nil
}
