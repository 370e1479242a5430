package config

// ObjectInput is one object that comes as a JSON-compatible map rather than
// as a YAML document: the content of a Kubernetes object read from the API
// server (an unstructured.Unstructured's Object), for ObjectDecoder.
type ObjectInput struct {
	// Content is the whole object: apiVersion, kind, metadata, spec (and
	// status, which is ignored). Values are what encoding/json or
	// client-go's unstructured decoding produce (string, bool, int64,
	// float64, json.Number, []any, map[string]any, nil). It is only read.
	Content map[string]any
	// Source is where the object came from; it is copied to every problem.
	// Doc -1 means "not a document of a file" (Source.String then prints
	// only File).
	Source Source
	// Revision identifies the content: two inputs with the same non-empty
	// Revision must have the same Content (the Kubernetes source uses the
	// object's uid and resourceVersion). An unchanged Revision reuses the
	// previous decoding; "" decodes every time.
	Revision string
}

// ObjectDecoder decodes and validates sets of objects given as maps, with
// the same decoding, validation (Istio's rules, field paths) and
// cross-object checks as the file loader, keeping the decoding of every
// object by Revision so that a reload after one change decodes only the
// objects that changed. It is used by one goroutine at a time (the
// Kubernetes source serializes its reloads); the zero value is ready.
type ObjectDecoder struct {
	// Platform is the hosts the platform defines (Kubernetes Services
	// under ".svc.cluster.local"): destinations there are checked against
	// Platform.Hosts, not reported as "not defined by any ServiceEntry".
	// Zero: every host needs a ServiceEntry, as in file mode.
	Platform Platform
	cache    map[string]*loaded
}

// Load decodes every input into one configuration, as LoadDir does for a
// directory: invalid objects are reported in the result (Errors, with the
// field path of each problem) and listed in Rejected, never half-applied.
// The result's Files and Incomplete are empty: every input has its
// identity from its source, so nothing is ever unknown.
func (d *ObjectDecoder) Load(in []ObjectInput) *LoadResult {
	if d.cache == nil {
		d.cache = map[string]*loaded{}
	}
	seen := make(map[string]bool, len(in))
	l := loader{platform: d.Platform}
	for _, x := range in {
		it := d.cache[x.Revision]
		if it == nil || x.Revision == "" {
			it = decodeObject(copyMap(x.Content), nil, x.Source)
			if x.Revision != "" {
				d.cache[x.Revision] = it
			}
		}
		seen[x.Revision] = true
		l.items = append(l.items, it.clone())
	}
	for rev := range d.cache {
		if !seen[rev] {
			delete(d.cache, rev)
		}
	}
	return l.result()
}

// DecodeObject decodes and validates one object given as a map, with the
// object-local rules only (no cross-object checks): what a validating
// admission webhook checks before the object is stored. obj is nil when
// the object has errors (warnings allowed); problems lists them all, with
// Source set to src and Key and Path filled in.
func DecodeObject(content map[string]any, src Source) (obj *Object, problems []*Error) {
	it := decodeObject(copyMap(content), nil, src)
	if it.valid() {
		obj = it.obj
	}
	return obj, it.errs
}

// copyMap deep-copies a JSON-compatible map: decoding rewrites parts of
// the value it is given (durations), and the inputs are only read (they
// are, for example, a shared informer cache's objects).
func copyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyValue(v)
	}
	return out
}

// copyValue deep-copies a JSON-compatible value.
func copyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return copyMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyValue(e)
		}
		return out
	}
	return v
}
