package accesslog

import (
	"fmt"
	"time"
)

// timeFormat is a compiled %START_TIME(...)% format: strftime specifiers
// (as C++'s std::put_time, which Envoy uses) plus Envoy's own %s (epoch
// seconds) and %f / %1f..%9f (fractional seconds, 9 digits by default),
// and absl's %E<n>S (seconds with n fractional digits) that Envoy's
// default format uses. Times print in UTC, as Envoy's access log
// formatter prints them.
type timeFormat struct {
	parts []timePart
}

type timePart struct {
	lit  string // literal, when spec == 0
	spec byte
	n    int // digits for 'f' and 'S' with a fraction (E<n>S)
}

// parseTimeFormat compiles a strftime-like format. An unknown specifier
// is an error.
func parseTimeFormat(s string) (*timeFormat, error) {
	tf := &timeFormat{}
	lit := []byte{}
	flush := func() {
		if len(lit) > 0 {
			tf.parts = append(tf.parts, timePart{lit: string(lit)})
			lit = lit[:0]
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			lit = append(lit, s[i])
			continue
		}
		if i+1 >= len(s) {
			return nil, fmt.Errorf("a lone '%%' at the end")
		}
		i++
		c := s[i]
		switch {
		case c == '%':
			lit = append(lit, '%')
		case c >= '1' && c <= '9' && i+1 < len(s) && s[i+1] == 'f':
			flush()
			tf.parts = append(tf.parts, timePart{spec: 'f', n: int(c - '0')})
			i++
		case c == 'E' && i+2 < len(s) && s[i+1] >= '1' && s[i+1] <= '9' && s[i+2] == 'S':
			flush()
			tf.parts = append(tf.parts, timePart{spec: 'S', n: int(s[i+1] - '0')})
			i += 2
		case isTimeSpec(c):
			flush()
			n := 0
			if c == 'f' {
				n = 9
			}
			tf.parts = append(tf.parts, timePart{spec: c, n: n})
		default:
			return nil, fmt.Errorf("specifier %%%c is not supported (supported: %%Y %%m %%d %%H %%M %%S %%y %%j %%a %%A %%b %%B %%e %%p %%I %%z %%Z %%T %%F %%D %%R %%s %%f %%[1-9]f %%E[1-9]S %%%%)", c)
		}
	}
	flush()
	return tf, nil
}

func isTimeSpec(c byte) bool {
	switch c {
	case 'Y', 'm', 'd', 'H', 'M', 'S', 'y', 'j', 'a', 'A', 'b', 'B', 'e', 'p', 'I', 'z', 'Z', 'T', 'F', 'D', 'R', 's', 'f':
		return true
	}
	return false
}

// defaultStartTime is Envoy's default START_TIME layout
// (%Y-%m-%dT%H:%M:%E3SZ, UTC).
const defaultStartTime = "2006-01-02T15:04:05.000Z"

// appendTime appends t (in UTC) formatted by tf, or by Envoy's default
// when tf is nil.
func (tf *timeFormat) appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	if tf == nil {
		return t.AppendFormat(dst, defaultStartTime)
	}
	for _, p := range tf.parts {
		if p.spec == 0 {
			dst = append(dst, p.lit...)
			continue
		}
		dst = appendSpec(dst, t, p)
	}
	return dst
}

func appendSpec(dst []byte, t time.Time, p timePart) []byte {
	switch p.spec {
	case 'Y':
		return appendInt(dst, t.Year(), 4)
	case 'm':
		return appendInt(dst, int(t.Month()), 2)
	case 'd':
		return appendInt(dst, t.Day(), 2)
	case 'e':
		return t.AppendFormat(dst, "_2")
	case 'H':
		return appendInt(dst, t.Hour(), 2)
	case 'I':
		return t.AppendFormat(dst, "03")
	case 'p':
		return t.AppendFormat(dst, "PM")
	case 'M':
		return appendInt(dst, t.Minute(), 2)
	case 'S':
		dst = appendInt(dst, t.Second(), 2)
		if p.n > 0 {
			dst = append(dst, '.')
			dst = appendFraction(dst, t, p.n)
		}
		return dst
	case 'y':
		return appendInt(dst, t.Year()%100, 2)
	case 'j':
		return appendInt(dst, t.YearDay(), 3)
	case 'a':
		return t.AppendFormat(dst, "Mon")
	case 'A':
		return t.AppendFormat(dst, "Monday")
	case 'b':
		return t.AppendFormat(dst, "Jan")
	case 'B':
		return t.AppendFormat(dst, "January")
	case 'z':
		return append(dst, "+0000"...)
	case 'Z':
		return append(dst, "UTC"...)
	case 'T':
		return t.AppendFormat(dst, "15:04:05")
	case 'F':
		return t.AppendFormat(dst, "2006-01-02")
	case 'D':
		return t.AppendFormat(dst, "01/02/06")
	case 'R':
		return t.AppendFormat(dst, "15:04")
	case 's':
		return appendInt(dst, int(t.Unix()), 1)
	case 'f':
		return appendFraction(dst, t, p.n)
	}
	return dst
}

// appendFraction appends the first n digits of t's nanoseconds.
func appendFraction(dst []byte, t time.Time, n int) []byte {
	ns := t.Nanosecond()
	for i := n; i < 9; i++ {
		ns /= 10
	}
	return appendInt(dst, ns, n)
}

// appendInt appends v zero-padded to width digits.
func appendInt(dst []byte, v, width int) []byte {
	var buf [20]byte
	i := len(buf)
	for v >= 10 || width > 1 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		width--
	}
	i--
	buf[i] = byte('0' + v)
	return append(dst, buf[i:]...)
}
