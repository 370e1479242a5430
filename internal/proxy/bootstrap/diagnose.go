package bootstrap

import (
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/weftmesh/weft/internal/protoyaml"
)

// supportedAnyPolicy explains, for protoyaml's diagnosis of a failed
// decode, which @type values each Any field accepts: the extension types of
// supported.go (the same ones supportedResolver resolves).
type supportedAnyPolicy struct{}

var _ protoyaml.AnyPolicy = supportedAnyPolicy{}

// Accept implements protoyaml.AnyPolicy.
func (supportedAnyPolicy) Accept(fd protoreflect.FieldDescriptor, name protoreflect.FullName) string {
	types, here := anyTypesAt(fd)
	if _, err := (supportedResolver{}).FindMessageByName(name); err != nil || !slices.Contains(types, name) {
		return unsupportedTypeReason(name, types, here)
	}
	return ""
}

// Example implements protoyaml.AnyPolicy.
func (supportedAnyPolicy) Example(fd protoreflect.FieldDescriptor) protoreflect.FullName {
	if types, _ := anyTypesAt(fd); len(types) > 0 {
		return types[0]
	}
	return ""
}

// unsupportedTypeReason says an @type is not accepted; here tells whether
// supported lists the types of this field or every supported type.
func unsupportedTypeReason(name protoreflect.FullName, supported []protoreflect.FullName, here bool) string {
	if here {
		return fmt.Sprintf("type %s is not supported by weft-proxy (supported here: %s)", name, joinNames(supported))
	}
	return fmt.Sprintf("type %s is not supported by weft-proxy (its supported extension types are: %s)", name, joinNames(supported))
}

// fromProblems converts protoyaml's problems to FieldErrors (without a
// source: annotate sets it).
func fromProblems(ps protoyaml.Problems) Errors {
	errs := make(Errors, len(ps))
	for i, p := range ps {
		errs[i] = &FieldError{Line: p.Line, Path: p.Path, Reason: p.Reason}
	}
	return errs
}

// fieldErrorOf converts a decoding error to a FieldError, keeping the line
// and path of a *protoyaml.Problem.
func fieldErrorOf(err error) *FieldError {
	var p *protoyaml.Problem
	if errors.As(err, &p) {
		return &FieldError{Line: p.Line, Path: p.Path, Reason: p.Reason}
	}
	return &FieldError{Reason: err.Error()}
}
