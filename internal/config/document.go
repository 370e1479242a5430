package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/weftmesh/weft/internal/protoyaml"
)

// The API groups of the kinds weft-control reads.
const (
	networkingGroup = "networking.istio.io"
	securityGroup   = "security.istio.io"
	telemetryGroup  = "telemetry.istio.io"
)

// groupOf returns the API group of a kind weft-control reads.
func groupOf(k Kind) string {
	switch k {
	case PeerAuthentication, AuthorizationPolicy, RequestAuthentication:
		return securityGroup
	case LocalRateLimit:
		return weftGroup
	case Workload:
		return localGroup
	case Telemetry:
		return telemetryGroup
	}
	return networkingGroup
}

// groupVersions are the versions of each group weft-control reads (they
// all decode to the same istio.io/api types).
var groupVersions = map[string][]string{
	networkingGroup: {"v1", "v1beta1", "v1alpha3"},
	securityGroup:   {"v1", "v1beta1"},
	telemetryGroup:  {"v1", "v1alpha1"},
	weftGroup:       {"v1alpha1"},
	localGroup:      {"v1alpha1"},
}

// decodeOptions decode Istio specs the way Istio does: JSON (lowerCamel)
// field names in paths, and Go duration strings ("1m30s") accepted, as
// istio.io/api's jsonpb decoding accepts them.
var decodeOptions = protoyaml.Options{JSONNames: true, GoDurations: true}

// newSpec returns an empty spec message for a kind weft-control reads, or
// nil. The v1 and v1beta1 API versions are aliases of the v1alpha3 types.
func newSpec(k Kind) proto.Message {
	switch k {
	case VirtualService:
		return &networking.VirtualService{}
	case DestinationRule:
		return &networking.DestinationRule{}
	case Gateway:
		return &networking.Gateway{}
	case ServiceEntry:
		return &networking.ServiceEntry{}
	case WorkloadEntry:
		return &networking.WorkloadEntry{}
	case Sidecar:
		return &networking.Sidecar{}
	case PeerAuthentication:
		return &security.PeerAuthentication{}
	case AuthorizationPolicy:
		return &security.AuthorizationPolicy{}
	case RequestAuthentication:
		return &security.RequestAuthentication{}
	case Telemetry:
		return &telemetry.Telemetry{}
	case LocalRateLimit:
		return NewLocalRateLimitSpec() // ratelimit.go
	case Workload:
		return NewWorkloadSpec() // workload.go
	}
	return nil
}

// supportedKinds lists the kinds for messages.
const supportedKinds = "VirtualService, DestinationRule, Gateway, ServiceEntry, WorkloadEntry and Sidecar of " + networkingGroup +
	", PeerAuthentication, AuthorizationPolicy and RequestAuthentication of " + securityGroup +
	", Telemetry of " + telemetryGroup +
	", weft's LocalRateLimit of " + weftGroup +
	", and weft up's Workload of " + localGroup

// topLevelFields are the fields of a Kubernetes object document; status is
// accepted (kubectl get -o yaml writes it) and ignored.
var topLevelFields = []string{"apiVersion", "kind", "metadata", "spec", "status"}

// ignoredMetadata are the Kubernetes ObjectMeta fields that are accepted
// and ignored: the server-set fields kubectl get -o yaml writes, and the
// ones weft has no use for.
var ignoredMetadata = []string{
	"uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
	"deletionGracePeriodSeconds", "managedFields", "ownerReferences", "finalizers",
	"generateName", "selfLink",
}

// metadataFields are the ObjectMeta fields weft reads.
var metadataFields = []string{"name", "namespace", "labels", "annotations"}

// loaded is one object document as the loader read it, valid or not.
type loaded struct {
	// obj is the decoded object; nil when decoding failed. It is valid
	// (and applies) only when no problem is an error: see valid.
	obj *Object
	// key is the object's identity, as far as it could be read.
	key Key
	// ours is true for a kind weft-control stores (VirtualService, ...).
	ours bool
	// node is the object's YAML node, for the lines of problems (the
	// file cache drops it for kinds the cross-object checks do not
	// report on).
	node *yaml.Node
	// nameLine is the line of metadata.name, where a duplicate definition
	// is reported.
	nameLine int
	src      Source
	errs     []*Error
}

// clone returns a copy whose problems can be added to and changed without
// touching l (the object itself is immutable and shared).
func (l *loaded) clone() *loaded {
	c := *l
	c.errs = make([]*Error, len(l.errs))
	for i, e := range l.errs {
		ce := *e
		c.errs[i] = &ce
	}
	return &c
}

// identified reports whether the document's identity is known.
func (l *loaded) identified() bool { return l.key.Kind != "" && l.key.Name != "" }

// problem records an error (or warning) at path with the line of the field.
func (l *loaded) problem(path fieldPath, msg string, warning bool) {
	src := l.src
	if line := protoyaml.LineOf(l.node, string(path)); line > 0 {
		src.Line = line
	} else if path == "metadata.name" && l.nameLine > 0 {
		src.Line = l.nameLine
	}
	l.errs = append(l.errs, &Error{Source: src, Key: l.key, Path: string(path), Message: msg, Warning: warning})
}

