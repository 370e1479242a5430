package bootstrap

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// CheckSupported reports every set field of m that weft-proxy does not
// support, every supported field holding a value it does not support, and
// every google.protobuf.Any whose type it does not support at that place.
// It descends into Any values (typed_config), unpacking them through
// protoregistry.GlobalTypes. path prefixes every reported path; it may be
// empty (for a Bootstrap) or name an xDS resource, e.g. `listener "ingress"`.
// The result is nil when everything set is supported. It is safe for
// concurrent use.
func CheckSupported(m proto.Message, path string) Errors {
	var c checker
	c.root(m.ProtoReflect(), path)
	return c.errs
}

// checker walks a message against the allowlist. visitAny, when set, is
// called for every Any it unpacks (Validate uses it to run the generated
// validation on typed_config contents, which PGV does not descend into).
type checker struct {
	errs        Errors
	visitAny    func(path string, m protoreflect.Message)
	unsupported []string // paths of the set fields reported as unsupported
}

// root checks a top-level message: its type needs an allowlist entry.
func (c *checker) root(m protoreflect.Message, path string) {
	name := m.Descriptor().FullName()
	rule, ok := ruleFor(name)
	if !ok && !isLeaf(name) {
		c.errs.add(path, fmt.Sprintf("%s is not supported by weft-proxy", name))
		return
	}
	c.message(m, rule, path)
}

// message checks the set fields of m against rule (nil rule: nothing may
// be set, unless m is a leaf type).
func (c *checker) message(m protoreflect.Message, rule msgRule, path string) {
	md := m.Descriptor()
	if isLeaf(md.FullName()) {
		return
	}
	if len(m.GetUnknown()) > 0 {
		c.errs.add(path, "contains fields unknown to weft-proxy's Envoy API version "+
			"(sent by a newer control plane?); they cannot be honoured")
	}
	fds := md.Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		if !m.Has(fd) {
			continue
		}
		p := joinField(path, string(fd.Name()))
		fr, ok := rule[fd.Name()]
		if !ok {
			c.errs.add(p, "not supported by weft-proxy")
			c.unsupported = append(c.unsupported, p)
			continue
		}
		c.field(m.Get(fd), fd, fr, p)
	}
}

// field checks a supported field's value: each element of a list, each
// entry of a map, or the single value.
func (c *checker) field(v protoreflect.Value, fd protoreflect.FieldDescriptor, fr fieldRule, path string) {
	switch {
	case fd.IsList():
		l := v.List()
		for i := 0; i < l.Len(); i++ {
			c.value(l.Get(i), fd, fr, joinIndex(path, i))
		}
	case fd.IsMap():
		for _, k := range sortedMapKeys(v.Map()) {
			p := joinKey(path, k.String())
			if fr.Keys != nil && !slices.Contains(fr.Keys, k.String()) {
				c.errs.add(p, fmt.Sprintf("key %q is not supported by weft-proxy (supported: %s)",
					k.String(), strings.Join(fr.Keys, ", ")))
				continue
			}
			c.value(v.Map().Get(k), fd.MapValue(), fr, p)
		}
	default:
		c.value(v, fd, fr, path)
	}
}

// value checks one value: enum restriction, custom check, then the message
// it holds.
func (c *checker) value(v protoreflect.Value, fd protoreflect.FieldDescriptor, fr fieldRule, path string) {
	if fd.Kind() == protoreflect.EnumKind && fr.Enums != nil {
		c.enum(v.Enum(), fd.Enum(), fr.Enums, path)
	}
	if fr.Check != nil {
		if reason := fr.Check(v); reason != "" {
			c.errs.add(path, reason)
		}
	}
	if fd.Message() == nil {
		return
	}
	child := v.Message()
	name := child.Descriptor().FullName()
	if name == anyFullName {
		if fr.EmptyAny && isEmptyAny(child) {
			return
		}
		c.any(child, fr.Types, path)
		return
	}
	rule := fr.Fields
	if rule == nil {
		rule, _ = ruleFor(name)
	}
	c.message(child, rule, path)
}

// enum reports an enum value outside the accepted names.
func (c *checker) enum(n protoreflect.EnumNumber, ed protoreflect.EnumDescriptor, accepted []string, path string) {
	ev := ed.Values().ByNumber(n)
	if ev == nil {
		c.errs.add(path, fmt.Sprintf("%d is not a value of %s", n, ed.FullName()))
		return
	}
	if !slices.Contains(accepted, string(ev.Name())) {
		c.errs.add(path, fmt.Sprintf("%s is not supported by weft-proxy (supported: %s)",
			ev.Name(), strings.Join(accepted, ", ")))
	}
}

// any checks an Any's type against the types accepted at this place, then
// unpacks it and checks its contents.
func (c *checker) any(a protoreflect.Message, types []protoreflect.FullName, path string) {
	fds := a.Descriptor().Fields()
	url := a.Get(fds.ByName("type_url")).String()
	if url == "" {
		c.errs.add(path, `"@type" is missing`)
		return
	}
	name := typeNameOf(url)
	if !slices.Contains(types, name) {
		c.errs.add(path, unsupportedTypeReason(name, types, true))
		return
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
	if err != nil {
		// A supported type that is not linked: a bug in extensions.go.
		c.errs.add(path, fmt.Sprintf("type %s is supported but not linked into this binary", name))
		return
	}
	inner := mt.New()
	opts := proto.UnmarshalOptions{Resolver: protoregistry.GlobalTypes}
	if err := opts.Unmarshal(a.Get(fds.ByName("value")).Bytes(), inner.Interface()); err != nil {
		c.errs.add(path, fmt.Sprintf("cannot decode %s: %v", name, err))
		return
	}
	if c.visitAny != nil {
		c.visitAny(path, inner)
	}
	rule, _ := ruleFor(name)
	c.message(inner, rule, path)
}

// isEmptyAny reports whether an Any has neither type nor contents.
func isEmptyAny(a protoreflect.Message) bool {
	fds := a.Descriptor().Fields()
	return a.Get(fds.ByName("type_url")).String() == "" && len(a.Get(fds.ByName("value")).Bytes()) == 0
}

// sortedMapKeys returns a map's keys in order, for deterministic output.
func sortedMapKeys(m protoreflect.Map) []protoreflect.MapKey {
	keys := make([]protoreflect.MapKey, 0, m.Len())
	m.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	return keys
}
