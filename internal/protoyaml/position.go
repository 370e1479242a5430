package protoyaml

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// SetLines sets the line of every problem that has none, following its path
// in the YAML tree node (a document, or any node below one, against which
// the paths are relative), then sorts the problems by line. A nil node
// leaves the lines unknown.
func (ps Problems) SetLines(node *yaml.Node) {
	for _, p := range ps {
		if p.Line == 0 && node != nil {
			p.Line = LineOf(node, p.Path)
		}
	}
	ps.SortByLine()
}

// pathStep is one step of a field path: a mapping key or a list index.
type pathStep struct {
	key   string
	index int  // -1 for a key step
	exact bool // a ["key"] step: a map key, compared exactly
}

// splitPath parses a path written by JoinField / JoinIndex / JoinKey. It
// returns false for paths it cannot read.
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
		return pathStep{key: key, index: -1, exact: true}, len(quoted) + 2, true
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

// LineOf returns the line of the deepest node of path present in the YAML
// tree below node (the field itself, or its nearest written ancestor), or
// 0 when the path cannot be read. Field names match in proto (snake_case)
// or JSON (lowerCamel) form whichever way they are written; map keys
// (["key"] steps) match exactly; YAML merge keys are followed.
func LineOf(node *yaml.Node, path string) int {
	steps, ok := splitPath(path)
	if !ok || node == nil {
		return 0
	}
	node = deref(node)
	if node.Kind == yaml.DocumentNode && len(node.Content) > 0 {
		node = deref(node.Content[0])
	}
	if len(steps) == 0 {
		return node.Line
	}
	line := 0
	for _, st := range steps {
		var keyNode, next *yaml.Node
		if st.index >= 0 {
			if node.Kind != yaml.SequenceNode || st.index >= len(node.Content) {
				return line
			}
			next = node.Content[st.index]
			keyNode = next
		} else {
			keyNode, next = lookupKey(node, st, 0)
			if keyNode == nil {
				return line
			}
		}
		line = keyNode.Line
		node = deref(next)
	}
	return line
}

// lookupKey finds a key of a mapping, following YAML merge keys ("<<");
// depth bounds merge recursion.
func lookupKey(m *yaml.Node, st pathStep, depth int) (keyNode, value *yaml.Node) {
	if m.Kind != yaml.MappingNode || depth > 8 {
		return nil, nil
	}
	var merges []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		switch {
		case keyMatches(k.Value, st):
			return k, m.Content[i+1]
		case isMergeKey(k):
			merges = append(merges, deref(m.Content[i+1]))
		}
	}
	for _, mv := range merges {
		sources := []*yaml.Node{mv}
		if mv.Kind == yaml.SequenceNode {
			sources = mv.Content
		}
		for _, src := range sources {
			if k, v := lookupKey(deref(src), st, depth+1); k != nil {
				return k, v
			}
		}
	}
	return nil, nil
}

// keyMatches compares a written mapping key with a path step.
func keyMatches(written string, st pathStep) bool {
	if written == st.key {
		return true
	}
	return !st.exact && lowerCamel(written) == lowerCamel(st.key)
}

// isMergeKey reports whether a mapping key is the YAML merge key "<<".
func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && (k.Tag == "!!merge" || (k.Value == "<<" && k.Style == 0))
}

// deref follows an alias node to its anchor.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 8; i++ {
		n = n.Alias
	}
	return n
}

// lowerCamel converts a proto field name to its default JSON name; a name
// already in lowerCamel form is returned unchanged.
func lowerCamel(s string) string {
	if strings.IndexByte(s, '_') < 0 {
		return s
	}
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
