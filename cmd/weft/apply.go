package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/localmesh"
)

// applyOptions are the flags of `weft apply`.
type applyOptions struct {
	files    []string
	stateDir string
	output   string
	dryRun   bool
}

// newApplyCommand builds `weft apply`.
func newApplyCommand(s streams) *cobra.Command {
	var o applyOptions
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR [-f ...]",
		Short: "Add or replace configuration in the mesh that weft up runs",
		Long: `Apply validates Istio configuration (and Workloads) the way weft analyze does,
against the configuration of the mesh that ` + "`weft up`" + ` runs, and adds it to that
mesh, as kubectl apply does: an object replaces the object with the same kind,
namespace and name, whether it came from weft up's directory or an earlier
apply. The change applies within a second; nothing is written to weft up's
directory: applied objects last until weft up stops (then the directory's
versions are back).

Files with an error are refused as a whole, with weft analyze's messages, and
nothing is applied. weft up records where it runs in its state directory
(--state-dir; the same default as weft up's).`,
		Example: `  weft apply -f examples/bookinfo/tasks/canary-90-10.yaml
  weft apply -f my-rules/ --dry-run
  weft apply -f vs.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return o.run(s) },
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "filename", "f", nil, "a configuration file or directory (repeatable)")
	f.StringVar(&o.stateDir, "state-dir", localmesh.DefaultStateDir(), "weft up's state directory (its --state-dir)")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table, json or yaml")
	f.BoolVar(&o.dryRun, "dry-run", false, "validate only: apply nothing")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// applied is one object's outcome.
type applied struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Action is created, configured or unchanged (kubectl's words).
	Action string `json:"action"`
}

func (o *applyOptions) run(s streams) error {
	if err := checkOutput(o.output, "table", "json", "yaml"); err != nil {
		return err
	}
	st, err := localmesh.ReadState(o.stateDir)
	if err != nil {
		return err
	}
	files, err := absPaths(o.files)
	if err != nil {
		return err
	}
	r, err := config.LoadOverlay([]string{st.Dir, st.AppliedDir}, files)
	if err != nil {
		return err
	}
	mine := ownProblems(r, files)
	if len(mine.Errors) > 0 {
		if err := writeText(s.err, mine); err != nil {
			return err
		}
	}
	if mine.HasErrors() {
		return errors.New("nothing applied: fix the errors above (weft analyze -f FILE shows them too)")
	}
	var out []applied
	for _, obj := range r.Objects {
		if !under(obj.Source.File, files) {
			continue
		}
		a, err := applyObject(st.AppliedDir, obj, o.dryRun)
		if err != nil {
			return err
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return fmt.Errorf("no objects in %s", strings.Join(o.files, ", "))
	}
	if o.output != "table" {
		return writeStructured(s.out, o.output, out)
	}
	for _, a := range out {
		suffix := ""
		if o.dryRun {
			suffix = " (dry run)"
		}
		fmt.Fprintf(s.out, "%s %s/%s %s%s\n", strings.ToLower(a.Kind), a.Namespace, a.Name, a.Action, suffix)
	}
	return nil
}

// absPaths makes paths absolute (the loader's sources are then too).
func absPaths(paths []string) ([]string, error) {
	out := make([]string, len(paths))
	for i, p := range paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

// ownProblems keeps the problems of the files being applied (those of
// the running configuration are weft up's to report).
func ownProblems(r *config.LoadResult, files []string) *config.LoadResult {
	mine := &config.LoadResult{Files: slices.DeleteFunc(slices.Clone(r.Files), func(f string) bool { return !under(f, files) })}
	for _, e := range r.Errors {
		if under(e.Source.File, files) {
			mine.Errors = append(mine.Errors, e)
		}
	}
	for _, obj := range r.Objects {
		if under(obj.Source.File, files) {
			mine.Objects = append(mine.Objects, obj)
		}
	}
	return mine
}

// under reports whether file is one of paths or below one of them.
func under(file string, paths []string) bool {
	for _, p := range paths {
		if file == p || strings.HasPrefix(file, strings.TrimSuffix(p, string(filepath.Separator))+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// applyObject writes obj into weft up's applied directory, one file per
// object (so that applying it again replaces it), and says what changed.
func applyObject(dir string, obj *config.Object, dryRun bool) (applied, error) {
	a := applied{Kind: string(obj.Kind), Namespace: obj.Namespace, Name: obj.Name}
	doc, err := objectYAML(obj)
	if err != nil {
		return a, fmt.Errorf("%s: %w", obj.Key(), err)
	}
	path := filepath.Join(dir, strings.ToLower(string(obj.Kind))+"."+obj.Namespace+"."+obj.Name+".yaml")
	prev, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(prev, doc):
		a.Action = "unchanged"
		return a, nil
	case err == nil:
		a.Action = "configured"
	default:
		a.Action = "created"
	}
	if dryRun {
		return a, nil
	}
	tmp := filepath.Join(dir, ".apply.tmp")
	if err := os.WriteFile(tmp, doc, 0o600); err != nil {
		return a, fmt.Errorf("writing to weft up's configuration: %w", err)
	}
	return a, os.Rename(tmp, path)
}

// objectYAML writes an object as a Kubernetes-style YAML document that
// the loader reads back to the same object.
func objectYAML(obj *config.Object) ([]byte, error) {
	spec, err := protojson.Marshal(obj.Spec)
	if err != nil {
		return nil, err
	}
	md := map[string]any{"name": obj.Name, "namespace": obj.Namespace}
	if len(obj.Labels) > 0 {
		md["labels"] = obj.Labels
	}
	if len(obj.Annotations) > 0 {
		md["annotations"] = obj.Annotations
	}
	js, err := json.Marshal(map[string]any{
		"apiVersion": obj.APIVersion, "kind": obj.Kind, "metadata": md, "spec": json.RawMessage(spec),
	})
	if err != nil {
		return nil, err
	}
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		return nil, err
	}
	return append([]byte("# applied by weft apply from "+obj.Source.File+"\n"), y...), nil
}
