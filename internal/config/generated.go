package config

import "google.golang.org/protobuf/proto"

// NewObject builds an object from code rather than from a file (weft up
// generates ServiceEntries and WorkloadEntries from its manifest): it is
// validated with the same rules as a loaded object, and gets its Version.
// meta.Namespace defaults to "default". The object is nil when a problem
// is an error; the problems (errors and warnings) carry src and the key.
// spec must not be modified afterwards.
func NewObject(meta Meta, spec proto.Message, src Source) (*Object, []*Error) {
	if meta.Namespace == "" {
		meta.Namespace = "default"
	}
	obj := &Object{Meta: meta, Spec: spec, Source: src, Version: version(meta, spec)}
	errs := Validate(obj)
	for _, e := range errs {
		if !e.Warning {
			return nil, errs
		}
	}
	return obj, errs
}
