package admin

import (
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// This file applies /config_dump's ?mask= the way Envoy does with
// protobuf's FieldMaskUtil: paths are comma-separated proto field names,
// dotted through singular message fields; a message keeps only the fields
// some path covers. Envoy also masks through the one Any field of a dump
// resource (trimResourceMessage), which trimResource reproduces.

// parseMask splits a mask into its paths, dropping empty ones
// (FieldMaskUtil::FromString).
func parseMask(s string) []string {
	var paths []string
	for _, p := range strings.Split(s, ",") {
		if p != "" {
			paths = append(paths, p)
		}
	}
	return paths
}

// validMask reports whether every path names fields of md, going only
// through singular message fields before its last element
// (FieldMaskUtil::GetFieldDescriptors).
func validMask(md protoreflect.MessageDescriptor, paths []string) bool {
	for _, path := range paths {
		d := md
		parts := strings.Split(path, ".")
		for i, part := range parts {
			fd := d.Fields().ByName(protoreflect.Name(part))
			if fd == nil {
				return false
			}
			if i == len(parts)-1 {
				break
			}
			if fd.Message() == nil || fd.IsList() || fd.IsMap() {
				return false
			}
			d = fd.Message()
		}
	}
	return true
}

// maskTree maps a field name to the mask below it; a nil subtree keeps the
// whole field.
type maskTree map[string]maskTree

func buildMaskTree(paths []string) maskTree {
	root := maskTree{}
	for _, path := range paths {
		node := root
		parts := strings.Split(path, ".")
		for i, part := range parts {
			sub, seen := node[part]
			if seen && sub == nil {
				break // a shorter path already keeps the whole field
			}
			if i == len(parts)-1 {
				node[part] = nil
				break
			}
			if sub == nil {
				sub = maskTree{}
				node[part] = sub
			}
			node = sub
		}
	}
	return root
}

// trimMessage clears every field of m that t does not cover
// (FieldMaskUtil::TrimMessage). The mask must be valid for m.
func trimMessage(m protoreflect.Message, t maskTree) {
	var present []protoreflect.FieldDescriptor
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		present = append(present, fd)
		return true
	})
	for _, fd := range present {
		sub, keep := t[string(fd.Name())]
		switch {
		case !keep:
			m.Clear(fd)
		case sub != nil && fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			trimMessage(m.Mutable(fd).Message(), sub)
		}
	}
}

// checkAndTrim validates paths against m and trims m; false when the mask
// does not fit m (Envoy's checkFieldMaskAndTrimMessage).
func checkAndTrim(m protoreflect.Message, paths []string) bool {
	if !validMask(m.Descriptor(), paths) {
		return false
	}
	trimMessage(m, buildMaskTree(paths))
	return true
}

// trimResource applies a mask to one element of a dump's repeated field,
// reaching into its singular Any field (for example a StaticCluster's
// "cluster"): "cluster.name,last_updated" keeps last_updated and, inside
// the packed Cluster, only name. A path naming just the Any keeps it
// whole. Only one Any field may be masked through, as in Envoy.
func trimResource(m protoreflect.Message, paths []string) bool {
	var outer, inner []string
	var anyField protoreflect.FieldDescriptor
	wholeAny := false
	for _, path := range paths {
		head, rest, _ := strings.Cut(path, ".")
		fd := m.Descriptor().Fields().ByName(protoreflect.Name(head))
		if fd == nil || !isSingularAny(fd) {
			outer = append(outer, path)
			continue
		}
		if anyField != nil && anyField != fd {
			return false
		}
		anyField = fd
		outer = append(outer, head)
		if rest == "" {
			wholeAny = true
		} else {
			inner = append(inner, rest)
		}
	}
	if anyField != nil && !wholeAny && m.Has(anyField) {
		if !trimInsideAny(m.Mutable(anyField).Message(), inner) {
			return false
		}
	}
	return checkAndTrim(m, outer)
}

func isSingularAny(fd protoreflect.FieldDescriptor) bool {
	return fd.Message() != nil && !fd.IsList() && !fd.IsMap() &&
		fd.Message().FullName() == "google.protobuf.Any"
}

// trimInsideAny unpacks the Any m, masks its content and packs it back.
func trimInsideAny(m protoreflect.Message, paths []string) bool {
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		return false
	}
	inner, err := a.UnmarshalNew()
	if err != nil || !checkAndTrim(inner.ProtoReflect(), paths) {
		return false
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(inner)
	if err != nil {
		return false
	}
	a.Value = b
	return true
}
