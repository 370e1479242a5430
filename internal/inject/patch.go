package inject

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// patchOp is one RFC 6902 operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// jsonPatch is an RFC 6902 patch turning the JSON object from into to,
// at the granularity of the objects' second level (/metadata/labels,
// /spec/initContainers, ...): a changed member is replaced whole with
// "add" (which replaces an existing member), a removed one is removed.
// Coarse but exact, and readable in the API server's audit log.
func jsonPatch(from, to []byte) ([]byte, error) {
	var a, b map[string]any
	if err := json.Unmarshal(from, &a); err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	if err := json.Unmarshal(to, &b); err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	ops := diff(nil, "", a, b, 2)
	if ops == nil {
		ops = []patchOp{}
	}
	return json.Marshal(ops)
}

// diff appends the operations for object a → b under prefix, descending
// depth levels into members that are objects on both sides.
func diff(ops []patchOp, prefix string, a, b map[string]any, depth int) []patchOp {
	for _, k := range sortedKeys(a) {
		if _, ok := b[k]; !ok {
			ops = append(ops, patchOp{Op: "remove", Path: prefix + "/" + escape(k)})
		}
	}
	for _, k := range sortedKeys(b) {
		av, had := a[k]
		bv := b[k]
		if had && reflect.DeepEqual(av, bv) {
			continue
		}
		am, aok := av.(map[string]any)
		bm, bok := bv.(map[string]any)
		if had && aok && bok && depth > 1 {
			ops = diff(ops, prefix+"/"+escape(k), am, bm, depth-1)
			continue
		}
		ops = append(ops, patchOp{Op: "add", Path: prefix + "/" + escape(k), Value: bv})
	}
	return ops
}

// escape is RFC 6901's escaping of a key in a JSON pointer.
func escape(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}
