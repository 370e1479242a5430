package tlsinspect

import (
	"slices"
	"strings"

	"golang.org/x/crypto/cryptobyte"
)

// Wire constants (RFC 8446 §4 and §5.1, RFC 6066 §3, RFC 7301 §3.1).
const (
	recordHeaderLen          = 5
	recordTypeHandshake      = 22
	recordMajorVersion       = 3
	handshakeHeaderLen       = 4
	handshakeTypeClientHello = 1

	extServerName        = 0
	extALPN              = 16
	extSupportedVersions = 43
	sniHostNameType      = 0

	versionTLS10 = 0x0301
	versionTLS13 = 0x0304
)

// Limits of BoringSSL, the TLS stack Envoy's tls_inspector runs the
// ClientHello through. A record or message beyond them is a TLS error there,
// which Envoy reports as "not TLS" (raw_buffer), not as too large.
const (
	maxPlaintextLen  = 16384        // SSL3_RT_MAX_PLAIN_LENGTH
	maxCiphertextLen = 16384 + 2048 // SSL3_RT_MAX_ENCRYPTED_LENGTH, checked on the record header
	maxHelloBodyLen  = 16384        // ssl_max_handshake_message_len for a server not verifying peers
	maxEmptyRecords  = 32           // kMaxEmptyRecords
	maxSessionIDLen  = 32           // SSL_MAX_SSL_SESSION_ID_LENGTH
	maxHostNameLen   = 255          // TLSEXT_MAXLEN_host_name
)

// scanner walks the TLS records at the start of a stream and reassembles the
// first handshake message. It is fed ever longer prefixes of the same stream
// and keeps its position, so the total work is linear in the bytes examined.
type scanner struct {
	max      int
	off      int // stream offset of the next record header to walk
	have     int // handshake bytes in the records walked so far
	msgLen   int // ClientHello body length, valid when msgKnown
	msgKnown bool
	empty    int // consecutive empty records
}

// scan examines data, a prefix of the stream that extends the prefix of the
// previous call. It returns need > 0 (and no error) when the stream must
// reach need bytes before a decision; otherwise need == 0 and either the
// Result is the decision or err is ErrClientHelloTooLarge.
func (s *scanner) scan(data []byte) (res Result, need int, err error) {
	if len(data) == 0 {
		return Result{}, 1, nil
	}
	// Decide on the first byte alone: anything but a handshake record is
	// not TLS. (BoringSSL would first wait for a 5-byte record header; the
	// verdict is the same and a plain-text client is not kept waiting.)
	if data[0] != recordTypeHandshake {
		return notTLS(1)
	}
	for !s.msgKnown || s.have < handshakeHeaderLen+s.msgLen {
		hdrEnd := s.off + recordHeaderLen
		if hdrEnd > len(data) {
			return s.needMore(hdrEnd)
		}
		h := data[s.off:hdrEnd]
		n := int(h[3])<<8 | int(h[4])
		if h[0] != recordTypeHandshake || h[1] != recordMajorVersion || n > maxCiphertextLen {
			return notTLS(hdrEnd)
		}
		end := hdrEnd + n
		if end > len(data) {
			return s.needMore(end)
		}
		if n > maxPlaintextLen {
			return notTLS(end)
		}
		if n > 0 {
			s.empty = 0
		} else if s.empty++; s.empty > maxEmptyRecords {
			return notTLS(end)
		}
		s.off, s.have = end, s.have+n
		if !s.msgKnown && s.have >= handshakeHeaderLen {
			var hdr [handshakeHeaderLen]byte
			gather(data, s.off, hdr[:])
			s.msgLen = int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
			if hdr[0] != handshakeTypeClientHello || s.msgLen > maxHelloBodyLen {
				return notTLS(s.off)
			}
			s.msgKnown = true
		}
	}
	return s.finish(data), 0, nil
}

// needMore asks for n bytes, or gives up when n exceeds the limit: Envoy
// declares the ClientHello too large once it has read max bytes and the TLS
// stack still wants more.
func (s *scanner) needMore(n int) (Result, int, error) {
	if n > s.max {
		return Result{BytesProcessed: s.max}, 0, ErrClientHelloTooLarge
	}
	return Result{}, n, nil
}

func notTLS(processed int) (Result, int, error) {
	return Result{BytesProcessed: processed}, 0, nil
}

// finish parses the complete ClientHello found in the records before s.off.
func (s *scanner) finish(data []byte) Result {
	total := handshakeHeaderLen + s.msgLen
	var msg []byte
	if first := int(data[3])<<8 | int(data[4]); first >= total {
		msg = data[recordHeaderLen : recordHeaderLen+total] // common case: one record
	} else {
		msg = make([]byte, total)
		gather(data, s.off, msg)
	}
	res, ok := parseClientHello(msg[handshakeHeaderLen:])
	res.IsTLS = ok
	res.BytesProcessed = s.off
	if !ok {
		return Result{BytesProcessed: s.off}
	}
	return res
}

