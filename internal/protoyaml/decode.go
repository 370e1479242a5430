package protoyaml

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Resolver resolves the types named by google.protobuf.Any "@type" values
// (protojson.UnmarshalOptions.Resolver).
type Resolver interface {
	protoregistry.MessageTypeResolver
	protoregistry.ExtensionTypeResolver
}

// AnyPolicy decides which message types a google.protobuf.Any field
// accepts, for the explanations of a failed decode. Decoding itself accepts
// what Options.Resolver resolves, so the two must agree.
type AnyPolicy interface {
	// Accept returns "" when the type may be used in the Any field fd, or
	// the reason it may not.
	Accept(fd protoreflect.FieldDescriptor, name protoreflect.FullName) string
	// Example returns a type to suggest in fd when "@type" is missing, or
	// "" for none.
	Example(fd protoreflect.FieldDescriptor) protoreflect.FullName
}

// Options control decoding. The zero value decodes like protojson with the
// global type registry, naming fields by their proto names in paths.
type Options struct {
	// Resolver resolves Any types; nil means protoregistry.GlobalTypes.
	Resolver Resolver
	// AnyPolicy explains rejected Any types; nil accepts any type the
	// Resolver knows.
	AnyPolicy AnyPolicy
	// JSONNames makes paths and suggestions use JSON field names
	// (lowerCamel, as Kubernetes and Istio YAML write them) instead of
	// proto names.
	JSONNames bool
	// GoDurations makes google.protobuf.Duration fields also accept Go
	// duration strings ("1m30s", "250ms", "1h"), as istio.io/api's jsonpb
	// decoding does; protojson alone accepts only seconds ("90s", "0.25s").
	GoDurations bool
}

// resolver returns the configured resolver or the global registry.
func (o Options) resolver() Resolver {
	if o.Resolver != nil {
		return o.Resolver
	}
	return protoregistry.GlobalTypes
}

// Unmarshal decodes one JSON-compatible value (as Document.Value returns)
// into m with protojson, rejecting unknown fields. On failure m is left in
// an unspecified state and every problem found is returned with its path
// below prefix (no lines: see Problems.SetLines).
func (o Options) Unmarshal(v any, m proto.Message, prefix string) Problems {
	if o.GoDurations {
		v = normalizeDurations(m.ProtoReflect().Descriptor(), v)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return Problems{{Path: prefix, Reason: "cannot encode as JSON: " + err.Error()}}
	}
	return o.UnmarshalJSONText(data, m, prefix)
}

// UnmarshalJSONText is Unmarshal for JSON text.
func (o Options) UnmarshalJSONText(data []byte, m proto.Message, prefix string) Problems {
	opts := protojson.UnmarshalOptions{Resolver: o.resolver()}
	err := opts.Unmarshal(data, m)
	if err == nil {
		return nil
	}
	ps := o.Diagnose(data, m.ProtoReflect().Descriptor(), prefix)
	if len(ps) == 0 {
		// The walker did not find what protojson objects to; its message
		// has only a JSON offset, but it is better than nothing.
		ps = Problems{{Path: prefix, Reason: err.Error()}}
	}
	return ps
}

// normalizeDurations rewrites, in place, the Go duration strings found in
// Duration fields of v (a value of message type md) to protojson's seconds
// form. Values that are not what the descriptor expects are left for
// Diagnose to report.
func normalizeDurations(md protoreflect.MessageDescriptor, v any) any {
	if md.FullName() == "google.protobuf.Duration" {
		if s, ok := v.(string); ok {
			if secs, ok := goDuration(s); ok {
				return secs
			}
		}
		return v
	}
	obj, ok := v.(map[string]any)
	if !ok || strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
		return v
	}
	for key, val := range obj {
		fd := fieldByJSONKey(md, key)
		if fd == nil || fd.Message() == nil {
			continue
		}
		switch {
		case fd.IsMap():
			if mv := fd.MapValue(); mv.Message() != nil {
				if m, ok := val.(map[string]any); ok {
					for k, e := range m {
						m[k] = normalizeDurations(mv.Message(), e)
					}
				}
			}
		case fd.IsList():
			if list, ok := val.([]any); ok {
				for i, e := range list {
					list[i] = normalizeDurations(fd.Message(), e)
				}
			}
		default:
			obj[key] = normalizeDurations(fd.Message(), val)
		}
	}
	return obj
}

// goDuration converts a Go duration string that is not already in
// protojson's form to protojson's form.
func goDuration(s string) (string, bool) {
	if durationRE.MatchString(s) {
		return s, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return s, false
	}
	return formatSeconds(d), true
}

// formatSeconds writes a duration in protojson's form.
func formatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
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

// fieldName returns the name of fd used in paths.
func (o Options) fieldName(fd protoreflect.FieldDescriptor) string {
	if o.JSONNames {
		return fd.JSONName()
	}
	return string(fd.Name())
}

// typeNameOf returns the message name of a type URL (the part after the
// last '/'), as protoregistry does.
func typeNameOf(url string) protoreflect.FullName {
	if i := strings.LastIndexByte(url, '/'); i >= 0 {
		url = url[i+1:]
	}
	return protoreflect.FullName(url)
}

// registryPolicy is the default AnyPolicy: any type the resolver knows.
type registryPolicy struct{ r Resolver }

var _ AnyPolicy = registryPolicy{}

// Accept implements AnyPolicy.
func (p registryPolicy) Accept(_ protoreflect.FieldDescriptor, name protoreflect.FullName) string {
	if _, err := p.r.FindMessageByName(name); err != nil {
		return fmt.Sprintf("unknown type %s (not a message type this program knows)", name)
	}
	return ""
}

// Example implements AnyPolicy.
func (registryPolicy) Example(protoreflect.FieldDescriptor) protoreflect.FullName { return "" }
