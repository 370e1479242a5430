package config

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
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
// localRateLimitSchema.
var localRateLimitType = specSchema(LocalRateLimit, localRateLimitSchema, "LocalRateLimit")

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
	return specOf(obj, LocalRateLimit, localRateLimitType(), readLocalRateLimit)
}

// readLocalRateLimit converts the spec message, applying the defaults.
func readLocalRateLimit(m protoreflect.Message) *LocalRateLimitSpec {
	r := specReader{m}
	s := &LocalRateLimitSpec{
		Ports:             r.uint32s("ports"),
		StatusCode:        uint32(r.get("status_code").Uint()),
		XRateLimitHeaders: r.get("x_rate_limit_headers").Bool(),
		ResponseHeaders:   r.stringMap("response_headers"),
	}
	if sel, ok := r.message("workload_selector"); ok {
		s.Selector = sel.stringMap("match_labels")
	}
	if tb, ok := r.message("token_bucket"); ok {
		s.MaxTokens = uint32(tb.get("max_tokens").Uint())
		s.TokensPerFill = uint32(tb.get("tokens_per_fill").Uint())
		if fi := tb.duration("fill_interval"); fi != nil {
			s.FillInterval = fi.AsDuration()
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

// fillIntervalOf returns the spec's tokenBucket.fillInterval as written
// (nil when absent), for validation.
func fillIntervalOf(m protoreflect.Message) *durationpb.Duration {
	tb, ok := specReader{m}.message("token_bucket")
	if !ok {
		return nil
	}
	return tb.duration("fill_interval")
}
