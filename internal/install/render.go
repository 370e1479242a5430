// Package install renders weft's Helm chart (charts/weft, embedded in the
// binary) with Helm's own engine and applies it to a cluster: what
// `weft install` and `weft uninstall` do. Rendering merges values as Helm
// does (the chart's values.yaml < -f files < --set, in Helm's strvals
// syntax), so `helm install weft charts/weft -n istio-system` and
// `weft install` produce the same objects.
package install

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"helm.sh/helm/v4/pkg/strvals"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/charts"
)

// DefaultNamespace is the release namespace when none is given (Istio's).
const DefaultNamespace = "istio-system"

// ReleaseName is the Helm release name weft install renders with.
const ReleaseName = "weft"

// RenderOptions choose the values of the chart.
type RenderOptions struct {
	// Namespace is the release namespace (default DefaultNamespace).
	Namespace string
	// ValueFiles are YAML values files (helm -f), merged in order over the
	// chart's values.yaml.
	ValueFiles []string
	// Set are key=value assignments in Helm's --set syntax (a.b=c,
	// list[0]=x, several comma-separated), applied last, in order.
	Set []string
	// SetString are like Set, but every value is a string (helm
	// --set-string: "true" stays "true"), applied after Set.
	SetString []string
	// Version, when set, is the chart's appVersion (and so the default
	// image tag): the version of the weft binary that installs.
	Version string
}

// Manifest is a rendered chart: the CRDs (crds/, applied first and
// never templated, as Helm does) and the other objects in apply order.
type Manifest struct {
	Namespace string
	CRDs      []*unstructured.Unstructured
	Objects   []*unstructured.Unstructured
}

// Render renders the embedded chart with o's values.
func Render(o RenderOptions) (*Manifest, error) {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	chrt, err := LoadChart()
	if err != nil {
		return nil, err
	}
	if o.Version != "" {
		chrt.Metadata.AppVersion = o.Version
	}
	vals, err := userValues(chrt, o)
	if err != nil {
		return nil, err
	}
	top, err := chartutil.ToRenderValues(chrt, vals, common.ReleaseOptions{
		Name: ReleaseName, Namespace: o.Namespace, Revision: 1, IsInstall: true,
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("chart values: %w", err)
	}
	// app.kubernetes.io/managed-by says who applied the objects: weft
	// here, Helm when helm renders the chart.
	if rel, ok := top["Release"].(map[string]any); ok {
		rel["Service"] = "weft"
	}
	files, err := engine.Render(chrt, top)
	if err != nil {
		return nil, fmt.Errorf("rendering the weft chart: %w", err)
	}
	m := &Manifest{Namespace: o.Namespace}
	for _, crd := range chrt.CRDObjects() {
		objs, err := decodeStream(crd.Filename, crd.File.Data)
		if err != nil {
			return nil, err
		}
		m.CRDs = append(m.CRDs, objs...)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			continue // NOTES.txt, _helpers.tpl
		}
		objs, err := decodeStream(name, []byte(files[name]))
		if err != nil {
			return nil, err
		}
		m.Objects = append(m.Objects, objs...)
	}
	sortByKind(m.CRDs)
	sortByKind(m.Objects)
	return m, nil
}

// LoadChart loads the embedded chart.
func LoadChart() (*chartv2.Chart, error) {
	var files []*archive.BufferedFile
	err := fs.WalkDir(charts.FS, "weft", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(charts.FS, p)
		if err != nil {
			return err
		}
		files = append(files, &archive.BufferedFile{Name: strings.TrimPrefix(p, "weft/"), Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded chart: %w", err)
	}
	c, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("embedded chart: %w", err)
	}
	return c, nil
}

// userValues merges the -f files and the --set assignments as Helm does
// (pkg/cli/values: files in order, then --set in order); the chart's
// values.yaml is coalesced under them by ToRenderValues. A --set whose
// first key the chart does not know is refused (Helm would silently
// ignore a typo).
func userValues(chrt *chartv2.Chart, o RenderOptions) (map[string]any, error) {
	base := map[string]any{}
	for _, f := range o.ValueFiles {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("values file (-f): %w", err)
		}
		v, err := loader.LoadValues(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("values file %s: %w", f, err)
		}
		base = loader.MergeMaps(base, v)
	}
	if err := setValues(chrt, base, "--set", o.Set, strvals.ParseInto); err != nil {
		return nil, err
	}
	if err := setValues(chrt, base, "--set-string", o.SetString, strvals.ParseIntoString); err != nil {
		return nil, err
	}
	return base, nil
}

// setValues applies Helm-syntax assignments to base with parse (Helm's
// strvals), refusing a top-level key the chart does not have (Helm would
// ignore it silently).
func setValues(chrt *chartv2.Chart, base map[string]any, flag string, assignments []string, parse func(string, map[string]any) error) error {
	for _, s := range assignments {
		one := map[string]any{}
		if err := parse(s, one); err != nil {
			return fmt.Errorf("%s %s: %w", flag, s, err)
		}
		for k := range one {
			if _, ok := chrt.Values[k]; !ok {
				return fmt.Errorf("%s %s: the chart has no value %q (the values are listed in charts/weft/README.md)", flag, s, k)
			}
		}
		if err := parse(s, base); err != nil {
			return fmt.Errorf("%s %s: %w", flag, s, err)
		}
	}
	return nil
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeStream decodes a YAML stream of objects, skipping empty
// documents (a template whose condition is false).
func decodeStream(name string, data []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for i, doc := range docSeparator.Split(string(data), -1) {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return nil, fmt.Errorf("%s (document %d): %w", name, i+1, err)
		}
		if len(obj) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("%s (document %d): an object without kind or metadata.name", name, i+1)
		}
		out = append(out, u)
	}
	return out, nil
}

// kindOrder is the apply order: what others refer to comes first, the
// webhooks last (they call weft-control, which must exist first).
var kindOrder = []string{
	"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
	"Role", "RoleBinding", "ConfigMap", "Secret", "Service", "Deployment", "PodDisruptionBudget",
	"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
}

func kindRank(kind string) int {
	for i, k := range kindOrder {
		if k == kind {
			return i
		}
	}
	return len(kindOrder)
}

func sortByKind(objs []*unstructured.Unstructured) {
	sort.SliceStable(objs, func(i, j int) bool {
		ri, rj := kindRank(objs[i].GetKind()), kindRank(objs[j].GetKind())
		if ri != rj {
			return ri < rj
		}
		return objs[i].GetName() < objs[j].GetName()
	})
}

// WriteYAML writes the manifest as one YAML stream, CRDs first, in apply
// order (what `weft install --dry-run` prints).
func (m *Manifest) WriteYAML(w io.Writer) error {
	for i, obj := range m.All() {
		b, err := yaml.Marshal(obj.Object)
		if err != nil {
			return fmt.Errorf("%s: %w", describe(obj), err)
		}
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// All returns the CRDs followed by the other objects.
func (m *Manifest) All() []*unstructured.Unstructured {
	return append(append([]*unstructured.Unstructured{}, m.CRDs...), m.Objects...)
}

// Find returns the object of kind and name, nil if the manifest has none.
func (m *Manifest) Find(kind, name string) *unstructured.Unstructured {
	for _, o := range m.All() {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// describe names an object as kubectl prints it: kind.group/name.
func describe(obj *unstructured.Unstructured) string {
	gvk := obj.GroupVersionKind()
	kind := strings.ToLower(gvk.Kind)
	if gvk.Group != "" {
		kind += "." + gvk.Group
	}
	return path.Join(kind, obj.GetName())
}
