package bootstrap

import (
	"sort"
	"strconv"
	"strings"
)

// FieldError is one problem at one place of a configuration.
//
// Path uses proto field names (snake_case) joined by dots, list indexes as
// [i] and map keys as ["key"]; the contents of a google.protobuf.Any are
// addressed directly below the Any field (typed_config.http_filters[0]),
// the way they are written in YAML.
type FieldError struct {
	Source string // file name or "--config-yaml"; empty when unknown
	Line   int    // 1-based YAML line; 0 when unknown
	Path   string // field path; empty for whole-document problems
	Reason string // what is wrong, and what to do when that is not obvious
}

// Error formats the problem as "source:line: path: reason", leaving out the
// parts that are unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		if e.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Errors is every problem found in one configuration. Its Error method
// prints one problem per line; errors.Is / errors.As see each of them.
type Errors []*FieldError

// Error prints one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the individual problems.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// err returns es as an error, or nil (not a typed nil) when it is empty.
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// add appends a problem at path.
func (es *Errors) add(path, reason string) {
	*es = append(*es, &FieldError{Path: path, Reason: reason})
}

// dedup drops repeated (path, reason) pairs, keeping the first.
func (es Errors) dedup() Errors {
	seen := make(map[[2]string]bool, len(es))
	out := es[:0]
	for _, e := range es {
		k := [2]string{e.Path, e.Reason}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, e)
	}
	return out
}

// sortByLine orders problems by YAML line, keeping the found order within a
// line and putting problems without a line last.
func (es Errors) sortByLine() {
	sort.SliceStable(es, func(i, j int) bool {
		li, lj := es[i].Line, es[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
}

// joinField appends a field name to a path.
func joinField(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// joinIndex appends a list index to a path.
func joinIndex(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// joinKey appends a map key to a path.
func joinKey(path, key string) string {
	return path + "[" + strconv.Quote(key) + "]"
}
