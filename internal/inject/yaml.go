package inject

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// templatePaths are where each workload kind keeps its pod template
// (istioctl kube-inject handles the same kinds).
var templatePaths = map[string][]string{
	"Deployment":            {"spec", "template"},
	"StatefulSet":           {"spec", "template"},
	"DaemonSet":             {"spec", "template"},
	"ReplicaSet":            {"spec", "template"},
	"ReplicationController": {"spec", "template"},
	"Job":                   {"spec", "template"},
	"CronJob":               {"spec", "jobTemplate", "spec", "template"},
}

// InjectYAML is manual injection (istioctl kube-inject): it reads a
// stream of YAML documents and writes them back with the sidecar added to
// every Pod and pod template of the kinds above (also inside a List's
// items), in the same order, separated by "---". Other documents are
// written back unchanged in content. Decide's policy applies (opted-out
// and already-injected pods are kept as they are); the namespace used for
// it is the object's, "default" when it has none. Errors name the
// document (1-based) and the field.
func InjectYAML(in io.Reader, out io.Writer, inj *Injector) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(in))
	first := true
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("document %d: %w", n, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return fmt.Errorf("document %d: %w", n, err)
		}
		if obj == nil { // only comments
			continue
		}
		if err := inj.injectObject(obj); err != nil {
			return fmt.Errorf("document %d (%v %v): %w", n, obj["kind"], nestedString(obj, "metadata", "name"), err)
		}
		b, err := yaml.Marshal(obj)
		if err != nil {
			return fmt.Errorf("document %d: %w", n, err)
		}
		if !first {
			if _, err := io.WriteString(out, "---\n"); err != nil {
				return err
			}
		}
		first = false
		if _, err := out.Write(b); err != nil {
			return err
		}
	}
}

// injectObject injects one decoded object in place.
func (i *Injector) injectObject(obj map[string]any) error {
	kind, _ := obj["kind"].(string)
	ns := firstNonEmpty(nestedString(obj, "metadata", "namespace"), "default")
	name := nestedString(obj, "metadata", "name")
	switch kind {
	case "List":
		items, _ := obj["items"].([]any)
		for j, it := range items {
			if m, ok := it.(map[string]any); ok {
				if err := i.injectObject(m); err != nil {
					return fmt.Errorf("items[%d]: %w", j, err)
				}
			}
		}
		return nil
	case "Pod":
		return i.injectTemplate(obj, ns, "")
	}
	path, ok := templatePaths[kind]
	if !ok {
		return nil
	}
	tmpl, ok := nested(obj, path...)
	if !ok {
		return fmt.Errorf("%s: missing", joinPath(path))
	}
	if err := i.injectTemplate(tmpl, ns, name); err != nil {
		return fmt.Errorf("%s.%w", joinPath(path), err)
	}
	return nil
}

// injectTemplate injects a Pod or pod template held as a map (its
// metadata and spec), converting through the typed API.
func (i *Injector) injectTemplate(m map[string]any, ns, workload string) error {
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var t corev1.PodTemplateSpec
	if err := json.Unmarshal(raw, &t); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	if t.Namespace != "" {
		ns = t.Namespace
	}
	d, err := i.Inject(Target{Namespace: ns, WorkloadName: workload, Meta: &t.ObjectMeta, Spec: &t.Spec})
	if err != nil || !d.Inject {
		return err
	}
	var meta, spec map[string]any
	if err := roundTrip(&t.ObjectMeta, &meta); err != nil {
		return err
	}
	if err := roundTrip(&t.Spec, &spec); err != nil {
		return err
	}
	delete(meta, "creationTimestamp") // null in a typed round trip
	m["metadata"], m["spec"] = meta, spec
	return nil
}

func roundTrip(v any, out *map[string]any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func nested(m map[string]any, path ...string) (map[string]any, bool) {
	for _, k := range path {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	return m, true
}

func nestedString(m map[string]any, path ...string) string {
	parent, ok := nested(m, path[:len(path)-1]...)
	if !ok {
		return ""
	}
	s, _ := parent[path[len(path)-1]].(string)
	return s
}

func joinPath(p []string) string {
	var b bytes.Buffer
	for j, s := range p {
		if j > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}
