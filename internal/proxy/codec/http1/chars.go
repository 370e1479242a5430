package http1

import "encoding/binary"

// Character classes of RFC 9110/9112, as lookup tables built once (read-only
// afterwards).

// tokenLower maps a tchar (RFC 9110 §5.6.2) to its lower-case form and every
// other byte to 0: one lookup both validates and lowers a field name.
var tokenLower = func() (t [256]byte) {
	const extra = "!#$%&'*+-.^_`|~"
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c)
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = byte(c)
		t[c-'a'+'A'] = byte(c)
	}
	for i := 0; i < len(extra); i++ {
		t[extra[i]] = extra[i]
	}
	return t
}()

// authorityChar holds the bytes Envoy accepts in a Host value or an
// absolute-form authority (HeaderUtility::authorityIsValid, which uses
// nghttp2_check_authority): unreserved, sub-delims, ':', '@', '[', ']', '%'.
var authorityChar = func() (t [256]bool) {
	const extra = "-._~%!$&'()*+,;=:@[]"
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for i := 0; i < len(extra); i++ {
		t[extra[i]] = true
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// ctlMask returns a non-zero value when one of the 8 bytes of x is below
// 0x20 or is DEL (0x7f). Bytes >= 0x80 (obs-text) never match.
func ctlMask(x uint64) uint64 {
	below := (x - lsb*0x20) &^ x & msb
	y := x ^ (lsb * 0x7f)
	del := (y - lsb) &^ y & msb
	return below | del
}

// validValue reports whether b may be a field value (or reason phrase, or
// chunk extension): HTAB, SP, VCHAR and obs-text only, so no NUL, CR, LF or
// other control character (RFC 9110 §5.5). Eight bytes are checked at a
// time; only words with a match are looked at byte by byte (HTAB is legal).
func validValue(b []byte) bool {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if ctlMask(binary.LittleEndian.Uint64(b[i:])) != 0 {
			if !validValueSlow(b[i : i+8]) {
				return false
			}
		}
	}
	return validValueSlow(b[i:])
}

func validValueSlow(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validTarget reports whether b is made of the bytes Envoy's parser accepts
// in a request target: visible ASCII ('!'..'~'). Envoy also lets HTAB and
// form feed through (an http-parser quirk); weft does not.
func validTarget(b []byte) bool {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		below := (x - lsb*0x21) &^ x & msb // a byte < 0x21
		above := (x + lsb*(0x7f-0x7e)) | x // a byte > 0x7e sets its top bit
		if below|above&msb != 0 {
			return false
		}
	}
	for _, c := range b[i:] {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// validToken reports whether b is a non-empty token.
func validToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if tokenLower[c] == 0 {
			return false
		}
	}
	return true
}

// validAuthority reports whether every byte of b may appear in an
// authority (empty is valid: an empty Host is allowed by RFC 9112 §3.2).
func validAuthority(b []byte) bool {
	for _, c := range b {
		if !authorityChar[c] {
			return false
		}
	}
	return true
}

// equalFold reports whether b equals the lower-case ASCII string s,
// ignoring the case of b.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// hasUpper reports whether b has an ASCII upper-case letter.
func hasUpper(b []byte) bool {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

// trimOWS trims SP and HTAB at both ends.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// unhex returns the value of a hex digit, or -1.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