// valid reports whether the object decoded and has no error (warnings
// allowed): it is one that applies.
func (l *loaded) valid() bool { return l.obj != nil && !l.failed() }

// failed reports whether any recorded problem is an error.
func (l *loaded) failed() bool {
	for _, e := range l.errs {
		if !e.Warning {
			return true
		}
	}
	return false
}

// decodeFile reads every document of one file. incomplete is true when a
// document could not be identified (its objects are unknown).
func decodeFile(file string, data []byte) (items []*loaded, incomplete bool) {
	for _, doc := range protoyaml.Split(data) {
		src := Source{File: file, Doc: doc.Index, Line: doc.Line}
		if doc.Empty() {
			continue
		}
		v, err := doc.Value()
		if err != nil {
			l := &loaded{src: src}
			p := problemOf(err)
			if p.Line > 0 {
				l.src.Line = p.Line
			}
			l.problem(fieldPath(p.Path), p.Reason, false)
			items, incomplete = append(items, l), true
			continue
		}
		node := contentNode(doc.Node)
		for _, l := range decodeDocument(v, node, src) {
			items = append(items, l)
			incomplete = incomplete || !l.identified()
		}
	}
	return items, incomplete
}

// problemOf returns err as a protoyaml problem.
func problemOf(err error) *protoyaml.Problem {
	if p, ok := err.(*protoyaml.Problem); ok {
		return p
	}
	return &protoyaml.Problem{Reason: err.Error()}
}

// contentNode returns the root content node of a document (nil for none).
func contentNode(doc *yaml.Node) *yaml.Node {
	if doc != nil && doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		return doc.Content[0]
	}
	return doc
}

// decodeDocument decodes one document: an object, or a Kubernetes List
// (kubectl get -o yaml) whose items are objects.
func decodeDocument(v any, node *yaml.Node, src Source) []*loaded {
	m, ok := v.(map[string]any)
	if !ok {
		l := &loaded{src: src, node: node}
		l.problem("", "a document must be a mapping with apiVersion, kind, metadata and spec", false)
		return []*loaded{l}
	}
	if m["kind"] != "List" || m["apiVersion"] != "v1" {
		return []*loaded{decodeObject(m, node, src)}
	}
	items, ok := m["items"].([]any)
	if !ok {
		l := &loaded{src: src, node: node}
		l.problem("items", "a List needs a list of items", false)
		return []*loaded{l}
	}
	var out []*loaded
	for i, item := range items {
		itemNode := listItemNode(node, i)
		itemSrc := src
		if itemNode != nil {
			itemSrc.Line = itemNode.Line
		}
		if im, ok := item.(map[string]any); ok {
			out = append(out, decodeObject(im, itemNode, itemSrc))
			continue
		}
		l := &loaded{src: itemSrc, node: itemNode}
		l.problem("", "a List item must be a mapping with apiVersion, kind, metadata and spec", false)
		out = append(out, l)
	}
	return out
}

// listItemNode returns the node of items[i] of a List document.
func listItemNode(node *yaml.Node, i int) *yaml.Node {
	if node == nil || node.Kind != yaml.MappingNode {
		return nil
	}
	for j := 0; j+1 < len(node.Content); j += 2 {
		if node.Content[j].Value == "items" {
			if list := node.Content[j+1]; list.Kind == yaml.SequenceNode && i < len(list.Content) {
				return list.Content[i]
			}
		}
	}
	return nil
}

// decodeObject decodes and validates one object.
func decodeObject(m map[string]any, node *yaml.Node, src Source) *loaded {
	l := &loaded{src: src, node: node, nameLine: protoyaml.LineOf(node, "metadata.name")}
	apiVersion, _ := m["apiVersion"].(string)
	kind, _ := m["kind"].(string)
	l.key.Kind = Kind(kind)
	meta := l.metadata(m["metadata"])
	meta.Kind, meta.APIVersion = Kind(kind), apiVersion
	l.key.Namespace, l.key.Name = meta.Namespace, meta.Name
	for _, k := range sortedKeys(m) {
		if !contains(topLevelFields, k) {
			l.problem(fieldPath("").f(k), unknownField(k, topLevelFields), false)
		}
	}
	spec := newSpec(Kind(kind))
	if msg := kindProblem(apiVersion, kind, spec != nil); msg != "" {
		path := fieldPath("kind")
		if apiVersion == "" || strings.HasPrefix(msg, "apiVersion") {
			path = "apiVersion"
		}
		l.problem(path, msg, false)
		l.ours = spec != nil && strings.HasPrefix(apiVersion, groupOf(Kind(kind))+"/")
		return l.finish()
	}
	l.ours = true
	specValue, ok := m["spec"]
	if !ok {
		l.problem("spec", "spec is required", false)
		return l.finish()
	}
	for _, p := range decodeOptions.Unmarshal(specValue, spec, "spec") {
		l.problem(fieldPath(p.Path), p.Reason, false)
	}
	if l.failed() {
		return l.finish()
	}
	for _, x := range validateObject(meta, spec) {
		l.problem(x.path, x.msg, x.warning)
	}
	l.obj = &Object{Meta: meta, Spec: spec, Source: src, Version: version(meta, spec)}
	return l.finish()
}

