package protoyaml

import (
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// FuzzDecode: splitting and decoding never panic; every problem says
// something; a document that decodes survives a protojson round trip.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"",
		"hosts: [a]\nhttp:\n- route: [{destination: {host: a, subset: v1}, weight: 90}]\n  timeout: 1m30s\n",
		"a: 1\n---\nb: [\n---\nc: 3\n",
		"%YAML 1.1\n---\nhosts: [a]\n...\n",
		"{\"hosts\": [\"a\"], \"http\": [{\"timeout\": \"2m\"}]}",
		"http:\n- match: [{headers: {x: {regex: '^a'}}, uri: {prefix: /}}]\n",
		"x: &x {y: 1}\ntcp: [{<<: *x}]\n",
		"a: &a [*a]\n",
		"hosts: !!binary aGVsbG8=\nexportTo: [2024-01-01]\n",
		"? [a]\n: b\n",
		"http: [{timeout: -9223372036854775808s}]\n",
		"http: [{timeout: 2562047h}]\n",
		"http: [{fault: {abort: {percentage: {value: .nan}}}}]\n",
		"--- |\n  text\n--- >\n  folded\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, doc := range Split(data) {
			if doc.Err != nil && doc.Err.Error() == "" {
				t.Fatal("empty syntax error")
			}
			for _, m := range []proto.Message{&networking.VirtualService{}, &networking.DestinationRule{}} {
				ps := istio.Decode(doc, m)
				for _, p := range ps {
					if p.Reason == "" {
						t.Fatalf("problem without a reason at %q", p.Path)
					}
				}
				if ps != nil {
					continue
				}
				out, err := protojson.Marshal(m)
				if err != nil {
					t.Fatalf("marshal decoded message: %v", err)
				}
				again := m.ProtoReflect().New().Interface()
				if err := protojson.Unmarshal(out, again); err != nil || !proto.Equal(m, again) {
					t.Fatalf("round trip: %v\n%s", err, out)
				}
			}
		}
	})
}
