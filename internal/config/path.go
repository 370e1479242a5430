package config

import "github.com/weftmesh/weft/internal/protoyaml"

// fieldPath is a field path in the form protoyaml writes and reads
// ("spec.http[0].match[1].headers[\"x-user\"]"), built step by step with
// JSON field names, the way Istio YAML writes them.
type fieldPath string

// f appends a field name.
func (p fieldPath) f(name string) fieldPath { return fieldPath(protoyaml.JoinField(string(p), name)) }

// i appends a list index.
func (p fieldPath) i(i int) fieldPath { return fieldPath(protoyaml.JoinIndex(string(p), i)) }

// k appends a map key.
func (p fieldPath) k(key string) fieldPath { return fieldPath(protoyaml.JoinKey(string(p), key)) }

// specPath is the root of every spec field.
const specPath fieldPath = "spec"

// issue is one validation finding on one object.
type issue struct {
	path    fieldPath
	msg     string
	warning bool
}

// issues collects the findings of one validation.
type issues []issue

// err adds an error at path.
func (is *issues) err(path fieldPath, msg string) {
	*is = append(*is, issue{path: path, msg: msg})
}

// warn adds a warning at path.
func (is *issues) warn(path fieldPath, msg string) {
	*is = append(*is, issue{path: path, msg: msg, warning: true})
}

// check adds an error at path when msg is not empty (the helpers return ""
// for a valid value).
func (is *issues) check(path fieldPath, msg string) {
	if msg != "" {
		is.err(path, msg)
	}
}

// hasErrors reports whether any finding is an error.
func (is issues) hasErrors() bool {
	for _, x := range is {
		if !x.warning {
			return true
		}
	}
	return false
}
