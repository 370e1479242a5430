// Package config is weft-control's view of the mesh configuration users
// write: Istio resources (networking.istio.io VirtualService,
// DestinationRule, Gateway, ServiceEntry, WorkloadEntry, Sidecar;
// security.istio.io PeerAuthentication, AuthorizationPolicy,
// RequestAuthentication), decoded into the types of istio.io/api, validated
// with Istio's rules, and kept in a Store that holds the last good version
// of every object. weft's own networking.weft.dev/v1alpha1 LocalRateLimit
// (ratelimit.go) covers what Istio has no API for; it decodes and
// validates the same way.
//
// The file loader (LoadDir, LoadFiles) reads a directory of YAML/JSON
// documents through internal/protoyaml, so every problem is an *Error with
// its file, document, line, object key and field path
// ("spec.http[0].route[1].weight"). Validation follows Istio's
// pkg/config/validation rules (validate_*.go) and its analyzers for the
// cross-object checks (crossref.go); where weft differs on purpose the
// code says so. A Store applies each load atomically, keeping the last
// good version of a rejected object, and a Watcher reloads the directory
// into the Store when it changes (debounced). The Kubernetes watcher (a
// later issue) will produce the same Objects.
package config

import (
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Kind is a resource kind, as written in `kind:`.
type Kind string

// The kinds weft-control understands.
const (
	VirtualService  Kind = "VirtualService"
	DestinationRule Kind = "DestinationRule"
	Gateway         Kind = "Gateway"
	ServiceEntry    Kind = "ServiceEntry"
	WorkloadEntry   Kind = "WorkloadEntry"
	Sidecar         Kind = "Sidecar"

	// security.istio.io
	PeerAuthentication    Kind = "PeerAuthentication"
	AuthorizationPolicy   Kind = "AuthorizationPolicy"
	RequestAuthentication Kind = "RequestAuthentication"

	// telemetry.istio.io
	Telemetry Kind = "Telemetry"
)

// Key identifies an object.
type Key struct {
	Kind      Kind
	Namespace string
	Name      string
}

func (k Key) String() string { return fmt.Sprintf("%s %s/%s", k.Kind, k.Namespace, k.Name) }

// Meta is an object's metadata: the parts of Kubernetes ObjectMeta that
// Istio's semantics use.
type Meta struct {
	Kind Kind
	// APIVersion is as written: "networking.istio.io/v1", ".../v1beta1" or
	// ".../v1alpha3" (all decode to the same istio.io/api types).
	APIVersion  string
	Name        string
	Namespace   string // "default" when not written
	Labels      map[string]string
	Annotations map[string]string
}

// Source says where an object came from, for errors and debugging.
type Source struct {
	File string
	// Doc is the 0-based index of the YAML document in File; -1 when the
	// object is not from a file (File then names where it came from, for
	// example "kubernetes").
	Doc int
	// Line is the 1-based line where the document starts (0: unknown).
	Line int
}

func (s Source) String() string {
	if s.Doc < 0 { // not a document of a file (ObjectInput)
		return s.File
	}
	if s.Line > 0 {
		return fmt.Sprintf("%s:%d (document %d)", s.File, s.Line, s.Doc)
	}
	return fmt.Sprintf("%s (document %d)", s.File, s.Doc)
}

// Object is one validated configuration object. Objects are immutable once
// built: code that needs a change builds a new Object.
type Object struct {
	Meta
	// Spec is the istio.io/api message of the kind, for example
	// *networkingv1alpha3.VirtualService.
	Spec   proto.Message
	Source Source
	// Version changes whenever the object's content changes (a hash of the
	// spec and metadata).
	Version string
}

// Key returns the object's identity.
func (o *Object) Key() Key { return Key{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name} }

// Error is a problem with one object or document: where it is, which field,
// and what is wrong.
type Error struct {
	// Source is where the problem is: Source.Line is the line of the field
	// at Path when it is written in the file (or of its nearest written
	// ancestor), else the line where the object's document starts.
	Source Source
	// Key is the object's identity when it could be read ("" fields when
	// the document is too broken to say).
	Key Key
	// Path is the field path inside the document, e.g.
	// "spec.http[0].route[1].weight".
	Path string
	// Message says what is wrong and, where it helps, what to do.
	Message string
	// Warning marks problems that do not reject the object (for example a
	// field weft-control does not act on yet).
	Warning bool
}

func (e *Error) Error() string {
	s := e.Source.String()
	if e.Key.Kind != "" {
		s += ": " + e.Key.String()
	}
	if e.Path != "" {
		s += ": " + e.Path
	}
	level := ""
	if e.Warning {
		level = "warning: "
	}
	return s + ": " + level + e.Message
}
