package protoyaml

import (
	"sort"
	"strconv"
	"strings"
)

// Problem is one thing wrong at one place of a document.
//
// Path names fields joined by dots (proto names, or JSON names with
// Options.JSONNames), list indexes as [i] and map keys as ["key"]; the
// contents of a google.protobuf.Any are addressed directly below the Any
// field, the way they are written. A key that is not a field is written as
// it appears in the document.
type Problem struct {
	// Line is the 1-based YAML line of the field, or of its nearest written
	// ancestor; 0 when unknown.
	Line int
	// Path is the field path; empty for whole-document problems.
	Path string
	// Reason says what is wrong, and what to do when that is not obvious.
	Reason string
}

// Error formats the problem as "line N: path: reason", leaving out the
// parts that are unknown.
func (p *Problem) Error() string {
	var b strings.Builder
	if p.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Reason)
	return b.String()
}

// Problems is every problem found in one document. Its Error method prints
// one problem per line; errors.As sees each of them.
type Problems []*Problem

// Error prints one problem per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the individual problems.
func (ps Problems) Unwrap() []error {
	out := make([]error, len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}

// add appends a problem at path.
func (ps *Problems) add(path, reason string) {
	*ps = append(*ps, &Problem{Path: path, Reason: reason})
}

// SortByLine orders problems by line, keeping the found order within a line
// and putting problems without a line last.
func (ps Problems) SortByLine() {
	sort.SliceStable(ps, func(i, j int) bool {
		li, lj := ps[i].Line, ps[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
}

// JoinField appends a field name to a path. A name that could not be read
// back as one path step (empty, or holding '.', '[', ']' or '"') is written
// as a bracketed key instead, so that LineOf can still find it.
func JoinField(path, name string) string {
	if name == "" || strings.ContainsAny(name, `.[]"`) {
		return JoinKey(path, name)
	}
	if path == "" {
		return name
	}
	return path + "." + name
}

// JoinIndex appends a list index to a path.
func JoinIndex(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// JoinKey appends a map key to a path.
func JoinKey(path, key string) string {
	return path + "[" + strconv.Quote(key) + "]"
}
