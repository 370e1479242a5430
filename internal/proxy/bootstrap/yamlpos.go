package bootstrap

import (
	"go.yaml.in/yaml/v3"

	"github.com/weftmesh/weft/internal/protoyaml"
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

// lineOf returns the line of the deepest node of path present in the YAML
// tree (the field itself, or its nearest written ancestor), or 0; see
// protoyaml.LineOf.
func lineOf(doc *yaml.Node, path string) int {
	return protoyaml.LineOf(doc, path)
}
