package bootstrap

import (
	"fmt"
	"slices"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Validate checks a decoded bootstrap and returns every problem at once as
// Errors (nil when there is none):
//   - the protoc-gen-validate rules go-control-plane generates, on the
//     bootstrap and on every typed_config inside it (PGV does not look
//     inside google.protobuf.Any);
//   - the supported subset (CheckSupported);
//   - the cross-reference checks Envoy makes when it loads a static
//     configuration (referenced clusters exist, unique names, router last,
//     IP listener addresses, ...).
//
// Each problem is a *FieldError whose Path names the field; Validate does
// not know lines (LoadAndValidate adds them).
func Validate(b *bootstrapv3.Bootstrap) error {
	return validate(b).err()
}

// ValidateResource checks one xDS resource (Listener, Cluster,
// RouteConfiguration, ClusterLoadAssignment): generated validation and the
// supported subset, each problem prefixed by path (e.g. `cluster "web"`).
// Cross-resource checks are the caller's, who knows the other resources.
func ValidateResource(m proto.Message, path string) error {
	return validateMessage(m, path).dedup().err()
}

// validate runs every check on b.
func validate(b *bootstrapv3.Bootstrap) Errors {
	errs := validateMessage(b, "")
	errs = append(errs, crossCheck(b)...)
	return errs.dedup()
}

// validateMessage runs PGV on m and on each typed_config inside it, and the
// allowlist walk.
func validateMessage(m proto.Message, path string) Errors {
	errs := pgv(m.ProtoReflect(), path)
	c := checker{visitAny: func(p string, inner protoreflect.Message) {
		errs = append(errs, pgv(inner, p)...)
	}}
	c.root(m.ProtoReflect(), path)
	// The rules of a field weft-proxy does not support are moot: keep only
	// "not supported" for it.
	errs = slices.DeleteFunc(errs, func(e *FieldError) bool { return under(e.Path, c.unsupported) })
	return append(errs, c.errs...)
}

// under reports whether path is one of prefixes or inside one of them.
func under(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if rest, ok := strings.CutPrefix(path, p); ok && (rest == "" || rest[0] == '.' || rest[0] == '[') {
			return true
		}
	}
	return false
}

// pgv runs the generated ValidateAll on m, converting its nested errors to
// field paths.
func pgv(m protoreflect.Message, path string) Errors {
	v, ok := m.Interface().(interface{ ValidateAll() error })
	if !ok {
		return nil
	}
	err := v.ValidateAll()
	if err == nil {
		return nil
	}
	var errs Errors
	pgvErrors(err, m.Descriptor(), path, &errs)
	return errs
}

// pgvError is the shape of every generated XValidationError.
type pgvError interface {
	Field() string
	Reason() string
	Cause() error
	Key() bool
}

// pgvErrors flattens a generated validation error. The generated errors
// name fields in Go form ("Listeners[0]", "TypedExtensionProtocolOptions[k]")
// and nest "embedded message failed validation" errors for each message
// level; md follows the levels so the Go names map back to proto names.
func pgvErrors(err error, md protoreflect.MessageDescriptor, path string, out *Errors) {
	if multi, ok := err.(interface{ AllErrors() []error }); ok {
		for _, e := range multi.AllErrors() {
			pgvErrors(e, md, path, out)
		}
		return
	}
	ve, ok := err.(pgvError)
	if !ok {
		out.add(path, err.Error())
		return
	}
	goName, suffix := splitGoField(ve.Field())
	fd := fieldByGoName(md, goName)
	name := protoName(md, goName, fd)
	p := joinField(path, name) + suffix
	if ve.Cause() != nil && fd != nil && strings.Contains(ve.Reason(), "embedded message failed validation") {
		if child := messageOf(fd); child != nil {
			pgvErrors(ve.Cause(), child, p, out)
			return
		}
	}
	reason := ve.Reason()
	if ve.Key() {
		reason = "key: " + reason
	}
	if ve.Cause() != nil {
		reason += ": " + ve.Cause().Error()
	}
	out.add(p, reason)
}

// splitGoField splits "Listeners[0]" into "Listeners" and "[0]", and
// "Options[key]" into "Options" and `["key"]`.
func splitGoField(f string) (name, suffix string) {
	i := strings.IndexByte(f, '[')
	if i < 0 || !strings.HasSuffix(f, "]") {
		return f, ""
	}
	inner := f[i+1 : len(f)-1]
	if isDigits(inner) {
		return f[:i], f[i:]
	}
	return f[:i], fmt.Sprintf("[%q]", inner)
}

// isDigits reports whether s is a non-empty run of ASCII digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// fieldByGoName finds the field whose generated Go name is goName
// (protoc-gen-go drops underscores and capitalises the letter after each).
func fieldByGoName(md protoreflect.MessageDescriptor, goName string) protoreflect.FieldDescriptor {
	want := strings.ToLower(goName)
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		if strings.ReplaceAll(string(fd.Name()), "_", "") == want {
			return fd
		}
	}
	return nil
}

// protoName returns the proto name for a generated Go field name: the
// field's, a oneof's (PGV reports "value is required" on the oneof), or a
// best-effort snake_case.
func protoName(md protoreflect.MessageDescriptor, goName string, fd protoreflect.FieldDescriptor) string {
	if fd != nil {
		return string(fd.Name())
	}
	want := strings.ToLower(goName)
	for i := 0; i < md.Oneofs().Len(); i++ {
		od := md.Oneofs().Get(i)
		if strings.ReplaceAll(string(od.Name()), "_", "") == want {
			return string(od.Name())
		}
	}
	return snake(goName)
}

// messageOf returns the message type a field holds (map values included).
func messageOf(fd protoreflect.FieldDescriptor) protoreflect.MessageDescriptor {
	if fd.IsMap() {
		return fd.MapValue().Message()
	}
	return fd.Message()
}

// snake converts a Go CamelCase name to snake_case.
func snake(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}
