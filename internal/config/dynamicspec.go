package config

import (
	"fmt"
	"sync"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// This file holds what weft's own kinds (LocalRateLimit, Workload) share:
// a spec schema written as a protobuf file descriptor in text format,
// decoded into dynamicpb messages, and read back field by field.

// specSchema returns the descriptor of message in the file descriptor
// written (text format) in schema, built once on first call. The schema is
// a constant of this package: a failure is a bug and panics, naming kind.
func specSchema(kind Kind, schema string, message protoreflect.Name) func() protoreflect.MessageDescriptor {
	return sync.OnceValue(func() protoreflect.MessageDescriptor {
		fdp := &descriptorpb.FileDescriptorProto{}
		if err := prototext.Unmarshal([]byte(schema), fdp); err != nil {
			panic(fmt.Sprintf("config: %s schema: %v", kind, err))
		}
		fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
		if err != nil {
			panic(fmt.Sprintf("config: %s schema: %v", kind, err))
		}
		return fd.Messages().ByName(message)
	})
}

// specOf reads obj's spec with read when obj is a decoded object of kind
// whose Spec is a dynamic message of desc; false otherwise (obj nil, of
// another kind, or holding another message).
func specOf[T any](obj *Object, kind Kind, desc protoreflect.MessageDescriptor, read func(protoreflect.Message) *T) (*T, bool) {
	if obj == nil || obj.Kind != kind {
		return nil, false
	}
	m, ok := obj.Spec.(*dynamicpb.Message)
	if !ok || m.Descriptor() != desc {
		return nil, false
	}
	return read(m), true
}

// specReader reads the fields of a dynamic spec message by their proto
// names. The names are those of this package's schemas: an unknown name is
// a bug (protoreflect panics on a nil field descriptor).
type specReader struct{ m protoreflect.Message }

// get returns the value of the field named name (its default when unset).
func (r specReader) get(name protoreflect.Name) protoreflect.Value {
	return r.m.Get(r.m.Descriptor().Fields().ByName(name))
}

// message returns a reader of the message field named name; false when the
// field is unset.
func (r specReader) message(name protoreflect.Name) (specReader, bool) {
	sub := r.get(name).Message()
	return specReader{sub}, sub.IsValid()
}

// strings copies a repeated string field; nil when empty.
func (r specReader) strings(name protoreflect.Name) []string {
	l := r.get(name).List()
	var out []string
	for i := 0; i < l.Len(); i++ {
		out = append(out, l.Get(i).String())
	}
	return out
}

// uint32s copies a repeated uint32 field; nil when empty.
func (r specReader) uint32s(name protoreflect.Name) []uint32 {
	l := r.get(name).List()
	var out []uint32
	for i := 0; i < l.Len(); i++ {
		out = append(out, uint32(l.Get(i).Uint()))
	}
	return out
}

// stringMap copies a map<string, string> field; nil when empty.
func (r specReader) stringMap(name protoreflect.Name) map[string]string {
	m := r.get(name).Map()
	if m.Len() == 0 {
		return nil
	}
	out := make(map[string]string, m.Len())
	m.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		out[k.String()] = v.String()
		return true
	})
	return out
}

// duration reads a google.protobuf.Duration field as written; nil when
// unset.
func (r specReader) duration(name protoreflect.Name) *durationpb.Duration {
	d, ok := r.message(name)
	if !ok {
		return nil
	}
	return &durationpb.Duration{
		Seconds: d.get("seconds").Int(),
		Nanos:   int32(d.get("nanos").Int()),
	}
}
