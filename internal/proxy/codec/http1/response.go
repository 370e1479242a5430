package http1

import (
	"io"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// readResponse implements Conn.ReadResponse.
func (c *connState) readResponse(resp *headers.Response, headRequest bool) (Head, error) {
	resp.Reset()
	if c.broken != nil {
		return Head{}, c.broken
	}
	if !c.br.impl.done {
		return Head{}, ErrBodyUnread
	}
	for interim := false; ; interim = true {
		c.beginMessage()
		status, head, err := c.parseResponse(resp, headRequest)
		if err != nil {
			if err == io.EOF && interim {
				err = io.ErrUnexpectedEOF // the response had begun
			}
			if e, ok := err.(*Error); ok {
				e = forResponse(e)
				c.broken = e
				err = e
			}
			resp.Reset()
			return Head{}, err
		}
		if status < 200 && status != 101 {
			// Interim response (100, 102, 103): read and dropped, as the
			// contract says; the final response follows.
			resp.Reset()
			continue
		}
		resp.Status = status
		c.endHead()
		c.br.impl.reset(head.Framing, true)
		return head, nil
	}
}

func (c *connState) parseResponse(resp *headers.Response, headRequest bool) (int, Head, error) {
	line, err := c.headLine()
	if err != nil {
		if err == io.EOF && c.r != c.w {
			err = io.ErrUnexpectedEOF
		}
		return 0, Head{}, err
	}
	status, proto, perr := parseStatusLine(line)
	if perr != nil {
		return 0, Head{}, perr
	}
	var f fieldFacts
	if err := c.readFields(&resp.Map, &f, false); err != nil {
		return 0, Head{}, err
	}
	head, err := responseHead(&resp.Map, &f, status, proto, headRequest)
	return status, head, err
}

// parseStatusLine parses "HTTP/1.x SP 3DIGIT [SP reason-phrase]". The
// reason may be absent (some servers end the line after the code). Status
// codes outside 100..599 are invalid (RFC 9110 §15).
func parseStatusLine(line []byte) (int, headers.Protocol, *Error) {
	if len(line) < 12 || line[8] != ' ' {
		return 0, 0, errRespStatusLine
	}
	proto, err := parseVersion(line[:8])
	if err != nil {
		return 0, 0, errRespStatusLine
	}
	d := line[9:12]
	if !isDigit(d[0]) || !isDigit(d[1]) || !isDigit(d[2]) {
		return 0, 0, errRespStatusLine
	}
	status := int(d[0]-'0')*100 + int(d[1]-'0')*10 + int(d[2]-'0')
	if status < 100 || status > 599 {
		return 0, 0, errRespStatusLine
	}
	if len(line) > 12 && (line[12] != ' ' || !validValue(line[13:])) {
		return 0, 0, errRespStatusLine
	}
	return status, proto, nil
}

// responseHead derives the framing of a response (RFC 9112 §6.3) with
// Envoy's checks (codec_impl.cc, ClientConnectionImpl::onHeadersCompleteBase):
// 1xx and 204 may not carry Transfer-Encoding or a non-zero Content-Length
// (a zero one is removed); HEAD responses, 1xx, 204 and 304 have no body;
// otherwise chunked, Content-Length, or until close.
func responseHead(m *headers.Map, f *fieldFacts, status int, p headers.Protocol, headRequest bool) (Head, error) {
	h := Head{KeepAlive: f.keepAlive(p)}
	if status < 200 || status == 204 {
		if f.teCount > 0 {
			return Head{}, errRespTE1xx
		}
		if f.clSeen {
			if f.cl != 0 {
				return Head{}, errRespCL1xx
			}
			m.Del(headers.ContentLength)
		}
		if status == 101 {
			h.Upgrade, h.KeepAlive = true, false
		}
		return h, nil
	}
	if headRequest || status == 304 {
		return h, nil
	}
	switch {
	case f.teCount > 0:
		if err := f.transferFraming(p); err != nil {
			return Head{}, err
		}
		h.Framing.Kind = BodyChunked
	case f.clSeen:
		if f.cl > 0 {
			h.Framing = Framing{Kind: BodyLength, Length: f.cl}
		}
	default:
		h.Framing.Kind = BodyUntilClose
		h.KeepAlive = false
	}
	return h, nil
}
