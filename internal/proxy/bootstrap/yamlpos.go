package bootstrap

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// annotate sets the source of every problem and, where the field path can
// be followed in the YAML tree, its line. The problems are then sorted by
// line, so they read in the order of the file.
func annotate(errs Errors, source string, doc *yaml.Node) {
	for _, e := range errs {
		e.Source = source
		if e.Line == 0 && doc != nil {
			e.Line = lineOf(doc, e.Path)
		}
	}
	errs.sortByLine()
}

// pathStep is one step of a field path: a mapping key or a list index.
type pathStep struct {
	key   string
	index int // -1 for a key step
}

// splitPath parses a path written by joinField / joinIndex / joinKey. It
// returns false for paths it cannot read (such as xDS resource prefixes).
func splitPath(path string) ([]pathStep, bool) {
	var steps []pathStep
	for i := 0; i < len(path); {
		switch path[i] {
		case '.':
			i++
		case '[':
			step, n, ok := bracketStep(path[i:])
			if !ok {
				return nil, false
			}
			steps = append(steps, step)
			i += n
		default:
			j := i
			for j < len(path) && path[j] != '.' && path[j] != '[' {
				j++
			}
			steps = append(steps, pathStep{key: path[i:j], index: -1})
			i = j
		}
	}
	return steps, true
}

// bracketStep parses "[3]" or "[\"key\"]" at the start of s and returns the
// step and its length.
func bracketStep(s string) (pathStep, int, bool) {
	if strings.HasPrefix(s, `["`) {
		quoted, err := strconv.QuotedPrefix(s[1:])
		if err != nil || len(s) < len(quoted)+2 || s[len(quoted)+1] != ']' {
			return pathStep{}, 0, false
		}
		key, _ := strconv.Unquote(quoted)
		return pathStep{key: key, index: -1}, len(quoted) + 2, true
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return pathStep{}, 0, false
	}
	n, err := strconv.Atoi(s[1:end])
	if err != nil || n < 0 {
		return pathStep{}, 0, false
	}
	return pathStep{index: n}, end + 1, true
}

// lineOf returns the line of the deepest node of path present in the YAML
// tree (the field itself, or its nearest written ancestor), or 0.
func lineOf(doc *yaml.Node, path string) int {
	steps, ok := splitPath(path)
	if !ok {
		return 0
	}
	node := deref(doc)
	if node.Kind == yaml.DocumentNode && len(node.Content) > 0 {
		node = deref(node.Content[0])
	}
	line := 0
	if len(steps) == 0 {
		return node.Line
	}
	for _, st := range steps {
		var keyNode, next *yaml.Node
		if st.index >= 0 {
			if node.Kind != yaml.SequenceNode || st.index >= len(node.Content) {
				return line
			}
			next = node.Content[st.index]
			keyNode = next
		} else {
			keyNode, next = lookupKey(node, st.key, 0)
			if keyNode == nil {
				return line
			}
		}
		line = keyNode.Line
		node = deref(next)
	}
	return line
}

// lookupKey finds a key of a mapping by proto name or JSON (lowerCamel)
// name, following YAML merge keys ("<<"); depth bounds merge recursion.
func lookupKey(m *yaml.Node, key string, depth int) (keyNode, value *yaml.Node) {
	if m.Kind != yaml.MappingNode || depth > 8 {
		return nil, nil
	}
	camel := lowerCamel(key)
	var merges []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		switch {
		case k.Value == key || k.Value == camel:
			return k, m.Content[i+1]
		case k.Tag == "!!merge" || k.Value == "<<":
			merges = append(merges, deref(m.Content[i+1]))
		}
	}
	for _, mv := range merges {
		sources := []*yaml.Node{mv}
		if mv.Kind == yaml.SequenceNode {
			sources = mv.Content
		}
		for _, src := range sources {
			if k, v := lookupKey(deref(src), key, depth+1); k != nil {
				return k, v
			}
		}
	}
	return nil, nil
}

// deref follows an alias node to its anchor.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 8; i++ {
		n = n.Alias
	}
	return n
}

// lowerCamel converts a proto field name to its default JSON name.
func lowerCamel(s string) string {
	var b strings.Builder
	up := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_':
			up = true
		case up && c >= 'a' && c <= 'z':
			b.WriteByte(c - 'a' + 'A')
			up = false
		default:
			b.WriteByte(c)
			up = false
		}
	}
	return b.String()
}
