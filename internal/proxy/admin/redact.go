package admin

import (
	"github.com/cncf/xds/go/udpa/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// redacted replaces sensitive text, as in Envoy's MessageUtil::redact.
const redacted = "[redacted]"

// redact hides secrets in m before /config_dump prints it, following
// Envoy's MessageUtil::redact: below a field marked
// (udpa.annotations.sensitive) — a TLS private key, a session ticket key,
// an HMAC secret — every string and bytes field becomes "[redacted]" and
// every other scalar is cleared. Anys whose type is linked in are unpacked,
// redacted and repacked; an Any of unknown type is walked as a plain
// message (its bytes are redacted only under a sensitive field). Envoy
// also reifies TypedStruct; weft does not (it accepts no TypedStruct).
// m is modified in place: pass a copy.
func redact(m protoreflect.Message, sensitive bool) {
	if redactAny(m, sensitive) {
		return
	}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		s := sensitive || isSensitive(fd)
		switch {
		case fd.IsMap():
			redactMap(m.Mutable(fd).Map(), fd.MapValue(), s)
		case fd.Message() != nil && fd.IsList():
			l := m.Mutable(fd).List()
			for j := 0; j < l.Len(); j++ {
				redact(l.Get(j).Message(), s)
			}
		case fd.Message() != nil:
			redact(m.Mutable(fd).Message(), s)
		case s:
			redactScalar(m, fd)
		}
	}
}

// redactScalar replaces a sensitive string or bytes field (each element of
// a repeated one) and clears any other scalar.
func redactScalar(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
	var v protoreflect.Value
	switch fd.Kind() {
	case protoreflect.StringKind:
		v = protoreflect.ValueOfString(redacted)
	case protoreflect.BytesKind:
		v = protoreflect.ValueOfBytes([]byte(redacted))
	default:
		m.Clear(fd)
		return
	}
	if !fd.IsList() {
		m.Set(fd, v)
		return
	}
	l := m.Mutable(fd).List()
	for j := 0; j < l.Len(); j++ {
		l.Set(j, v)
	}
}

// redactMap walks a map's message values, or redacts its scalar values
// when the map is sensitive.
func redactMap(mp protoreflect.Map, val protoreflect.FieldDescriptor, sensitive bool) {
	type entry struct {
		k protoreflect.MapKey
		v protoreflect.Value
	}
	var entries []entry
	mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		entries = append(entries, entry{k, v})
		return true
	})
	for _, e := range entries {
		switch {
		case val.Message() != nil:
			redact(e.v.Message(), sensitive)
		case !sensitive:
		case val.Kind() == protoreflect.StringKind:
			mp.Set(e.k, protoreflect.ValueOfString(redacted))
		case val.Kind() == protoreflect.BytesKind:
			mp.Set(e.k, protoreflect.ValueOfBytes([]byte(redacted)))
		default:
			mp.Clear(e.k)
		}
	}
}

// redactAny redacts inside an Any whose type is known and reports whether
// it did (Envoy's redactAny).
func redactAny(m protoreflect.Message, sensitive bool) bool {
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		return false
	}
	if len(a.GetValue()) == 0 {
		return true
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		return false
	}
	redact(inner.ProtoReflect(), sensitive)
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(inner)
	if err != nil {
		// Cannot repack: drop the content rather than risk printing it.
		a.Value = nil
		return true
	}
	a.Value = b
	return true
}

// isSensitive reports the field's (udpa.annotations.sensitive) option.
func isSensitive(fd protoreflect.FieldDescriptor) bool {
	opts := fd.Options()
	if opts == nil {
		return false
	}
	s, _ := proto.GetExtension(opts, annotations.E_Sensitive).(bool)
	return s
}
