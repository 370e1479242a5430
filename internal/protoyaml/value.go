package protoyaml

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxValues bounds the number of values one document may expand to through
// aliases (a "billion laughs" document stops here instead of exhausting
// memory).
const maxValues = 1 << 18

// ValueOf converts a YAML node (usually a DocumentNode) to a JSON-compatible
// value, the way a YAML-to-JSON converter such as Kubernetes' does:
//
//   - mapping keys become strings (a key written twice is a problem, as
//     JSON decoders disagree on which one wins); merge keys ("<<") and
//     aliases are expanded, with a bound on the expansion;
//   - scalars take the type YAML 1.2 resolves for them (so yes is a string,
//     not a boolean), except timestamps, which stay the text as written
//     (a label value 2024-01-01 is a string), and !!binary, which stays its
//     base64 text (the JSON form of a bytes field);
//   - infinities and NaN become the strings protojson accepts for
//     floating-point fields.
//
// Problems are returned as a *Problem with the line of the node.
func ValueOf(n *yaml.Node) (any, error) {
	c := converter{expanding: map[*yaml.Node]bool{}}
	return c.value(n)
}

// converter holds the state of one ValueOf call.
type converter struct {
	count     int
	expanding map[*yaml.Node]bool // alias targets being expanded (cycle guard)
}

// value converts one node.
func (c *converter) value(n *yaml.Node) (any, error) {
	c.count++
	if c.count > maxValues {
		return nil, &Problem{Line: n.Line, Reason: fmt.Sprintf("the document expands to more than %d values (through aliases)", maxValues)}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.value(n.Content[0])
	case yaml.AliasNode:
		return c.alias(n)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, e := range n.Content {
			v, err := c.value(e)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		return c.mapping(n)
	case yaml.ScalarNode:
		return scalar(n)
	}
	return nil, &Problem{Line: n.Line, Reason: "unsupported YAML node"}
}

// alias expands an alias, refusing one that contains itself.
func (c *converter) alias(n *yaml.Node) (any, error) {
	target := n.Alias
	if target == nil {
		return nil, &Problem{Line: n.Line, Reason: "alias without an anchor"}
	}
	if c.expanding[target] {
		return nil, &Problem{Line: n.Line, Reason: fmt.Sprintf("alias *%s refers to itself", n.Value)}
	}
	c.expanding[target] = true
	defer delete(c.expanding, target)
	return c.value(target)
}

// mapping converts a mapping: merged mappings first (earlier sources win
// over later ones), then the keys written here, which win over merged ones.
func (c *converter) mapping(n *yaml.Node) (any, error) {
	out := make(map[string]any, len(n.Content)/2)
	written := make(map[string]int, len(n.Content)/2) // key -> line
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, vn := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			merges = append(merges, vn)
			continue
		}
		key, err := keyString(k)
		if err != nil {
			return nil, err
		}
		if line, dup := written[key]; dup {
			return nil, &Problem{Line: k.Line, Reason: fmt.Sprintf("key %q is written twice (also on line %d)", key, line)}
		}
		written[key] = k.Line
		v, err := c.value(vn)
		if err != nil {
			return nil, err
		}
		out[key] = v
	}
	for _, m := range merges {
		if err := c.merge(out, written, m); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// merge adds the keys of a merge source (a mapping, or a list of them) that
// out does not have yet.
func (c *converter) merge(out map[string]any, written map[string]int, src *yaml.Node) error {
	v, err := c.value(src)
	if err != nil {
		return err
	}
	sources := []any{v}
	if list, ok := v.([]any); ok {
		sources = list
	}
	for _, s := range sources {
		m, ok := s.(map[string]any)
		if !ok {
			return &Problem{Line: src.Line, Reason: "a merge key (<<) must refer to a mapping or a list of mappings"}
		}
		for k, e := range m {
			if _, have := out[k]; !have {
				out[k] = e
				written[k] = src.Line
			}
		}
	}
	return nil
}

// keyString formats a mapping key: JSON allows only string keys, so scalar
// keys are written as text; other keys are a problem.
func keyString(k *yaml.Node) (string, error) {
	if k.Kind == yaml.AliasNode && k.Alias != nil {
		k = k.Alias
	}
	if k.Kind != yaml.ScalarNode {
		return "", &Problem{Line: k.Line, Reason: "a mapping key must be a scalar"}
	}
	return k.Value, nil
}

// scalar converts a scalar by its resolved tag.
func scalar(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool", "!!int", "!!float":
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, &Problem{Line: n.Line, Reason: fmt.Sprintf("invalid %s value %q", strings.TrimPrefix(n.ShortTag(), "!!"), n.Value)}
		}
		if f, ok := v.(float64); ok {
			return jsonFloat(f), nil
		}
		return v, nil
	case "!!binary":
		return strings.Join(strings.Fields(n.Value), ""), nil
	default: // !!str, !!timestamp, and tags YAML does not resolve
		return n.Value, nil
	}
}

// jsonFloat maps the floats JSON cannot carry to protojson's strings.
func jsonFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

// ToJSON converts a YAML node to JSON text, as ValueOf describes.
func ToJSON(n *yaml.Node) ([]byte, error) {
	v, err := ValueOf(n)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}
