package config

import (
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// LocalRateLimit is weft's own resource for local (per-proxy) rate
// limiting, which Istio has no API for (Istio's documentation uses an
// EnvoyFilter on SIDECAR_INBOUND). Written as
//
//	apiVersion: networking.weft.dev/v1alpha1
//	kind: LocalRateLimit
//	metadata: {name: api, namespace: shop}
//	spec:
//	  workloadSelector: {matchLabels: {app: api}}  # none: every workload of the namespace
//	  ports: [8080]                                 # none: every inbound HTTP port
//	  tokenBucket: {maxTokens: 100, tokensPerFill: 100, fillInterval: 1s}
//	  statusCode: 429                               # default 429
//	  responseHeaders: {x-local-rate-limit: "true"} # added to limited responses
//	  xRateLimitHeaders: true                       # x-ratelimit-limit/-remaining/-reset
//
// An object in the root namespace applies mesh-wide. docs/RATELIMIT.md
// describes the semantics; LocalRateLimitOf reads a decoded object.
const LocalRateLimit Kind = "LocalRateLimit"

// weftGroup is the API group of weft's own resources.
const weftGroup = "networking.weft.dev"

// localRateLimitSchema is the spec's schema as a protobuf file descriptor
// (text format), so that the resource decodes through protoyaml with the
// same error quality as Istio's: unknown fields with suggestions, types,
// durations, field paths and lines.
const localRateLimitSchema = `
name: "weft/networking/v1alpha1/local_rate_limit.proto"
package: "weft.networking.v1alpha1"
dependency: "google/protobuf/duration.proto"
syntax: "proto3"
message_type: {
  name: "LocalRateLimit"
  field: {name: "workload_selector" number: 1 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".weft.networking.v1alpha1.WorkloadSelector" json_name: "workloadSelector"}
  field: {name: "ports" number: 2 label: LABEL_REPEATED type: TYPE_UINT32 json_name: "ports"}
  field: {name: "token_bucket" number: 3 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".weft.networking.v1alpha1.TokenBucket" json_name: "tokenBucket"}
  field: {name: "status_code" number: 4 label: LABEL_OPTIONAL type: TYPE_UINT32 json_name: "statusCode"}
  field: {name: "response_headers" number: 5 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".weft.networking.v1alpha1.LocalRateLimit.ResponseHeadersEntry" json_name: "responseHeaders"}
  field: {name: "x_rate_limit_headers" number: 6 label: LABEL_OPTIONAL type: TYPE_BOOL json_name: "xRateLimitHeaders"}
  nested_type: {
    name: "ResponseHeadersEntry"
    field: {name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "key"}
    field: {name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "value"}
    options: {map_entry: true}
  }
}
message_type: {
  name: "WorkloadSelector"
  field: {name: "match_labels" number: 1 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".weft.networking.v1alpha1.WorkloadSelector.MatchLabelsEntry" json_name: "matchLabels"}
  nested_type: {
    name: "MatchLabelsEntry"
    field: {name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "key"}
    field: {name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "value"}
    options: {map_entry: true}
  }
}
message_type: {
  name: "TokenBucket"
  field: {name: "max_tokens" number: 1 label: LABEL_OPTIONAL type: TYPE_UINT32 json_name: "maxTokens"}
  field: {name: "tokens_per_fill" number: 2 label: LABEL_OPTIONAL type: TYPE_UINT32 json_name: "tokensPerFill"}
  field: {name: "fill_interval" number: 3 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Duration" json_name: "fillInterval"}
}
`

// localRateLimitType is the spec's message descriptor, built once from
// localRateLimitSchema (a constant: a failure is a bug and panics).
var localRateLimitType = sync.OnceValue(func() protoreflect.MessageDescriptor {
	fdp := &descriptorpb.FileDescriptorProto{}
	if err := prototext.Unmarshal([]byte(localRateLimitSchema), fdp); err != nil {
		panic(fmt.Sprintf("config: LocalRateLimit schema: %v", err))
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		panic(fmt.Sprintf("config: LocalRateLimit schema: %v", err))
	}
	return fd.Messages().ByName("LocalRateLimit")
})

// NewLocalRateLimitSpec returns an empty LocalRateLimit spec message (a
// dynamic message of the schema above), for decoders outside this package;
// LocalRateLimitOf reads it once it is an Object's Spec.
func NewLocalRateLimitSpec() proto.Message { return dynamicpb.NewMessage(localRateLimitType()) }

// Defaults of a LocalRateLimit (Envoy's: tokens_per_fill 1; the status
// Envoy's local_ratelimit answers with, 429).
const (
	DefaultRateLimitStatus = 429
	defaultTokensPerFill   = 1
)

// LocalRateLimitSpec is a decoded LocalRateLimit, defaults applied.
type LocalRateLimitSpec struct {
	// Selector is workloadSelector.matchLabels; empty selects every
	// workload of the object's namespace (every workload of the mesh in the
	// root namespace).
	Selector map[string]string
	// Ports are the inbound ports limited; empty means every inbound HTTP
	// port of the selected workloads.
	Ports []uint32
	// MaxTokens is the bucket's capacity (the burst), > 0.
	MaxTokens uint32
	// TokensPerFill tokens are added every FillInterval (default 1).
	TokensPerFill uint32
	// FillInterval is at least 50 ms (Envoy's minimum).
	FillInterval time.Duration
	// StatusCode answers limited requests (default 429).
	StatusCode uint32
	// ResponseHeaders are set on limited responses.
	ResponseHeaders map[string]string
	// XRateLimitHeaders adds x-ratelimit-limit, x-ratelimit-remaining and
	// x-ratelimit-reset (draft RFC v03) to every response.
	XRateLimitHeaders bool
}

// LocalRateLimitOf reads a LocalRateLimit object's spec; false when obj is
// not a decoded LocalRateLimit.
func LocalRateLimitOf(obj *Object) (*LocalRateLimitSpec, bool) {
	if obj == nil || obj.Kind != LocalRateLimit {
		return nil, false
	}
	m, ok := obj.Spec.(*dynamicpb.Message)
	if !ok || m.Descriptor() != localRateLimitType() {
		return nil, false
	}
	return readLocalRateLimit(m), true
}

// readLocalRateLimit converts the spec message, applying the defaults.
func readLocalRateLimit(m protoreflect.Message) *LocalRateLimitSpec {
	fields := m.Descriptor().Fields()
	get := func(name protoreflect.Name) protoreflect.Value { return m.Get(fields.ByName(name)) }
	s := &LocalRateLimitSpec{
		StatusCode:        uint32(get("status_code").Uint()),
		XRateLimitHeaders: get("x_rate_limit_headers").Bool(),
		ResponseHeaders:   stringMap(get("response_headers").Map()),
	}
	if sel := m.Get(fields.ByName("workload_selector")).Message(); sel.IsValid() {
		s.Selector = stringMap(sel.Get(sel.Descriptor().Fields().ByName("match_labels")).Map())
	}
	ports := get("ports").List()
	for i := 0; i < ports.Len(); i++ {
		s.Ports = append(s.Ports, uint32(ports.Get(i).Uint()))
	}
	if tb := get("token_bucket").Message(); tb.IsValid() {
		tf := tb.Descriptor().Fields()
		s.MaxTokens = uint32(tb.Get(tf.ByName("max_tokens")).Uint())
		s.TokensPerFill = uint32(tb.Get(tf.ByName("tokens_per_fill")).Uint())
		if fi := tb.Get(tf.ByName("fill_interval")).Message(); fi.IsValid() {
			s.FillInterval = asDuration(fi).AsDuration()
		}
	}
	if s.TokensPerFill == 0 {
		s.TokensPerFill = defaultTokensPerFill
	}
	if s.StatusCode == 0 {
		s.StatusCode = DefaultRateLimitStatus
	}
	return s
}

// stringMap copies a map<string, string> field; nil when empty.
func stringMap(m protoreflect.Map) map[string]string {
	if m.Len() == 0 {
		return nil
	}
	out := make(map[string]string, m.Len())
	m.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		out[k.String()] = v.String()
		return true
	})
	return out
}

// asDuration reads a google.protobuf.Duration held in a dynamic message.
func asDuration(m protoreflect.Message) *durationpb.Duration {
	f := m.Descriptor().Fields()
	return &durationpb.Duration{
		Seconds: m.Get(f.ByName("seconds")).Int(),
		Nanos:   int32(m.Get(f.ByName("nanos")).Int()),
	}
}

// fillIntervalOf returns the spec's tokenBucket.fillInterval as written
// (nil when absent), for validation.
func fillIntervalOf(m protoreflect.Message) *durationpb.Duration {
	tb := m.Get(m.Descriptor().Fields().ByName("token_bucket")).Message()
	if !tb.IsValid() {
		return nil
	}
	fi := tb.Get(tb.Descriptor().Fields().ByName("fill_interval")).Message()
	if !fi.IsValid() {
		return nil
	}
	return asDuration(fi)
}
