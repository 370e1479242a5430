package rbac

import (
	"fmt"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"

	strmatch "github.com/weftmesh/weft/internal/proxy/matcher"
)

// metadataMatcher is Envoy's MetadataMatcher over the stream's dynamic
// metadata: the value at filter / path (struct keys) is matched by a
// ValueMatcher; a missing value is an absent value (it matches only
// present_match: false, or a null match).
type metadataMatcher struct {
	filter string
	path   []string
	value  valueMatcher
	invert bool
}

func (m *metadataMatcher) match(a *Attributes) bool {
	return m.value.match(lookupMetadata(a.Metadata, m.filter, m.path)) != m.invert
}

// lookupMetadata walks filter metadata; nil when absent.
func lookupMetadata(md map[string]*structpb.Struct, filter string, path []string) *structpb.Value {
	s := md[filter]
	if s == nil || len(path) == 0 {
		return nil
	}
	var v *structpb.Value
	for i, k := range path {
		v = s.GetFields()[k]
		if v == nil {
			return nil
		}
		if i < len(path)-1 {
			if s = v.GetStructValue(); s == nil {
				return nil
			}
		}
	}
	return v
}

// valueKind is the kind of a value matcher.
type valueKind uint8

const (
	valueNull valueKind = iota
	valueDouble
	valueString
	valueBool
	valuePresent
	valueList
	valueOr
)

// valueMatcher is a compiled envoy.type.matcher.v3.ValueMatcher.
type valueMatcher struct {
	kind       valueKind
	str        strmatch.String
	b          bool
	exact      *float64
	start, end float64
	sub        []valueMatcher // one_of (one) or or_match
}

func compileMetadata(m *matcherv3.MetadataMatcher) (matcher, error) {
	out := &metadataMatcher{filter: m.GetFilter(), invert: m.GetInvert()}
	for i, seg := range m.GetPath() {
		k := seg.GetKey()
		if k == "" {
			return nil, fmt.Errorf(".metadata.path[%d].key: required", i)
		}
		out.path = append(out.path, k)
	}
	v, err := compileValue(m.GetValue())
	if err != nil {
		return nil, fmt.Errorf(".metadata.value%w", err)
	}
	out.value = v
	return out, nil
}

func compileValue(v *matcherv3.ValueMatcher) (valueMatcher, error) {
	switch p := v.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_NullMatch_:
		return valueMatcher{kind: valueNull}, nil
	case *matcherv3.ValueMatcher_DoubleMatch:
		out := valueMatcher{kind: valueDouble}
		if r := p.DoubleMatch.GetRange(); r != nil {
			out.start, out.end = r.GetStart(), r.GetEnd()
		} else {
			x := p.DoubleMatch.GetExact()
			out.exact = &x
		}
		return out, nil
	case *matcherv3.ValueMatcher_StringMatch:
		s, err := compileString(p.StringMatch)
		if err != nil {
			return valueMatcher{}, fmt.Errorf(".string_match%w", err)
		}
		return valueMatcher{kind: valueString, str: s}, nil
	case *matcherv3.ValueMatcher_BoolMatch:
		return valueMatcher{kind: valueBool, b: p.BoolMatch}, nil
	case *matcherv3.ValueMatcher_PresentMatch:
		return valueMatcher{kind: valuePresent, b: p.PresentMatch}, nil
	case *matcherv3.ValueMatcher_ListMatch:
		one, err := compileValue(p.ListMatch.GetOneOf())
		if err != nil {
			return valueMatcher{}, fmt.Errorf(".list_match.one_of%w", err)
		}
		return valueMatcher{kind: valueList, sub: []valueMatcher{one}}, nil
	case *matcherv3.ValueMatcher_OrMatch:
		out := valueMatcher{kind: valueOr}
		for i, x := range p.OrMatch.GetValueMatchers() {
			c, err := compileValue(x)
			if err != nil {
				return valueMatcher{}, fmt.Errorf(".or_match.value_matchers[%d]%w", i, err)
			}
			out.sub = append(out.sub, c)
		}
		return out, nil
	}
	return valueMatcher{}, fmt.Errorf(": a value matcher needs one match pattern")
}

// match applies Envoy's ValueUtil semantics to v (nil: absent).
func (m *valueMatcher) match(v *structpb.Value) bool {
	switch m.kind {
	case valuePresent:
		return (v != nil && v.GetKind() != nil) == m.b
	case valueOr:
		for i := range m.sub {
			if m.sub[i].match(v) {
				return true
			}
		}
		return false
	}
	if v == nil {
		return false
	}
	switch m.kind {
	case valueNull:
		_, ok := v.GetKind().(*structpb.Value_NullValue)
		return ok
	case valueDouble:
		n, ok := v.GetKind().(*structpb.Value_NumberValue)
		if !ok {
			return false
		}
		if m.exact != nil {
			return n.NumberValue == *m.exact
		}
		return n.NumberValue >= m.start && n.NumberValue < m.end
	case valueString:
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		return ok && m.str.MatchString(s.StringValue)
	case valueBool:
		b, ok := v.GetKind().(*structpb.Value_BoolValue)
		return ok && b.BoolValue == m.b
	case valueList:
		l, ok := v.GetKind().(*structpb.Value_ListValue)
		if !ok {
			return false
		}
		for _, x := range l.ListValue.GetValues() {
			if m.sub[0].match(x) {
				return true
			}
		}
	}
	return false
}
