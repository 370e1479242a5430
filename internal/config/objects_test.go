package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
)

// object decodes JSON text as client-go's unstructured decoding does.
func object(t *testing.T, text string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

const (
	objVS = `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService",
	  "metadata":{"name":"reviews","namespace":"shop","uid":"u1","resourceVersion":"7","generation":2,
	    "creationTimestamp":"2026-01-01T00:00:00Z","managedFields":[{"manager":"kubectl"}]},
	  "spec":{"hosts":["reviews"],"http":[{"timeout":"1m30s","route":[{"destination":{"host":"reviews","subset":"v1"}}]}]},
	  "status":{"validationMessages":[]}}`
	objDR = `{"apiVersion":"networking.istio.io/v1beta1","kind":"DestinationRule",
	  "metadata":{"name":"reviews","namespace":"shop"},
	  "spec":{"host":"reviews","subsets":[{"name":"v1","labels":{"version":"v1"}}]}}`
	objBadWeight = `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService",
	  "metadata":{"name":"bad","namespace":"shop"},
	  "spec":{"hosts":["reviews"],"http":[{"route":[{"destination":{"host":"reviews"},"weight":-1}]}]}}`
	objUnknownField = `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService",
	  "metadata":{"name":"typo","namespace":"shop"},
	  "spec":{"hosts":["reviews"],"htp":[]}}`
)

// TestObjectDecoder: objects given as maps (the API server's) decode and
// validate as files do, with field paths; the server-set metadata and
// the status are accepted; the inputs are not modified; the decoding of
// an unchanged revision is reused.
func TestObjectDecoder(t *testing.T) {
	src := Source{File: "kubernetes", Doc: -1}
	vs, dr := object(t, objVS), object(t, objDR)
	pristine := object(t, objVS)
	var d ObjectDecoder
	r := d.Load([]ObjectInput{{Content: vs, Source: src, Revision: "u1/7"}, {Content: dr, Source: src, Revision: "u2/3"}})
	if r.HasErrors() || len(r.Objects) != 2 { // a warning: no ServiceEntry for reviews
		t.Fatalf("objects %d, problems %v", len(r.Objects), r.Errors)
	}
	if !reflect.DeepEqual(vs, pristine) {
		t.Errorf("the input was modified:\n got %v\nwant %v", vs, pristine)
	}
	got := r.Objects[1]
	if got.Key() != (Key{VirtualService, "shop", "reviews"}) || got.Source != src {
		t.Fatalf("object %v from %v", got.Key(), got.Source)
	}
	if d := got.Spec.(*networking.VirtualService).GetHttp()[0].GetTimeout().AsDuration().Seconds(); d != 90 {
		t.Errorf("timeout %vs, want 90 (Go duration)", d)
	}
	// The same revision reuses the decoding, even if the (promised
	// unchanged) content differs; a new revision decodes again.
	vs["spec"].(map[string]any)["hosts"] = []any{"other"}
	drIn := ObjectInput{Content: dr, Source: src, Revision: "u2/3"}
	r = d.Load([]ObjectInput{{Content: vs, Source: src, Revision: "u1/7"}, drIn})
	if h := r.Objects[1].Spec.(*networking.VirtualService).GetHosts(); len(h) != 1 || h[0] != "reviews" {
		t.Errorf("same revision: hosts %v, want the cached [reviews]", h)
	}
	r = d.Load([]ObjectInput{{Content: vs, Source: src, Revision: "u1/8"}, drIn})
	if h := r.Objects[1].Spec.(*networking.VirtualService).GetHosts(); len(h) != 1 || h[0] != "other" {
		t.Errorf("new revision: hosts %v, want [other]", h)
	}
}

// TestObjectDecoderProblems: invalid objects are rejected with their
// field paths, and the cross-object checks run on the set.
func TestObjectDecoderProblems(t *testing.T) {
	src := Source{File: "kubernetes", Doc: -1}
	tests := []struct {
		name     string
		objects  []string
		rejected []Key
		want     []string
	}{
		{"bad weight", []string{objBadWeight}, []Key{{VirtualService, "shop", "bad"}},
			[]string{"kubernetes: VirtualService shop/bad: spec.http[0].route[0].weight: "}},
		{"unknown field", []string{objUnknownField}, []Key{{VirtualService, "shop", "typo"}},
			[]string{"kubernetes: VirtualService shop/typo: spec.htp: unknown field"}},
		{"subset without rule", []string{objVS}, []Key{{VirtualService, "shop", "reviews"}},
			[]string{"kubernetes: VirtualService shop/reviews: spec.http[0].route[0].destination.subset: "}},
		{"subset with rule", []string{objVS, objDR}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in []ObjectInput
			for _, o := range tt.objects {
				in = append(in, ObjectInput{Content: object(t, o), Source: src})
			}
			var d ObjectDecoder
			r := d.Load(in)
			if !reflect.DeepEqual(r.Rejected, tt.rejected) {
				t.Errorf("rejected %v, want %v", r.Rejected, tt.rejected)
			}
			var errs []string
			for _, e := range r.Errors {
				if !e.Warning {
					errs = append(errs, e.Error())
				}
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("errors %q, want prefixes %q", errs, tt.want)
			}
			for i := range errs {
				if !strings.HasPrefix(errs[i], tt.want[i]) {
					t.Errorf("error %q, want prefix %q", errs[i], tt.want[i])
				}
			}
		})
	}
}

