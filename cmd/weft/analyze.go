package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/config"
)

// analyzeOptions are the flags of `weft analyze`.
type analyzeOptions struct {
	files  []string
	output string
}

// newAnalyzeCommand builds `weft analyze`.
func newAnalyzeCommand(s streams) *cobra.Command {
	var o analyzeOptions
	cmd := &cobra.Command{
		Use:   "analyze -f PATH [-f PATH...]",
		Short: "Check Istio configuration files the way weft-control loads them",
		Long: `Analyze loads Istio configuration (networking.istio.io VirtualService,
DestinationRule, Gateway, ServiceEntry, WorkloadEntry and Sidecar;
security.istio.io PeerAuthentication, AuthorizationPolicy and
RequestAuthentication; weft's networking.weft.dev LocalRateLimit; weft up's
local.weft.dev Workload) from files
and directories exactly as weft-control --config-dir does: every *.yaml, *.yml
and *.json below a directory, multi-document YAML, Istio's validation rules and
the cross-object checks. It prints every problem with its file, line, object,
field path and message, then a summary.

Exit status: 0 when there is no error (warnings are allowed), 1 otherwise.`,
		Example: `  weft analyze -f config/
  weft analyze -f reviews-vs.yaml -f reviews-dr.yaml
  weft analyze -f config/ -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(s)
		},
	}
	cmd.Flags().StringArrayVarP(&o.files, "filename", "f", nil, "a configuration file or directory (repeatable)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "output format: table (one line per problem and a summary), json or yaml")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// run loads, prints and sets the exit status.
func (o *analyzeOptions) run(s streams) error {
	if err := checkOutput(o.output, "table", "json", "yaml"); err != nil {
		return err
	}
	r, err := config.LoadFiles(o.files...)
	if err != nil {
		return err
	}
	if len(r.Files) == 0 && len(r.Errors) == 0 {
		return fmt.Errorf("no configuration files (*.yaml, *.yml, *.json) in %s", strings.Join(o.files, ", "))
	}
	switch o.output {
	case "json", "yaml":
		err = writeStructured(s.out, o.output, problems(r)) // an empty list when there are none
	default:
		err = writeText(s.out, r)
	}
	if err != nil {
		return err
	}
	if r.HasErrors() {
		return &exitError{code: 1}
	}
	return nil
}

// problem is one entry of `weft analyze -o json`.
type problem struct {
	File      string `json:"file"`
	Line      int    `json:"line,omitempty"`
	Document  int    `json:"document"`
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Path      string `json:"path,omitempty"`
	Message   string `json:"message"`
	Severity  string `json:"severity"`
}

// problems converts the problems for -o json|yaml, in file and line order.
func problems(r *config.LoadResult) []problem {
	out := make([]problem, 0, len(r.Errors))
	for _, e := range r.Errors {
		out = append(out, problem{
			File: e.Source.File, Line: e.Source.Line, Document: e.Source.Doc,
			Kind: string(e.Key.Kind), Namespace: e.Key.Namespace, Name: e.Key.Name,
			Path: e.Path, Message: e.Message, Severity: severity(e),
		})
	}
	return out
}

// severity names an error's level.
func severity(e *config.Error) string {
	if e.Warning {
		return "warning"
	}
	return "error"
}

// writeText prints one line per problem, "file:line: level: Kind
// ns/name: path: message", then a summary.
func writeText(w io.Writer, r *config.LoadResult) error {
	var b strings.Builder
	for _, e := range r.Errors {
		b.WriteString(e.Source.File)
		if e.Source.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Source.Line)
		}
		b.WriteString(": " + severity(e) + ": ")
		if e.Key.Kind != "" {
			fmt.Fprintf(&b, "%s %s/%s: ", e.Key.Kind, e.Key.Namespace, e.Key.Name)
		}
		if e.Path != "" {
			b.WriteString(e.Path + ": ")
		}
		b.WriteString(e.Message + "\n")
	}
	if len(r.Errors) > 0 {
		b.WriteString("\n")
	}
	errs, warnings := r.Counts()
	if errs+warnings == 0 {
		fmt.Fprintf(&b, "No problems in %s (%s).\n", plural(len(r.Files), "file"), plural(len(r.Objects), "object"))
	} else {
		fmt.Fprintf(&b, "%s and %s in %s: %s valid, %s rejected.\n",
			plural(errs, "error"), plural(warnings, "warning"), plural(len(r.Files), "file"),
			plural(len(r.Objects), "object"), plural(len(r.Rejected), "object"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// plural formats a count with its noun.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
