package bootstrap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/weftmesh/weft/internal/protoyaml"
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

// decodeOptions decode a bootstrap: Any types are resolved only among the
// extension types weft-proxy supports, and paths use proto field names.
var decodeOptions = protoyaml.Options{Resolver: supportedResolver{}, AnyPolicy: supportedAnyPolicy{}}

// parse decodes data and returns the bootstrap with the YAML tree it came
// from (for line numbers).
func parse(data []byte, source string) (*bootstrapv3.Bootstrap, *yaml.Node, error) {
	jsonData, doc, err := toJSON(data)
	if err != nil {
		errs := Errors{fieldErrorOf(err)}
		errs[0].Source = source
		return nil, nil, errs
	}
	b := &bootstrapv3.Bootstrap{}
	if ps := decodeOptions.UnmarshalJSONText(jsonData, b, ""); ps != nil {
		errs := fromProblems(ps)
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

// yamlToJSON converts a YAML document to JSON text for protojson, as
// protoyaml.ToJSON describes: anchors, aliases and merge keys are expanded
// (with a bound on the expansion), YAML 1.2 scalars keep their types, and a
// timestamp stays the text as written.
func yamlToJSON(doc *yaml.Node) ([]byte, error) {
	return protoyaml.ToJSON(doc)
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