// TestDecodeObject: one object, object-local rules only (the webhook's
// view): a subset reference is not checked, a bad field is.
func TestDecodeObject(t *testing.T) {
	src := Source{File: "admission", Doc: -1}
	if obj, ps := DecodeObject(object(t, objVS), src); obj == nil || len(ps) != 0 { // no cross-object warning either
		t.Errorf("valid object: %v %v", obj, ps)
	}
	obj, ps := DecodeObject(object(t, objBadWeight), src)
	if obj != nil || len(ps) == 0 || ps[0].Path != "spec.http[0].route[0].weight" || ps[0].Key != (Key{VirtualService, "shop", "bad"}) {
		t.Fatalf("invalid object: %v %v", obj, ps)
	}
	if s := ps[0].Source.String(); s != "admission" {
		t.Errorf("source %q, want admission (Doc -1: no document)", s)
	}
}

// TestObjectDecoderPlatformHosts: on Kubernetes (PlatformSuffix set), a
// destination that is a cluster Service needs no ServiceEntry, so no
// warning lands in the object's status; another host still gets one.
func TestObjectDecoderPlatformHosts(t *testing.T) {
	src := Source{File: "kubernetes", Doc: -1}
	in := func() []ObjectInput {
		return []ObjectInput{{Content: object(t, objVS), Source: src}, {Content: object(t, objDR), Source: src},
			{Content: object(t, `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService",
			  "metadata":{"name":"ext","namespace":"shop"},
			  "spec":{"hosts":["api.example.com"],"http":[{"route":[{"destination":{"host":"api.example.com"}}]}]}}`), Source: src}}
	}
	warnings := func(d *ObjectDecoder) []string {
		var out []string
		for _, e := range d.Load(in()).Errors {
			if strings.Contains(e.Message, "not defined by any ServiceEntry") {
				out = append(out, e.Key.Name)
			}
		}
		return out
	}
	if got := warnings(&ObjectDecoder{}); !reflect.DeepEqual(got, []string{"ext", "reviews"}) && !reflect.DeepEqual(got, []string{"reviews", "ext"}) {
		t.Errorf("file mode: host warnings for %v, want ext and reviews", got)
	}
	if got := warnings(&ObjectDecoder{Platform: Platform{Suffix: ".svc.cluster.local"}}); !reflect.DeepEqual(got, []string{"ext"}) {
		t.Errorf("Kubernetes: host warnings for %v, want only ext (reviews.shop.svc.cluster.local is a Service)", got)
	}
}

// TestObjectDecoderPlatformLookup: with the cluster's Services to ask
// (Platform.Hosts), a destination naming no Service is reported, one
// naming a Service is not, a port the Service lacks is reported, and
// nothing is reported while the registry cannot say yet.
func TestObjectDecoderPlatformLookup(t *testing.T) {
	src := Source{File: "kubernetes", Doc: -1}
	vs := func(name, host string, port int) ObjectInput {
		dest := fmt.Sprintf(`{"host":%q}`, host)
		if port != 0 {
			dest = fmt.Sprintf(`{"host":%q,"port":{"number":%d}}`, host, port)
		}
		return ObjectInput{Source: src, Content: object(t, fmt.Sprintf(`{"apiVersion":"networking.istio.io/v1","kind":"VirtualService",
		  "metadata":{"name":%q,"namespace":"shop"},"spec":{"hosts":[%q],"http":[{"route":[{"destination":%s}]}]}}`, name, host, dest))}
	}
	in := []ObjectInput{vs("known", "reviews", 0), vs("missing", "ghost", 0), vs("badport", "reviews", 8080)}
	var synced bool
	d := &ObjectDecoder{Platform: Platform{Suffix: ".svc.cluster.local", Hosts: func(host string) ([]*networking.ServicePort, bool, bool) {
		if host == "reviews.shop.svc.cluster.local" {
			return []*networking.ServicePort{{Number: 9080, Name: "http", Protocol: "HTTP"}}, true, synced
		}
		return nil, false, synced
	}}}
	problems := func() map[string]string {
		out := map[string]string{}
		for _, e := range d.Load(in).Errors {
			out[e.Key.Name] = e.Path + ": " + e.Message
		}
		return out
	}
	if got := problems(); len(got) != 0 {
		t.Errorf("before the registry synced: %v, want none", got)
	}
	synced = true
	got := problems()
	if !strings.Contains(got["missing"], "host ghost (ghost.shop.svc.cluster.local) is not a Service of the cluster") ||
		!strings.HasSuffix(strings.SplitN(got["missing"], ":", 2)[0], "destination.host") {
		t.Errorf("missing Service: %q", got["missing"])
	}
	if !strings.Contains(got["badport"], "port 8080 is not a port of reviews.shop.svc.cluster.local (its ports: 9080)") {
		t.Errorf("port the Service lacks: %q", got["badport"])
	}
	if p, ok := got["known"]; ok {
		t.Errorf("known Service reported: %q", p)
	}
}
