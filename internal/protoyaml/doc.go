// Package protoyaml decodes YAML and JSON documents into protobuf messages
// with protojson, and explains every failure with the field path and YAML
// line of each problem.
//
// Split cuts a YAML stream (or a JSON text) into Documents that keep the
// line numbers of the whole file; a syntax error stays confined to its
// document. Document.Value converts a document to a JSON-compatible value
// the way Kubernetes' YAML-to-JSON conversion does. Options.Unmarshal
// decodes such a value into a message, rejecting unknown fields; when
// protojson refuses it, Options.Diagnose walks the value against the message
// descriptor and returns every problem (unknown field with a "did you mean"
// suggestion, wrong type, bad enum value, bad duration, unresolvable or
// unsupported @type, two members of a oneof, ...) as Problems, and
// Problems.SetLines adds the YAML line of each one.
//
// The Envoy bootstrap loader (internal/proxy/bootstrap) and the Istio
// configuration loader (internal/config) share this package.
package protoyaml

import (
	"google.golang.org/protobuf/proto"
)

// Decode decodes one document into m: Value, Unmarshal, then lines from the
// document's YAML tree. It returns nil on success; on failure the problems
// are sorted by line.
func (o Options) Decode(doc *Document, m proto.Message) Problems {
	v, err := doc.Value()
	if err != nil {
		return Problems{asProblem(err)}
	}
	ps := o.Unmarshal(v, m, "")
	ps.SetLines(doc.Node)
	return ps
}

// asProblem returns err as a *Problem, wrapping it when it is not one.
func asProblem(err error) *Problem {
	if p, ok := err.(*Problem); ok {
		return p
	}
	return &Problem{Reason: err.Error()}
}
