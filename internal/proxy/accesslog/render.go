package accesslog

import (
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"
)

// Formatter turns an Entry into one log line. It is immutable and safe for
// concurrent use.
type Formatter struct {
	text *textFormat // a format string, or nil for JSON
	json []jsonField // a format dictionary
	// typed renders JSON values with their type (numbers as numbers, an
	// unavailable value as null), as SubstitutionFormatString.json_format
	// and FileAccessLog.typed_json_format do; the deprecated
	// FileAccessLog.json_format renders every value as a string, "-" when
	// unavailable.
	typed bool
	// omitEmpty is omit_empty_values: an unavailable value prints as ""
	// in text, and its key is left out in JSON.
	omitEmpty bool
}

// jsonField is one key of a format dictionary: a format string, a nested
// dictionary or a literal JSON value (number, bool, null).
type jsonField struct {
	key    []byte // the key, JSON-quoted, with the ':' after it
	text   *textFormat
	nested []jsonField
	raw    []byte
}

// AppendTo appends e's log line to dst. scratch is working space (it may
// be nil; the grown slice is returned for reuse).
func (f *Formatter) AppendTo(dst, scratch []byte, e *Entry) ([]byte, []byte) {
	if f.text != nil {
		return f.appendText(dst, e), scratch
	}
	dst, scratch, _ = f.appendObject(dst, scratch, f.json, e)
	return append(dst, '\n'), scratch
}

// appendText renders a format string: an unavailable value prints "-"
// (Envoy's placeholder), or nothing with omit_empty_values.
func (f *Formatter) appendText(dst []byte, e *Entry) []byte {
	for i := range f.text.segs {
		s := &f.text.segs[i]
		if s.cmd == nil {
			dst = append(dst, s.lit...)
			continue
		}
		var k valKind
		if dst, k = s.cmd.eval(dst, e); k == valNone && !f.omitEmpty {
			dst = append(dst, '-')
		}
	}
	return dst
}

// appendObject renders a dictionary as compact JSON; it reports whether
// any key was written (an empty nested object is omitted with
// omit_empty_values).
func (f *Formatter) appendObject(dst, scratch []byte, fields []jsonField, e *Entry) ([]byte, []byte, bool) {
	dst = append(dst, '{')
	n := 0
	for i := range fields {
		fl := &fields[i]
		mark := len(dst)
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, fl.key...)
		var ok bool
		switch {
		case fl.raw != nil:
			dst, ok = append(dst, fl.raw...), true
		case fl.nested != nil:
			dst, scratch, ok = f.appendObject(dst, scratch, fl.nested, e)
			ok = ok || !f.omitEmpty
		default:
			dst, scratch, ok = f.appendValue(dst, scratch, fl.text, e)
		}
		if !ok {
			dst = dst[:mark]
			continue
		}
		n++
	}
	return append(dst, '}'), scratch, n > 0
}

// appendValue renders one dictionary value. It reports false when the
// key must be omitted (omit_empty_values and nothing to print).
func (f *Formatter) appendValue(dst, scratch []byte, tf *textFormat, e *Entry) ([]byte, []byte, bool) {
	if c := tf.single(); c != nil {
		var k valKind
		scratch, k = c.eval(scratch[:0], e)
		switch {
		case k == valNone && f.omitEmpty:
			return dst, scratch, false
		case k == valNone && f.typed:
			return append(dst, "null"...), scratch, true
		case k == valNone:
			return append(dst, `"-"`...), scratch, true
		case k == valNumber && f.typed:
			return append(dst, scratch...), scratch, true
		}
		return appendJSONString(dst, scratch), scratch, true
	}
	scratch = scratch[:0]
	for i := range tf.segs {
		s := &tf.segs[i]
		if s.cmd == nil {
			scratch = append(scratch, s.lit...)
			continue
		}
		var k valKind
		if scratch, k = s.cmd.eval(scratch, e); k == valNone && !f.omitEmpty {
			scratch = append(scratch, '-')
		}
	}
	if len(scratch) == 0 && f.omitEmpty {
		return dst, scratch, false
	}
	return appendJSONString(dst, scratch), scratch, true
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, "\ufffd"...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// newTextFormatter compiles a format string.
func newTextFormatter(s, hostname string, omitEmpty bool) (*Formatter, error) {
	tf, err := parseText(s, hostname)
	if err != nil {
		return nil, err
	}
	return &Formatter{text: tf, omitEmpty: omitEmpty}, nil
}

// newJSONFormatter compiles a format dictionary. Keys print sorted (as
// Envoy's json_format_options.sort_properties; the order of a
// google.protobuf.Struct is not defined otherwise).
func newJSONFormatter(st *structpb.Struct, hostname string, typed, omitEmpty bool) (*Formatter, error) {
	fields, err := compileObject(st, hostname, "")
	if err != nil {
		return nil, err
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("empty: a format dictionary needs at least one key")
	}
	return &Formatter{json: fields, typed: typed, omitEmpty: omitEmpty}, nil
}

func compileObject(st *structpb.Struct, hostname, path string) ([]jsonField, error) {
	keys := make([]string, 0, len(st.GetFields()))
	for k := range st.GetFields() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]jsonField, 0, len(keys))
	for _, k := range keys {
		p := path + "." + k
		if path == "" {
			p = k
		}
		fl := jsonField{key: append(appendJSONString(nil, []byte(k)), ':')}
		switch v := st.GetFields()[k].GetKind().(type) {
		case *structpb.Value_StringValue:
			tf, err := parseText(v.StringValue, hostname)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			fl.text = tf
		case *structpb.Value_StructValue:
			nested, err := compileObject(v.StructValue, hostname, p)
			if err != nil {
				return nil, err
			}
			fl.nested = nested
		case *structpb.Value_NumberValue:
			fl.raw = strconv.AppendFloat(nil, v.NumberValue, 'g', -1, 64)
		case *structpb.Value_BoolValue:
			fl.raw = strconv.AppendBool(nil, v.BoolValue)
		case *structpb.Value_NullValue:
			fl.raw = []byte("null")
		default:
			return nil, fmt.Errorf("%s: only strings, numbers, booleans, null and nested objects are supported in a format dictionary", p)
		}
		out = append(out, fl)
	}
	return out, nil
}
