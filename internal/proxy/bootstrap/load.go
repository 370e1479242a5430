package bootstrap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Load reads an Envoy v3 Bootstrap from a YAML or JSON file, like Envoy's
// -c: valid JSON is decoded as JSON, anything else as one YAML 1.2 document
// (so an unquoted yes is a string, not a boolean). Unknown fields, bad
// values and @type values that weft-proxy does not support are errors,
// returned together as Errors naming the file, YAML line and field path of
// each problem (a file that cannot be read gives the wrapped *fs.PathError).
// Load does not check the supported subset: call Validate, or use
// LoadAndValidate.
func Load(path string) (*bootstrapv3.Bootstrap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return Parse(data, path)
}

// Parse is Load for a configuration in memory (Envoy's --config-yaml);
// source names it in error messages.
func Parse(data []byte, source string) (*bootstrapv3.Bootstrap, error) {
	b, _, err := parse(data, source)
	return b, err
}

// LoadAndValidate is Load followed by Validate; every problem carries the
// file name and, where the field is written in the file, its line.
func LoadAndValidate(path string) (*bootstrapv3.Bootstrap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return ParseAndValidate(data, path)
}

// ParseAndValidate is Parse followed by Validate, with file and line on
// every problem. It returns the bootstrap only when there is no problem.
func ParseAndValidate(data []byte, source string) (*bootstrapv3.Bootstrap, error) {
	b, doc, err := parse(data, source)
	if err != nil {
		return nil, err
	}
	errs := validate(b)
	if len(errs) == 0 {
		return b, nil
	}
	annotate(errs, source, doc)
	return nil, errs
}

// parse decodes data and returns the bootstrap with the YAML tree it came
// from (for line numbers).
func parse(data []byte, source string) (*bootstrapv3.Bootstrap, *yaml.Node, error) {
	jsonData, doc, err := toJSON(data)
	if err != nil {
		return nil, nil, Errors{{Source: source, Reason: err.Error()}}
	}
	b := &bootstrapv3.Bootstrap{}
	opts := protojson.UnmarshalOptions{Resolver: supportedResolver{}}
	if err := opts.Unmarshal(jsonData, b); err != nil {
		errs := diagnose(jsonData, b.ProtoReflect().Descriptor())
		if len(errs) == 0 {
			// The walker did not find what protojson objects to; its message
			// has only a JSON offset, but it is better than nothing.
			errs = Errors{{Reason: err.Error()}}
		}
		annotate(errs, source, doc)
		return nil, nil, errs
	}
	return b, doc, nil
}

// toJSON returns the JSON text protojson decodes, and the YAML tree for
// line numbers (nil when there is none). Valid JSON is used as it is, as
// Envoy reads a .json file; the YAML tree is then a best effort (JSON that
// is not YAML, such as the escape \/, has no lines). Anything else must be
// one YAML document.
func toJSON(data []byte) ([]byte, *yaml.Node, error) {
	doc, err := parseYAML(data)
	if json.Valid(data) {
		if err != nil {
			doc = nil
		}
		return data, doc, nil
	}
	if err != nil {
		return nil, nil, err
	}
	jsonData, err := yamlToJSON(doc)
	return jsonData, doc, err
}

// parseYAML parses exactly one YAML document.
func parseYAML(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty configuration")
		}
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("invalid YAML: %w", err)
		}
		return nil, fmt.Errorf("line %d: a second YAML document; a bootstrap is one document", extra.Line)
	}
	return &doc, nil
}

// yamlToJSON converts a YAML document to JSON text for protojson. Anchors,
// aliases and merge keys are expanded by the YAML decoder (which limits
// alias expansion).
func yamlToJSON(doc *yaml.Node) ([]byte, error) {
	var v any
	if err := doc.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	jv, err := jsonable(v, "")
	if err != nil {
		return nil, err
	}
	return json.Marshal(jv)
}

// jsonable converts a decoded YAML value to one encoding/json can marshal:
// mapping keys become strings, infinities and NaN become the strings
// protojson accepts for floating-point fields, timestamps become RFC 3339.
func jsonable(v any, path string) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			c, err := jsonable(e, joinField(path, k))
			if err != nil {
				return nil, err
			}
			t[k] = c
		}
		return t, nil
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			ks, err := scalarKey(k, path)
			if err != nil {
				return nil, err
			}
			c, err := jsonable(e, joinField(path, ks))
			if err != nil {
				return nil, err
			}
			out[ks] = c
		}
		return out, nil
	case []any:
		for i, e := range t {
			c, err := jsonable(e, joinIndex(path, i))
			if err != nil {
				return nil, err
			}
			t[i] = c
		}
		return t, nil
	case float64:
		return jsonFloat(t), nil
	case time.Time:
		return t.Format(time.RFC3339Nano), nil
	case nil, bool, string, int, int64, uint64:
		return t, nil
	default:
		return nil, fmt.Errorf("%s: unsupported YAML value of type %T", path, v)
	}
}

// jsonFloat maps the floats JSON cannot carry to protojson's strings.
func jsonFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

// scalarKey formats a non-string YAML mapping key as JSON does not allow
// any other kind of key.
func scalarKey(k any, path string) (string, error) {
	switch t := k.(type) {
	case string:
		return t, nil
	case bool, int, int64, uint64, float64:
		return fmt.Sprint(t), nil
	default:
		return "", fmt.Errorf("%s: mapping key %v is not a scalar", path, k)
	}
}

// supportedResolver resolves google.protobuf.Any @type values for protojson:
// only the extension types some supported field accepts (supported.go), so
// any other type fails to load with a "not supported" message. Extensions
// (proto2) are not used by the Envoy v3 API.
type supportedResolver struct{}

// FindMessageByName implements protoregistry.MessageTypeResolver.
func (supportedResolver) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	if !slices.Contains(supportedAnyTypes(), name) {
		return nil, protoregistry.NotFound
	}
	return protoregistry.GlobalTypes.FindMessageByName(name)
}

// FindMessageByURL implements protoregistry.MessageTypeResolver.
func (r supportedResolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	return r.FindMessageByName(typeNameOf(url))
}

// FindExtensionByName implements protoregistry.ExtensionTypeResolver.
func (supportedResolver) FindExtensionByName(protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return nil, protoregistry.NotFound
}

// FindExtensionByNumber implements protoregistry.ExtensionTypeResolver.
func (supportedResolver) FindExtensionByNumber(protoreflect.FullName, protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return nil, protoregistry.NotFound
}

// typeNameOf returns the message name of a type URL (the part after the
// last '/'), as protoregistry does.
func typeNameOf(url string) protoreflect.FullName {
	if i := strings.LastIndexByte(url, '/'); i >= 0 {
		url = url[i+1:]
	}
	return protoreflect.FullName(url)
}
