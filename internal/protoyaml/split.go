package protoyaml

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Document is one document of a YAML stream (or a whole JSON text).
type Document struct {
	// Index is the 0-based position of the document in the stream, counting
	// every document the YAML parser yields, empty ones included (so that
	// it matches the count of "---" separators).
	Index int
	// Line is the 1-based line where the document's content starts (its
	// first key), or where the document starts when it is empty or broken.
	Line int
	// Node is the parsed DocumentNode; nil when Err is set, and for JSON
	// text that YAML cannot read (lines are then unknown).
	Node *yaml.Node
	// JSON is the text itself when the whole input was valid JSON; Value
	// then decodes it with encoding/json rather than through YAML.
	JSON []byte
	// Err is a YAML syntax problem in this document (a *Problem with its
	// line). The rest of the stream is still split: the problem is confined
	// to the text between its "---" separators.
	Err error
}

// Empty reports whether the document holds nothing (no content, or null).
func (d *Document) Empty() bool {
	if d.Err != nil || d.JSON != nil {
		return false
	}
	if d.Node == nil || len(d.Node.Content) == 0 {
		return true
	}
	c := d.Node.Content[0]
	return c.Kind == yaml.ScalarNode && c.ShortTag() == "!!null"
}

// Value returns the document as a JSON-compatible value: map[string]any,
// []any, string, bool, nil, and numbers (json.Number for JSON text; int,
// int64, uint64 or float64 from YAML). See ValueOf for the YAML mapping.
func (d *Document) Value() (any, error) {
	if d.Err != nil {
		return nil, d.Err
	}
	if d.JSON != nil {
		dec := json.NewDecoder(bytes.NewReader(d.JSON))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, &Problem{Reason: "invalid JSON: " + err.Error()}
		}
		return v, nil
	}
	if d.Node == nil {
		return nil, nil
	}
	return ValueOf(d.Node)
}

// Split splits data into its documents. Valid JSON text is one document (a
// .json file, as Envoy and kubectl read it). Anything else is a YAML
// stream, cut at the "---" document markers first so that a syntax error in
// one document leaves the others readable; documents keep the line numbers
// of the whole stream.
func Split(data []byte) []*Document {
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && json.Valid(trimmed) {
		doc := &Document{Line: 1, JSON: trimmed}
		if docs := splitYAML(data); len(docs) == 1 && docs[0].Err == nil {
			doc.Node, doc.Line = docs[0].Node, docs[0].Line
		}
		return []*Document{doc}
	}
	return splitYAML(data)
}

// splitYAML parses each chunk between "---" lines as a YAML stream.
func splitYAML(data []byte) []*Document {
	var docs []*Document
	for _, c := range chunks(data) {
		dec := yaml.NewDecoder(bytes.NewReader(c.text))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if errors.Is(err, io.EOF) {
				break
			}
			doc := &Document{Index: len(docs), Line: c.line}
			docs = append(docs, doc)
			if err != nil {
				doc.Err = syntaxProblem(err, c.line-1)
				break
			}
			shiftLines(&n, c.line-1)
			doc.Node = &n
			doc.Line = n.Line
			if !doc.Empty() && n.Content[0].Line > 0 {
				doc.Line = n.Content[0].Line
			}
		}
	}
	return docs
}

// chunk is the text between two document markers, with the line it starts
// on.
type chunk struct {
	text []byte
	line int
}

// chunks cuts a YAML stream before every line that starts a document
// ("---" alone, or followed by a space or tab). A document marker at the
// start of a line always ends the previous document in YAML, even inside a
// block scalar, so the cut never splits one document. Directive lines
// ("%YAML", "%TAG", after a "..." end marker) move with the document they
// introduce.
func chunks(data []byte) []chunk {
	var out []chunk
	start, startLine, line := 0, 1, 1
	content := false // the current chunk has a marker or content line
	// The run of blank, comment and directive lines just before the
	// current line, where a cut moves to when it holds a directive.
	runStart, runLine, runDirective := 0, 1, false
	for i := 0; i < len(data); {
		next := len(data)
		if end := bytes.IndexByte(data[i:], '\n'); end >= 0 {
			next = i + end + 1
		}
		text := data[i:next]
		marker := isDocumentMarker(text)
		if marker && content {
			cut, cutLine := i, line
			if runDirective {
				cut, cutLine = runStart, runLine
			}
			if cut > start {
				out = append(out, chunk{text: data[start:cut], line: startLine})
				start, startLine = cut, cutLine
			}
		}
		switch {
		case marker || !isPreamble(text):
			content = true
			runStart, runLine, runDirective = next, line+1, false
		case bytes.HasPrefix(bytes.TrimSpace(text), []byte("%")):
			runDirective = true
		}
		i, line = next, line+1
	}
	if start < len(data) {
		out = append(out, chunk{text: data[start:], line: startLine})
	}
	return out
}

// isDocumentMarker reports whether a line starts a document.
func isDocumentMarker(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	rest := line[3:]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r'
}

// isPreamble reports whether a line may precede a document marker without
// being content: blank, a comment, or a directive.
func isPreamble(line []byte) bool {
	t := bytes.TrimSpace(line)
	return len(t) == 0 || t[0] == '#' || t[0] == '%'
}

// shiftLines adds delta to the line of every node of a tree (each node
// once: aliases are not followed).
func shiftLines(n *yaml.Node, delta int) {
	if delta == 0 {
		return
	}
	n.Line += delta
	for _, c := range n.Content {
		shiftLines(c, delta)
	}
}

// yamlLineRE finds the line number in yaml.v3's error messages.
var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// syntaxProblem turns a YAML parser error into a Problem whose line counts
// from the start of the whole stream.
func syntaxProblem(err error, delta int) *Problem {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		reason := msg[len(m[0]):]
		if strings.HasPrefix(reason, "did not find expected ',' or") {
			// yaml.v3 reports an unclosed flow collection at its opening
			// line counted from 0: make it the line the user sees.
			n++
		}
		return &Problem{Line: n + delta, Reason: "invalid YAML: " + reason}
	}
	return &Problem{Line: delta + 1, Reason: fmt.Sprintf("invalid YAML: %v", err)}
}