// finish sets the final key on every problem (the identity is read while
// problems are found).
func (l *loaded) finish() *loaded {
	for _, e := range l.errs {
		e.Key = l.key
	}
	return l
}

// kindProblem explains an apiVersion/kind weft-control does not read.
func kindProblem(apiVersion, kind string, known bool) string {
	group, ver, _ := strings.Cut(apiVersion, "/")
	want := groupOf(Kind(kind))
	switch {
	case apiVersion == "" || kind == "":
		return "apiVersion and kind are required (for example apiVersion: networking.istio.io/v1, kind: VirtualService)"
	case known && group == want && !contains(groupVersions[want], ver):
		vs := groupVersions[want]
		if len(vs) == 1 {
			return fmt.Sprintf("apiVersion %s is not supported: use %s/%s", apiVersion, want, vs[0])
		}
		return fmt.Sprintf("apiVersion %s is not supported: use %s/%s or %s", apiVersion, want, strings.Join(vs[:len(vs)-1], ", "), vs[len(vs)-1])
	case known && group == want:
		return ""
	case known:
		return fmt.Sprintf("apiVersion %s is not supported for %s: use %s/%s", apiVersion, kind, want, groupVersions[want][0])
	case kind == "EnvoyFilter" && group == networkingGroup:
		return fmt.Sprintf("kind %s of %s is not supported by weft-control (it reads %s); for local rate limiting, use LocalRateLimit of %s/v1alpha1 (docs/RATELIMIT.md)",
			kind, group, supportedKinds, weftGroup)
	case group == networkingGroup || group == securityGroup || group == telemetryGroup || group == weftGroup || group == localGroup:
		return fmt.Sprintf("kind %s of %s is not supported by weft-control (it reads %s)", kind, group, supportedKinds)
	}
	return fmt.Sprintf("%s %s is not a resource weft-control reads (it reads %s)", apiVersion, kind, supportedKinds)
}

// metadata reads the object metadata, recording its problems.
func (l *loaded) metadata(v any) Meta {
	meta := Meta{Namespace: "default"}
	md, ok := v.(map[string]any)
	if !ok {
		msg := "metadata is required, with at least a name"
		if v != nil {
			msg = "metadata must be a mapping"
		}
		l.problem("metadata", msg, false)
		return meta
	}
	meta.Name = l.metaString(md, "name")
	if meta.Name == "" {
		if _, set := md["name"]; !set {
			l.problem("metadata", "metadata.name is required", false)
		}
	}
	if ns := l.metaString(md, "namespace"); ns != "" {
		meta.Namespace = ns
	}
	meta.Labels = l.metaMap(md, "labels")
	meta.Annotations = l.metaMap(md, "annotations")
	known := append(append([]string(nil), metadataFields...), ignoredMetadata...)
	for _, k := range sortedKeys(md) {
		if !contains(known, k) {
			l.problem(fieldPath("metadata").f(k), unknownField(k, known), false)
		}
	}
	return meta
}

// metaString reads a string field of metadata.
func (l *loaded) metaString(md map[string]any, field string) string {
	v, set := md[field]
	if !set || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok || s == "" {
		l.problem(fieldPath("metadata").f(field), fmt.Sprintf("metadata.%s must be a non-empty string", field), false)
	}
	return s
}

// metaMap reads a string map of metadata (labels, annotations).
func (l *loaded) metaMap(md map[string]any, field string) map[string]string {
	v, set := md[field]
	if !set || v == nil {
		return nil
	}
	p := fieldPath("metadata").f(field)
	m, ok := v.(map[string]any)
	if !ok {
		l.problem(p, "expected a mapping of strings", false)
		return nil
	}
	out := make(map[string]string, len(m))
	for _, k := range sortedKeys(m) {
		s, ok := m[k].(string)
		if !ok {
			l.problem(p.k(k), fmt.Sprintf("expected a string, got %v (quote it)", m[k]), false)
			continue
		}
		out[k] = s
	}
	return out
}

// unknownField says a key is not a known field, suggesting the nearest.
func unknownField(key string, known []string) string {
	msg := "unknown field"
	if best := protoyaml.Closest(key, known); best != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", best)
	}
	return msg
}

// contains reports whether list holds s.
func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// version hashes an object's metadata and spec: equal content, equal
// version, whatever file it came from.
func version(meta Meta, spec proto.Message) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", meta.APIVersion, meta.Kind, meta.Namespace, meta.Name)
	for _, m := range []map[string]string{meta.Labels, meta.Annotations} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(h, "%s=%s\x00", k, m[k])
		}
		h.Write([]byte{1})
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(spec)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)[:8])
}
