package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// A local stand-in for the config loader (internal/config, another
// helper's package): multi-document YAML → config.Objects, the spec
// decoded with protojson into the istio.io/api types.

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

type testDoc struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec json.RawMessage `json:"spec"`
}

func objects(t testing.TB, text string) []*config.Object {
	t.Helper()
	var out []*config.Object
	for i, doc := range docSeparator.Split(text, -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		var d testDoc
		if err := json.Unmarshal(js, &d); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		var spec proto.Message
		switch config.Kind(d.Kind) {
		case config.ServiceEntry:
			spec = &networking.ServiceEntry{}
		case config.WorkloadEntry:
			spec = &networking.WorkloadEntry{}
		case config.VirtualService:
			spec = &networking.VirtualService{}
		default:
			t.Fatalf("document %d: kind %q", i, d.Kind)
		}
		if len(d.Spec) > 0 {
			if err := protojson.Unmarshal(d.Spec, spec); err != nil {
				t.Fatalf("document %d (%s %s): %v", i, d.Kind, d.Metadata.Name, err)
			}
		}
		ns := d.Metadata.Namespace
		if ns == "" {
			ns = "default"
		}
		sum := sha256.Sum256(js)
		out = append(out, &config.Object{
			Meta: config.Meta{
				Kind: config.Kind(d.Kind), APIVersion: "networking.istio.io/v1",
				Name: d.Metadata.Name, Namespace: ns,
				Labels: d.Metadata.Labels, Annotations: d.Metadata.Annotations,
			},
			Spec:    spec,
			Source:  config.Source{File: "test.yaml", Doc: i},
			Version: hex.EncodeToString(sum[:8]),
		})
	}
	return out
}

// render prints services in a compact, complete, deterministic form that a
// reviewer can read:
//
//	HOST NAMESPACE RESOLUTION external|internal [addrs=..] [exportTo=..] src=KIND NS/NAME
//	  port NAME/NUMBER PROTOCOL [->TARGET]
//	  ep ADDRESS ports=NAME:PORT,.. [labels=k=v,..] [tls=..] [sa=..] [net=..] [loc=..] [w=..] [wl=..] [ns=..] src=..
func render(svcs []*model.Service) string {
	var b strings.Builder
	for _, s := range svcs {
		loc := "internal"
		if s.MeshExternal {
			loc = "external"
		}
		fmt.Fprintf(&b, "%s %s %s %s", s.Hostname, s.Namespace, resolutionName(s.Resolution), loc)
		if len(s.Addresses) > 0 {
			fmt.Fprintf(&b, " addrs=%s", strings.Join(s.Addresses, ","))
		}
		if len(s.ExportTo) > 0 {
			fmt.Fprintf(&b, " exportTo=%s", strings.Join(s.ExportTo, ","))
		}
		fmt.Fprintf(&b, " src=%s\n", s.Source)
		for _, p := range s.Ports {
			fmt.Fprintf(&b, "  port %s/%d %s", p.Name, p.Number, p.Protocol)
			if p.TargetPort != 0 {
				fmt.Fprintf(&b, " ->%d", p.TargetPort)
			}
			b.WriteByte('\n')
		}
		for _, e := range s.Endpoints {
			b.WriteString(renderEndpoint(e))
		}
	}
	return b.String()
}

func renderEndpoint(e *model.Endpoint) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  ep %s ports=%s", e.Address, renderUintMap(e.Ports))
	opt := func(k, v string) {
		if v != "" && v != "0" {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	opt("labels", renderStringMap(e.Labels))
	opt("tls", e.TLSMode)
	opt("sa", e.ServiceAccount)
	opt("net", e.Network)
	opt("loc", e.Locality)
	opt("w", fmt.Sprint(e.Weight))
	opt("wl", e.WorkloadName)
	opt("ns", e.Namespace)
	fmt.Fprintf(&b, " src=%s\n", e.Source)
	return b.String()
}

func renderUintMap(m map[string]uint32) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return strings.Join(parts, ",")
}

func renderStringMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// wantErr describes an expected problem: the object, the field path,
// whether it is a warning, and a fragment of the message.
type wantErr struct {
	key     string // "Kind ns/name"
	path    string
	warning bool
	has     string
}

func checkErrors(t *testing.T, got []*config.Error, want []wantErr) {
	t.Helper()
	if len(got) != len(want) {
		for _, e := range got {
			t.Logf("got: %v", e)
		}
		t.Fatalf("got %d problems, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Key.String() != w.key || g.Path != w.path || g.Warning != w.warning || !strings.Contains(g.Message, w.has) {
			t.Errorf("problem %d:\n got  %s | %s | warning=%v | %s\n want %s | %s | warning=%v | …%s…",
				i, g.Key, g.Path, g.Warning, g.Message, w.key, w.path, w.warning, w.has)
		}
	}
}

// dedent strips the common leading tabs of a multi-line literal so that
// expected renderings can be indented in the source.
func dedent(s string) string {
	lines := strings.Split(strings.TrimLeft(s, "\n"), "\n")
	var out []string
	for _, l := range lines {
		out = append(out, strings.TrimLeft(l, "\t"))
	}
	return strings.TrimRight(strings.Join(out, "\n"), " \n") + "\n"
}
