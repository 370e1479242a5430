package bootstrap

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// diagnose walks the JSON that protojson rejected against the message
// descriptors and reports every problem with its field path. protojson's own
// error carries only a byte offset and stops at the first problem; this
// walker follows protojson's mapping rules (field names in proto or JSON
// form, null meaning "unset", Any with @type, the well-known types' JSON
// forms) so that it finds what protojson objects to, and more.
func diagnose(jsonData []byte, md protoreflect.MessageDescriptor) Errors {
	dec := json.NewDecoder(bytes.NewReader(jsonData))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	var d diagnoser
	d.message(md, v, "")
	return d.errs
}

// diagnoser collects the problems found by one walk.
type diagnoser struct {
	errs Errors
}

// message checks v, the JSON form of a message of type md.
func (d *diagnoser) message(md protoreflect.MessageDescriptor, v any, path string) {
	if d.wellKnown(md, v, path) {
		return
	}
	obj, ok := v.(map[string]any)
	if !ok {
		d.errs.add(path, fmt.Sprintf("expected a mapping (%s), got %s", md.Name(), jsonKind(v)))
		return
	}
	seen := map[protoreflect.FieldNumber]string{}
	oneofs := map[protoreflect.FullName]string{}
	for _, key := range sortedKeys(obj) {
		fd := fieldByJSONKey(md, key)
		if fd == nil {
			d.errs.add(joinField(path, key), unknownFieldReason(md, key))
			continue
		}
		p := joinField(path, string(fd.Name()))
		if prev, dup := seen[fd.Number()]; dup {
			d.errs.add(p, fmt.Sprintf("set twice (as %q and %q)", prev, key))
			continue
		}
		seen[fd.Number()] = key
		val := obj[key]
		if val == nil && !acceptsNull(fd) {
			continue // protojson: null leaves the field unset
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if other, set := oneofs[od.FullName()]; set {
				d.errs.add(p, fmt.Sprintf("only one of the %s fields may be set; %s is set too", od.Name(), other))
				continue
			}
			oneofs[od.FullName()] = string(fd.Name())
		}
		d.field(fd, val, p)
	}
}

// field checks the value of one field: a list, a map or a single value.
func (d *diagnoser) field(fd protoreflect.FieldDescriptor, v any, path string) {
	switch {
	case fd.IsList():
		list, ok := v.([]any)
		if !ok {
			d.errs.add(path, "expected a list, got "+jsonKind(v))
			return
		}
		for i, e := range list {
			d.value(fd, e, joinIndex(path, i))
		}
	case fd.IsMap():
		obj, ok := v.(map[string]any)
		if !ok {
			d.errs.add(path, "expected a mapping, got "+jsonKind(v))
			return
		}
		for _, k := range sortedKeys(obj) {
			p := joinKey(path, k)
			if reason := mapKeyProblem(fd.MapKey().Kind(), k); reason != "" {
				d.errs.add(p, reason)
				continue
			}
			d.value(fd.MapValue(), obj[k], p)
		}
	default:
		d.value(fd, v, path)
	}
}

// value checks one element of fd's type.
func (d *diagnoser) value(fd protoreflect.FieldDescriptor, v any, path string) {
	if v == nil && !acceptsNull(fd) {
		d.errs.add(path, "null is not allowed here")
		return
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if fd.Message().FullName() == anyFullName {
			d.any(fd, v, path)
			return
		}
		d.message(fd.Message(), v, path)
	case protoreflect.EnumKind:
		d.enum(fd.Enum(), v, path)
	default:
		if reason := scalarProblem(fd.Kind(), v); reason != "" {
			d.errs.add(path, reason)
		}
	}
}

// any checks a google.protobuf.Any written as {"@type": URL, fields...}.
func (d *diagnoser) any(fd protoreflect.FieldDescriptor, v any, path string) {
	obj, ok := v.(map[string]any)
	if !ok {
		d.errs.add(path, `expected a mapping with "@type", got `+jsonKind(v))
		return
	}
	if len(obj) == 0 {
		return
	}
	types, here := anyTypesAt(fd)
	url, ok := obj["@type"].(string)
	if !ok {
		d.errs.add(path, `"@type" is missing: an Any must name its type, e.g. "@type": type.googleapis.com/`+string(types[0]))
		return
	}
	name := typeNameOf(url)
	mt, err := (supportedResolver{}).FindMessageByName(name)
	if err != nil || !slices.Contains(types, name) {
		d.errs.add(path, unsupportedTypeReason(name, types, here))
		return
	}
	rest := make(map[string]any, len(obj)-1)
	for k, e := range obj {
		if k != "@type" {
			rest[k] = e
		}
	}
	if hasCustomJSON(mt.Descriptor().FullName()) {
		d.message(mt.Descriptor(), rest["value"], path)
		return
	}
	d.message(mt.Descriptor(), rest, path)
}

