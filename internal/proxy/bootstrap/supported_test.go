package bootstrap

import (
	"slices"
	"sort"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// TestAllowlistConsistent checks that every name in supported.go exists in
// the Envoy API, that rules fit their field kinds, that every supported
// message field has an entry for its type (or is a leaf), and that every
// supported extension type is linked into the binary.
func TestAllowlistConsistent(t *testing.T) {
	names := make([]string, 0, len(allowlist()))
	for n := range allowlist() {
		names = append(names, string(n))
	}
	sort.Strings(names)
	for _, n := range names {
		name := protoreflect.FullName(n)
		mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
		if err != nil {
			t.Errorf("%s: message type not found (typo, or its package is not imported): %v", name, err)
			continue
		}
		checkRule(t, string(name), mt.Descriptor(), allowlist()[name])
	}
}

func checkRule(t *testing.T, where string, md protoreflect.MessageDescriptor, rule msgRule) {
	t.Helper()
	for fname, fr := range rule {
		fd := md.Fields().ByName(fname)
		at := where + "." + string(fname)
		if fd == nil {
			t.Errorf("%s: no such field in %s", at, md.FullName())
			continue
		}
		checkFieldRule(t, at, fd, fr)
	}
}

func checkFieldRule(t *testing.T, at string, fd protoreflect.FieldDescriptor, fr fieldRule) {
	t.Helper()
	if fr.Enums != nil {
		if fd.Enum() == nil {
			t.Errorf("%s: Enums on a non-enum field", at)
		} else {
			for _, v := range fr.Enums {
				if fd.Enum().Values().ByName(protoreflect.Name(v)) == nil {
					t.Errorf("%s: %s has no value %s", at, fd.Enum().FullName(), v)
				}
			}
		}
	}
	if fr.Keys != nil && !fd.IsMap() {
		t.Errorf("%s: Keys on a non-map field", at)
	}
	target := fd.Message()
	if fd.IsMap() {
		target = fd.MapValue().Message()
	}
	if fr.Types != nil {
		if target == nil || target.FullName() != anyFullName {
			t.Errorf("%s: Types on a field that is not an Any", at)
		}
		for _, typ := range fr.Types {
			if _, err := protoregistry.GlobalTypes.FindMessageByName(typ); err != nil {
				t.Errorf("%s: type %s not linked (import its package in extensions.go)", at, typ)
			}
			if _, ok := ruleFor(typ); !ok {
				t.Errorf("%s: type %s has no allowlist entry", at, typ)
			}
		}
	}
	if fr.Fields != nil {
		if target == nil {
			t.Errorf("%s: Fields on a non-message field", at)
			return
		}
		checkRule(t, at, target, fr.Fields)
		return
	}
	if target == nil || isLeaf(target.FullName()) {
		return
	}
	if target.FullName() == anyFullName {
		if fr.Types == nil {
			t.Errorf("%s: Any field without Types", at)
		}
		return
	}
	if _, ok := ruleFor(target.FullName()); !ok {
		t.Errorf("%s: message type %s has no allowlist entry", at, target.FullName())
	}
}

func TestSupportedAnyTypesSorted(t *testing.T) {
	got := supportedAnyTypes()
	want := []protoreflect.FullName{routerType, tlsInspectorType, originalDstType, hcmType, tcpProxyType, httpOptionsType,
		fileAccessLogType, stdoutLogType, stderrLogType,
		downstreamTLS, upstreamTLS, rawBufferType, rbacHTTPType, rbacNetworkType, jwtAuthnType, previousHostsType,
		faultType, localRateLimit, filterConfigMsg, xdsTypedStruct, udpaTypedStruct,
		"envoy.config.trace.v3.OpenTelemetryConfig", "envoy.config.trace.v3.ZipkinConfig"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("supportedAnyTypes() = %v, want %v", got, want)
	}
}

func TestIsToken(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"websocket", true}, {"h2c", true}, {"x-custom_1.0", true},
		{"", false}, {"web socket", false}, {"a/b", false}, {"é", false},
	} {
		if got := isToken(tc.in); got != tc.want {
			t.Errorf("isToken(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
