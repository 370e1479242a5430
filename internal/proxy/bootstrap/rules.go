package bootstrap

import (
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// msgRule lists the fields of one message that weft-proxy supports. A set
// field that is not listed is reported as unsupported. A non-nil empty
// msgRule means "no field may be set".
type msgRule map[protoreflect.Name]fieldRule

// fieldRule says how far one supported field is supported.
type fieldRule struct {
	// Enums, for an enum field, lists the accepted value names; nil accepts
	// every value the enum defines.
	Enums []string
	// Types, for a google.protobuf.Any field (or a map whose values are Any),
	// lists the accepted message full names.
	Types []protoreflect.FullName
	// Keys, for a map field, lists the accepted keys; nil accepts any key.
	Keys []string
	// Fields, for a message field, overrides the allowlist entry of the
	// field's message type at this position (the same message type is
	// supported to different extents in different places). nil means "use
	// the type's entry".
	Fields msgRule
	// EmptyAny, for an Any field, accepts an Any without "@type" and
	// contents (FilterConfig.config: enable a filter on a route without
	// configuration).
	EmptyAny bool
	// Check, when set, vets a set value and returns why it is not supported
	// ("" when it is). For a list or map it is called once per element.
	Check func(protoreflect.Value) string
}

// anyFullName is the full name of google.protobuf.Any.
const anyFullName protoreflect.FullName = "google.protobuf.Any"

// isLeaf reports whether messages of this type are accepted whole, without
// looking at their fields: well-known value types (Duration, wrappers,
// Struct, ...) and the opaque types of supported.go.
func isLeaf(name protoreflect.FullName) bool {
	if name == anyFullName {
		return false
	}
	return strings.HasPrefix(string(name), "google.protobuf.") || isOpaque(name)
}

// field returns a rule with no restriction beyond "supported".
func field() fieldRule { return fieldRule{} }

// enumOf returns a rule accepting only the named enum values.
func enumOf(names ...string) fieldRule { return fieldRule{Enums: names} }

// anyOf returns a rule for an Any field accepting the named types.
func anyOf(types ...protoreflect.FullName) fieldRule { return fieldRule{Types: types} }

// only returns a rule for a message field that supports only the named
// fields of that message at this position.
func only(names ...protoreflect.Name) fieldRule {
	r := make(msgRule, len(names))
	for _, n := range names {
		r[n] = field()
	}
	return fieldRule{Fields: r}
}

// fields builds a msgRule in which every named field is simply supported.
func fields(names ...protoreflect.Name) msgRule {
	r := make(msgRule, len(names))
	for _, n := range names {
		r[n] = field()
	}
	return r
}

// with returns r with extra rules added (overriding same-named ones).
func (r msgRule) with(extra map[protoreflect.Name]fieldRule) msgRule {
	for n, fr := range extra {
		r[n] = fr
	}
	return r
}

// allowlist is the supported subset, built once; it is never modified after
// construction.
var allowlist = sync.OnceValue(buildAllowlist)

// ruleFor returns the allowlist entry for a message type, and whether there
// is one.
func ruleFor(name protoreflect.FullName) (msgRule, bool) {
	r, ok := allowlist()[name]
	return r, ok
}

// supportedAnyTypes returns every type accepted in some Any field, sorted.
// Parse resolves exactly these @type values.
var supportedAnyTypes = sync.OnceValue(func() []protoreflect.FullName {
	var out []protoreflect.FullName
	for _, rule := range allowlist() {
		for _, fr := range rule {
			for _, t := range fr.Types {
				if !slices.Contains(out, t) {
					out = append(out, t)
				}
			}
		}
	}
	slices.Sort(out)
	return out
})

// anyTypesAt returns the types accepted in the Any field fd (here = true),
// or every supported Any type when fd is not a supported Any field (so a
// message can still list what weft-proxy knows).
func anyTypesAt(fd protoreflect.FieldDescriptor) (types []protoreflect.FullName, here bool) {
	fd = mapFieldOf(fd)
	if rule, ok := ruleFor(fd.ContainingMessage().FullName()); ok {
		if fr, ok := rule[fd.Name()]; ok && len(fr.Types) > 0 {
			return fr.Types, true
		}
	}
	return supportedAnyTypes(), false
}

// joinNames formats type names for an error message.
func joinNames(names []protoreflect.FullName) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}

// mapFieldOf returns, for the value field of a map entry, the map field
// itself (whose rule applies); any other field is returned unchanged.
func mapFieldOf(fd protoreflect.FieldDescriptor) protoreflect.FieldDescriptor {
	entry := fd.ContainingMessage()
	if !entry.IsMapEntry() {
		return fd
	}
	parent, ok := entry.Parent().(protoreflect.MessageDescriptor)
	if !ok {
		return fd
	}
	for i := 0; i < parent.Fields().Len(); i++ {
		if f := parent.Fields().Get(i); f.Message() != nil && f.Message().FullName() == entry.FullName() {
			return f
		}
	}
	return fd
}