// gather copies the first len(dst) handshake bytes carried by the
// (already validated) records in data[:end] into dst.
func gather(data []byte, end int, dst []byte) {
	copied := 0
	for off := 0; off < end && copied < len(dst); {
		n := int(data[off+3])<<8 | int(data[off+4])
		body := data[off+recordHeaderLen : off+recordHeaderLen+n]
		copied += copy(dst[copied:], body)
		off += recordHeaderLen + n
	}
}

// parseClientHello parses a ClientHello body the way BoringSSL's
// SSL_parse_client_hello, version negotiation and SNI extraction do, as far
// as Envoy's verdict depends on them: any failure there makes Envoy report
// the connection as not TLS. Extensions other than server_name and
// supported_versions are only checked for framing and duplicates; the TLS
// stack that handles the connection next rejects what is wrong inside them.
func parseClientHello(body []byte) (Result, bool) {
	s := cryptobyte.String(body)
	var version uint16
	var sessionID, suites, compression, exts cryptobyte.String
	if !s.ReadUint16(&version) || !s.Skip(32) ||
		!s.ReadUint8LengthPrefixed(&sessionID) || len(sessionID) > maxSessionIDLen ||
		!s.ReadUint16LengthPrefixed(&suites) || len(suites) < 2 || len(suites)%2 != 0 ||
		!s.ReadUint8LengthPrefixed(&compression) || len(compression) < 1 {
		return Result{}, false
	}
	if s.Empty() { // a ClientHello may end before the extensions
		return Result{}, negotiableVersion(version, nil, false)
	}
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return Result{}, false
	}
	return parseExtensions(version, exts)
}

func parseExtensions(version uint16, exts cryptobyte.String) (Result, bool) {
	var res Result
	var typesBuf [64]uint16
	types := typesBuf[:0]
	var versions cryptobyte.String
	hasVersions := false
	for !exts.Empty() {
		var typ uint16
		var ext cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&ext) {
			return Result{}, false
		}
		types = append(types, typ)
		switch typ {
		case extServerName:
			name, ok := parseServerName(ext)
			if !ok {
				return Result{}, false
			}
			res.ServerName = name
		case extALPN:
			res.ALPN = parseALPN(ext)
		case extSupportedVersions:
			versions, hasVersions = ext, true
		}
	}
	slices.Sort(types)
	for i := 1; i < len(types); i++ {
		if types[i] == types[i-1] { // BoringSSL: tls1_check_duplicate_extensions
			return Result{}, false
		}
	}
	if !negotiableVersion(version, versions, hasVersions) {
		return Result{}, false
	}
	return res, true
}

// parseServerName follows BoringSSL's SNI extraction: exactly one host_name
// entry of 1 to 255 bytes without NUL. The name is lower-cased (ASCII), as
// Envoy stores the requested server name.
func parseServerName(ext cryptobyte.String) (string, bool) {
	var list, host cryptobyte.String
	var typ uint8
	if !ext.ReadUint16LengthPrefixed(&list) || !ext.Empty() ||
		!list.ReadUint8(&typ) || !list.ReadUint16LengthPrefixed(&host) || !list.Empty() ||
		typ != sniHostNameType || len(host) == 0 || len(host) > maxHostNameLen ||
		slices.Contains(host, 0) {
		return "", false
	}
	return lowerASCII(host), true
}

// parseALPN returns the protocol names, or nil when the extension is
// malformed: Envoy's onALPN then records nothing and leaves the error to the
// real TLS stack, so the connection still counts as TLS. All names share one
// backing string (two allocations).
func parseALPN(ext cryptobyte.String) []string {
	var list cryptobyte.String
	if !ext.ReadUint16LengthPrefixed(&list) || !ext.Empty() || len(list) < 2 {
		return nil
	}
	count := 0
	for l := list; !l.Empty(); count++ {
		var name cryptobyte.String
		if !l.ReadUint8LengthPrefixed(&name) || len(name) == 0 {
			return nil
		}
	}
	backing := string(list)
	out := make([]string, 0, count)
	for off := 0; off < len(backing); {
		n := int(backing[off])
		out = append(out, backing[off+1:off+1+n])
		off += 1 + n
	}
	return out
}

// negotiableVersion reports whether the client offers a version in Envoy's
// inspector range [TLS 1.0, TLS 1.3]: from supported_versions when present
// (which must be a non-empty u8-prefixed list), else from legacy_version.
// BoringSSL fails the handshake before the SNI callback otherwise.
func negotiableVersion(legacy uint16, ext cryptobyte.String, hasExt bool) bool {
	if !hasExt {
		return legacy >= versionTLS10
	}
	var list cryptobyte.String
	if !ext.ReadUint8LengthPrefixed(&list) || !ext.Empty() || len(list) == 0 {
		return false
	}
	for !list.Empty() {
		var v uint16
		if !list.ReadUint16(&v) {
			return false
		}
		if v >= versionTLS10 && v <= versionTLS13 {
			return true
		}
	}
	return false
}

// lowerASCII returns b as a string with ASCII upper-case letters lowered
// (absl::AsciiStrToLower); other bytes are kept as they are.
func lowerASCII(b []byte) string {
	if !slices.ContainsFunc(b, isUpperASCII) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for _, c := range b {
		if isUpperASCII(c) {
			c += 'a' - 'A'
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

func isUpperASCII(c byte) bool { return 'A' <= c && c <= 'Z' }
