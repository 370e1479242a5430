package config

import (
	"fmt"
	"strings"
	"time"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/dynamicpb"
)

// minFillInterval is Envoy's minimum token bucket fill interval for the
// local rate limit filter (it rejects shorter ones).
const minFillInterval = 50 * time.Millisecond

// validateLocalRateLimit checks a LocalRateLimit: a token bucket with
// maxTokens > 0 and fillInterval ≥ 50 ms, valid ports (no duplicates), a
// 4xx/5xx status Envoy knows, valid response headers and selector labels.
func validateLocalRateLimit(m *dynamicpb.Message, is *issues) {
	s := readLocalRateLimit(m)
	tb := specPath.f("tokenBucket")
	if !m.Has(m.Descriptor().Fields().ByName("token_bucket")) {
		is.err(tb, "tokenBucket is required (maxTokens, tokensPerFill, fillInterval)")
	} else {
		if s.MaxTokens == 0 {
			is.err(tb.f("maxTokens"), "maxTokens must be greater than 0 (the bucket's capacity: the largest burst admitted)")
		}
		validateFillInterval(m, tb.f("fillInterval"), is)
		if s.MaxTokens > 0 && s.TokensPerFill > s.MaxTokens {
			is.warn(tb.f("tokensPerFill"), fmt.Sprintf("tokensPerFill %d is above maxTokens %d: the bucket never holds more than maxTokens", s.TokensPerFill, s.MaxTokens))
		}
	}
	seen := map[uint32]bool{}
	for i, p := range s.Ports {
		is.check(specPath.f("ports").i(i), portProblem(p))
		if seen[p] {
			is.err(specPath.f("ports").i(i), fmt.Sprintf("port %d is listed twice", p))
		}
		seen[p] = true
	}
	is.check(specPath.f("statusCode"), rateLimitStatusProblem(s.StatusCode))
	for _, k := range sortedKeys(s.ResponseHeaders) {
		p := specPath.f("responseHeaders").k(k)
		if msg := headerNameProblem(k); msg != "" {
			is.err(p, msg)
		} else if strings.HasPrefix(k, ":") || strings.EqualFold(k, "host") {
			is.err(p, fmt.Sprintf("%q cannot be set on a response", k))
		}
		is.check(p, headerValueProblem(s.ResponseHeaders[k]))
	}
	sel := specPath.f("workloadSelector").f("matchLabels")
	labelsProblems(is, sel, s.Selector)
	if len(s.Selector) > 0 {
		selectorProblems(is, sel, s.Selector)
	}
}

// validateFillInterval checks tokenBucket.fillInterval: required, whole
// milliseconds, at least 50 ms.
func validateFillInterval(m *dynamicpb.Message, p fieldPath, is *issues) {
	fi := fillIntervalOf(m)
	if fi == nil {
		is.err(p, "fillInterval is required (for example 1s): tokensPerFill tokens are added every fillInterval")
		return
	}
	if msg := durationProblem(fi); msg != "" {
		is.err(p, msg)
		return
	}
	if d := fi.AsDuration(); d < minFillInterval {
		is.err(p, fmt.Sprintf("fillInterval %s is below Envoy's minimum of 50ms: use a longer interval (and more tokensPerFill)", d))
	}
}

// rateLimitStatusProblem checks the status of limited responses: a 4xx or
// 5xx code Envoy's HttpStatus accepts (envoy.type.v3.StatusCode).
func rateLimitStatusProblem(code uint32) string {
	if code < 400 || code > 599 {
		return fmt.Sprintf("statusCode %d is not a 4xx or 5xx status (default 429)", code)
	}
	if _, ok := typev3.StatusCode_name[int32(code)]; !ok {
		return fmt.Sprintf("statusCode %d is not a status Envoy knows (envoy.type.v3.StatusCode): use for example 429 or 503", code)
	}
	return ""
}
