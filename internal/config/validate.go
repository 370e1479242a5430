package config

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	telemetry "istio.io/api/telemetry/v1alpha1"
)

// Validate checks one object with Istio's validation rules for its kind
// (the object-local rules; the loaders add the cross-object checks). It
// returns every problem, errors and warnings, with Key and Path set and
// Source taken from the object (the line is the document's: the loaders,
// which hold the YAML tree, give each problem the line of its field).
func Validate(obj *Object) []*Error {
	var out []*Error
	for _, x := range validateObject(obj.Meta, obj.Spec) {
		out = append(out, &Error{Source: obj.Source, Key: obj.Key(), Path: string(x.path), Message: x.msg, Warning: x.warning})
	}
	return out
}

// validateObject runs the metadata rules and the rules of the spec's kind.
func validateObject(meta Meta, spec proto.Message) issues {
	var is issues
	validateMeta(meta, &is)
	switch s := spec.(type) {
	case *networking.VirtualService:
		validateVirtualService(meta, s, &is)
	case *networking.DestinationRule:
		validateDestinationRule(meta, s, &is)
	case *networking.Gateway:
		validateGateway(meta, s, &is)
	case *networking.ServiceEntry:
		validateServiceEntry(meta, s, &is)
	case *networking.WorkloadEntry:
		validateWorkloadEntry(s, nil, true, specPath, &is)
	case *networking.Sidecar:
		validateSidecar(s, &is)
	case *security.PeerAuthentication:
		validatePeerAuthentication(meta, s, &is)
	case *security.AuthorizationPolicy:
		validateAuthorizationPolicy(meta, s, &is)
	case *security.RequestAuthentication:
		validateRequestAuthentication(meta, s, &is)
	case *telemetry.Telemetry:
		validateTelemetry(s, &is) // validate_telemetry.go
	case *dynamicpb.Message:
		switch s.Descriptor() {
		case localRateLimitType():
			validateLocalRateLimit(s, &is) // validate_ratelimit.go
		case workloadType():
			validateWorkload(s, &is) // validate_workload.go
		default:
			is.err(specPath, fmt.Sprintf("no validation for %s", s.Descriptor().FullName()))
		}
	default:
		is.err(specPath, fmt.Sprintf("no validation for %T", spec))
	}
	return is
}

// validateMeta checks the Kubernetes object metadata rules: the name is a
// DNS-1123 subdomain, the namespace a DNS-1123 label, labels and
// annotation keys are valid.
func validateMeta(meta Meta, is *issues) {
	if len(meta.Name) > 253 || !k8sNameRE.MatchString(meta.Name) {
		is.err("metadata.name", fmt.Sprintf("invalid name %q: lower case alphanumerics, '-' and '.', starting and ending with an alphanumeric, at most 253 characters", meta.Name))
	}
	if len(meta.Namespace) > 63 || !k8sNamespaceRE.MatchString(meta.Namespace) {
		is.err("metadata.namespace", fmt.Sprintf("invalid namespace %q: lower case alphanumerics and '-', starting and ending with an alphanumeric, at most 63 characters", meta.Namespace))
	}
	labelsProblems(is, "metadata.labels", meta.Labels)
	for _, k := range sortedKeys(meta.Annotations) {
		if msg := labelKeyProblem(k); msg != "" {
			is.err(fieldPath("metadata.annotations").k(k), fmt.Sprintf("invalid annotation key %q", k))
		}
	}
}