// enum checks an enum value: its name, or its number.
func (d *diagnoser) enum(ed protoreflect.EnumDescriptor, v any, path string) {
	switch t := v.(type) {
	case string:
		if ed.Values().ByName(protoreflect.Name(t)) == nil {
			d.errs.add(path, fmt.Sprintf("unknown value %q (valid: %s)", t, enumNames(ed)))
		}
	case json.Number:
		if reason := intProblem(string(t), big.NewInt(math.MinInt32), big.NewInt(math.MaxInt32)); reason != "" {
			d.errs.add(path, reason)
		}
	case nil:
		// only google.protobuf.NullValue gets here
	default:
		d.errs.add(path, fmt.Sprintf("expected an enum value name (%s), got %s", enumNames(ed), jsonKind(v)))
	}
}

// wellKnown checks the messages protojson writes in a special JSON form and
// reports whether md was one of them.
func (d *diagnoser) wellKnown(md protoreflect.MessageDescriptor, v any, path string) bool {
	if !hasCustomJSON(md.FullName()) {
		return false
	}
	var reason string
	switch md.FullName() {
	case "google.protobuf.Duration":
		reason = durationProblem(v)
	case "google.protobuf.Timestamp":
		reason = timestampProblem(v)
	case "google.protobuf.FieldMask":
		if _, ok := v.(string); !ok {
			reason = "expected a string, got " + jsonKind(v)
		}
	case "google.protobuf.Struct":
		if _, ok := v.(map[string]any); !ok {
			reason = "expected a mapping, got " + jsonKind(v)
		}
	case "google.protobuf.ListValue":
		if _, ok := v.([]any); !ok {
			reason = "expected a list, got " + jsonKind(v)
		}
	case "google.protobuf.Value":
	default: // wrappers: the JSON of the wrapped scalar
		reason = scalarProblem(md.Fields().ByName("value").Kind(), v)
	}
	if reason != "" {
		d.errs.add(path, reason)
	}
	return true
}

// hasCustomJSON reports whether protojson writes the type in a special form.
func hasCustomJSON(name protoreflect.FullName) bool {
	if !strings.HasPrefix(string(name), "google.protobuf.") {
		return false
	}
	switch name.Name() {
	case "Duration", "Timestamp", "FieldMask", "Struct", "ListValue", "Value",
		"BoolValue", "StringValue", "BytesValue", "Int32Value", "Int64Value",
		"UInt32Value", "UInt64Value", "FloatValue", "DoubleValue":
		return true
	}
	return false
}

// acceptsNull reports whether JSON null is a value (not "unset") for fd.
func acceptsNull(fd protoreflect.FieldDescriptor) bool {
	if md := fd.Message(); md != nil {
		return md.FullName() == "google.protobuf.Value"
	}
	if ed := fd.Enum(); ed != nil {
		return ed.FullName() == "google.protobuf.NullValue"
	}
	return false
}

// fieldByJSONKey finds a field by its JSON name or its proto name, as
// protojson does.
func fieldByJSONKey(md protoreflect.MessageDescriptor, key string) protoreflect.FieldDescriptor {
	fds := md.Fields()
	if fd := fds.ByJSONName(key); fd != nil {
		return fd
	}
	return fds.ByTextName(key)
}

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

// durationProblem checks a google.protobuf.Duration string.
func durationProblem(v any) string {
	s, ok := v.(string)
	if !ok {
		return fmt.Sprintf(`expected a duration string such as "5s" or "0.25s", got %s`, jsonKind(v))
	}
	if !durationRE.MatchString(s) {
		return fmt.Sprintf(`invalid duration %q: write seconds with an "s" suffix, such as "5s" or "0.25s"`, s)
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

// unknownFieldReason says a key is not a field of md, suggesting the
// closest field name when one is near.
func unknownFieldReason(md protoreflect.MessageDescriptor, key string) string {
	if key == "@type" {
		return fmt.Sprintf(`unknown field ("@type" belongs in a google.protobuf.Any field such as typed_config; %s is not one)`, md.FullName())
	}
	best, bestDist := "", 3
	for i := 0; i < md.Fields().Len(); i++ {
		name := string(md.Fields().Get(i).Name())
		if d := editDistance(strings.ToLower(key), name); d < bestDist {
			best, bestDist = name, d
		}
	}
	reason := "unknown field in " + string(md.FullName())
	if best != "" {
		reason += fmt.Sprintf(" (did you mean %s?)", best)
	}
	return reason
}

// unsupportedTypeReason says an @type is not accepted; here tells whether
// supported lists the types of this field or every supported type.
func unsupportedTypeReason(name protoreflect.FullName, supported []protoreflect.FullName, here bool) string {
	if here {
		return fmt.Sprintf("type %s is not supported by weft-proxy (supported here: %s)", name, joinNames(supported))
	}
	return fmt.Sprintf("type %s is not supported by weft-proxy (its supported extension types are: %s)", name, joinNames(supported))
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// enumNames lists an enum's value names.
func enumNames(ed protoreflect.EnumDescriptor) string {
	names := make([]string, ed.Values().Len())
	for i := range names {
		names[i] = string(ed.Values().Get(i).Name())
	}
	return strings.Join(names, ", ")
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
		return fmt.Sprintf("a string (%q)", t)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

// sortedKeys returns a map's keys in order, for deterministic output.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
