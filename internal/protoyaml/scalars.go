package protoyaml

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// scalarProblem checks a JSON value for a scalar field kind, following
// protojson: numbers may be written as strings, 64-bit ones usually are.
func scalarProblem(kind protoreflect.Kind, v any) string {
	switch kind {
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			return "expected true or false, got " + jsonKind(v)
		}
	case protoreflect.StringKind:
		if _, ok := v.(string); !ok {
			return "expected a string, got " + jsonKind(v) + " (quote it)"
		}
	case protoreflect.BytesKind:
		return bytesProblem(v)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return floatProblem(kind, v)
	default:
		lo, hi := intRange(kind)
		s, ok := numberText(v)
		if !ok {
			return "expected an integer, got " + jsonKind(v)
		}
		return intProblem(s, lo, hi)
	}
	return ""
}

// intRange returns the bounds of an integer field kind.
func intRange(kind protoreflect.Kind) (lo, hi *big.Int) {
	switch kind {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return big.NewInt(math.MinInt32), big.NewInt(math.MaxInt32)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return big.NewInt(0), big.NewInt(math.MaxUint32)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return big.NewInt(0), new(big.Int).SetUint64(math.MaxUint64)
	default:
		return big.NewInt(math.MinInt64), big.NewInt(math.MaxInt64)
	}
}

// numberText returns the text of a JSON number or numeric string.
func numberText(v any) (string, bool) {
	switch t := v.(type) {
	case json.Number:
		return string(t), true
	case string:
		return t, true
	}
	return "", false
}

// intProblem checks that s is an integer within [lo, hi].
func intProblem(s string, lo, hi *big.Int) string {
	f, _, err := big.ParseFloat(s, 10, 256, big.ToNearestEven)
	if (err == nil && f.IsInf()) || (err != nil && strings.Contains(err.Error(), "overflow")) {
		return fmt.Sprintf("%s is out of range [%s, %s]", s, lo, hi)
	}
	if err != nil {
		return fmt.Sprintf("%q is not a number", s)
	}
	if !f.IsInt() {
		return fmt.Sprintf("%s is not an integer", s)
	}
	// Compare as floats: converting a huge value such as 1e999999999 to a
	// big.Int would allocate without bound.
	l := new(big.Float).SetPrec(256).SetInt(lo)
	h := new(big.Float).SetPrec(256).SetInt(hi)
	if f.Cmp(l) < 0 || f.Cmp(h) > 0 {
		return fmt.Sprintf("%s is out of range [%s, %s]", s, lo, hi)
	}
	return ""
}

// floatProblem checks a JSON value for a float or double field.
func floatProblem(kind protoreflect.Kind, v any) string {
	s, ok := numberText(v)
	if !ok {
		return "expected a number, got " + jsonKind(v)
	}
	switch s {
	case "NaN", "Infinity", "-Infinity":
		return ""
	}
	bits := 64
	if kind == protoreflect.FloatKind {
		bits = 32
	}
	if _, err := strconv.ParseFloat(s, bits); err != nil {
		return fmt.Sprintf("%q is not a valid %d-bit number", s, bits)
	}
	return ""
}

// bytesProblem checks a base64 string, standard or URL alphabet, padded or
// not, as protojson accepts.
func bytesProblem(v any) string {
	s, ok := v.(string)
	if !ok {
		return "expected a base64 string, got " + jsonKind(v)
	}
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	if _, err := enc.DecodeString(s); err != nil {
		return "invalid base64: " + err.Error()
	}
	return ""
}

// durationRE is protojson's Duration form: seconds with up to nine
// fractional digits and an "s" suffix.
var durationRE = regexp.MustCompile(`^-?[0-9]+(\.[0-9]{0,9})?s$`)

// durationProblem checks a google.protobuf.Duration string. goForm says
// whether Go duration strings were accepted (and converted before this
// check, so that only invalid ones remain).
func durationProblem(v any, goForm bool) string {
	example := `such as "5s" or "0.25s"`
	if goForm {
		example = `such as "5s", "250ms" or "1m30s"`
	}
	s, ok := v.(string)
	if !ok {
		return fmt.Sprintf(`expected a duration string %s, got %s`, example, jsonKind(v))
	}
	if !durationRE.MatchString(s) {
		if goForm {
			return fmt.Sprintf(`invalid duration %q: write a number with a unit, %s`, s, example)
		}
		return fmt.Sprintf(`invalid duration %q: write seconds with an "s" suffix, %s`, s, example)
	}
	secs, _ := strconv.ParseFloat(strings.TrimSuffix(s, "s"), 64)
	if math.Abs(secs) > 315576000000 {
		return fmt.Sprintf("duration %q is out of range (at most 10000 years)", s)
	}
	return ""
}

// timestampProblem checks a google.protobuf.Timestamp string.
func timestampProblem(v any) string {
	s, ok := v.(string)
	if !ok {
		return "expected an RFC 3339 timestamp string, got " + jsonKind(v)
	}
	if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
		return fmt.Sprintf("invalid RFC 3339 timestamp %q", s)
	}
	return ""
}

// mapKeyProblem checks a map key written as a JSON object key.
func mapKeyProblem(kind protoreflect.Kind, k string) string {
	switch kind {
	case protoreflect.StringKind:
		return ""
	case protoreflect.BoolKind:
		if k != "true" && k != "false" {
			return "map key must be true or false"
		}
		return ""
	}
	lo, hi := intRange(kind)
	return intProblem(k, lo, hi)
}

// jsonKind names the JSON kind of a decoded value for error messages.
func jsonKind(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number (" + string(t) + ")"
	case string:
		return fmt.Sprintf("a string (%q)", truncate(t, 64))
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

// truncate shortens s to at most n bytes for a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
