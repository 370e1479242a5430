package protoyaml

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// anyFullName is the full name of google.protobuf.Any.
const anyFullName protoreflect.FullName = "google.protobuf.Any"

// Diagnose walks JSON text that protojson rejected against the message
// descriptor md and reports every problem with its path below prefix.
// protojson's own error carries only a byte offset and stops at the first
// problem; this walker follows protojson's mapping rules (field names in
// proto or JSON form, null meaning "unset", Any with @type, the well-known
// types' JSON forms) so that it finds what protojson objects to, and more.
// It returns nil for text that is not JSON.
func (o Options) Diagnose(jsonData []byte, md protoreflect.MessageDescriptor, prefix string) Problems {
	dec := json.NewDecoder(bytes.NewReader(jsonData))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	d := diagnoser{o: o, policy: o.AnyPolicy}
	if d.policy == nil {
		d.policy = registryPolicy{o.resolver()}
	}
	d.message(md, v, prefix)
	return d.errs
}

// diagnoser collects the problems found by one walk.
type diagnoser struct {
	o      Options
	policy AnyPolicy
	errs   Problems
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
			d.errs.add(JoinField(path, key), d.unknownFieldReason(md, key))
			continue
		}
		name := d.o.fieldName(fd)
		p := JoinField(path, name)
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
			oneofs[od.FullName()] = name
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
			d.value(fd, e, JoinIndex(path, i))
		}
	case fd.IsMap():
		obj, ok := v.(map[string]any)
		if !ok {
			d.errs.add(path, "expected a mapping, got "+jsonKind(v))
			return
		}
		for _, k := range sortedKeys(obj) {
			p := JoinKey(path, k)
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
	url, ok := obj["@type"].(string)
	if !ok {
		reason := `"@type" is missing: an Any must name its type`
		if ex := d.policy.Example(fd); ex != "" {
			reason += `, e.g. "@type": type.googleapis.com/` + string(ex)
		}
		d.errs.add(path, reason)
		return
	}
	name := typeNameOf(url)
	if reason := d.policy.Accept(fd, name); reason != "" {
		d.errs.add(path, reason)
		return
	}
	mt, err := d.o.resolver().FindMessageByName(name)
	if err != nil {
		d.errs.add(path, fmt.Sprintf("unknown type %s (not a message type this program knows)", name))
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
		reason = durationProblem(v, d.o.GoDurations)
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

// unknownFieldReason says a key is not a field of md, suggesting the
// closest field name when one is near.
func (d *diagnoser) unknownFieldReason(md protoreflect.MessageDescriptor, key string) string {
	if key == "@type" {
		return fmt.Sprintf(`unknown field ("@type" belongs only in a google.protobuf.Any field; %s is not one)`, md.FullName())
	}
	reason := "unknown field in " + string(md.FullName())
	if best := closestField(md, key, d.o.JSONNames); best != "" {
		reason += fmt.Sprintf(" (did you mean %s?)", best)
	}
	return reason
}

// closestField returns the field name of md nearest to key, when it is
// near enough to be a likely typo.
func closestField(md protoreflect.MessageDescriptor, key string, jsonNames bool) string {
	names := make([]string, md.Fields().Len())
	for i := range names {
		fd := md.Fields().Get(i)
		names[i] = string(fd.Name())
		if jsonNames {
			names[i] = fd.JSONName()
		}
	}
	return Closest(key, names)
}

// Closest returns the name among names nearest to key, ignoring case and
// underscores, when it is near enough (an edit distance under 3) to be a
// likely typo; otherwise "". It is the "did you mean" of problem messages.
func Closest(key string, names []string) string {
	if len(key) > 64 {
		return ""
	}
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "_", "") }
	k := norm(key)
	best, bestDist := "", 3
	for _, name := range names {
		if dist := editDistance(k, norm(name)); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	return best
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

// sortedKeys returns a map's keys in order, for deterministic output.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
