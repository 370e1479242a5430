package accesslog

import (
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
)

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJSONFormat(t *testing.T) {
	dict := map[string]any{
		"code":     "%RESPONSE_CODE%",
		"method":   "%REQ(:METHOD)%",
		"missing":  "%REQ(x-none)%",
		"mixed":    "%DURATION%ms",
		"flags":    "%RESPONSE_FLAGS%",
		"quote":    "%REQ(x-q)%",
		"nested":   map[string]any{"host": "%UPSTREAM_HOST%", "port": "%UPSTREAM_REMOTE_PORT%"},
		"constant": 3.5,
		"on":       true,
	}
	e := httpEntry()
	e.Req.Add("x-q", "a\"b\\c\n\x01é")
	cases := []struct {
		name             string
		typed, omitEmpty bool
		want             string
	}{
		{"typed", true, false, `{"code":201,"constant":3.5,"flags":"UH,URX","method":"GET","missing":null,"mixed":"25ms",` +
			`"nested":{"host":"10.0.0.3:9080","port":9080},"on":true,"quote":"a\"b\\c\n\u0001é"}` + "\n"},
		{"untyped", false, false, `{"code":"201","constant":3.5,"flags":"UH,URX","method":"GET","missing":"-","mixed":"25ms",` +
			`"nested":{"host":"10.0.0.3:9080","port":"9080"},"on":true,"quote":"a\"b\\c\n\u0001é"}` + "\n"},
		{"omit empty", true, true, `{"code":201,"constant":3.5,"flags":"UH,URX","method":"GET","mixed":"25ms",` +
			`"nested":{"host":"10.0.0.3:9080","port":9080},"on":true,"quote":"a\"b\\c\n\u0001é"}` + "\n"},
	}
	for _, c := range cases {
		f, err := newJSONFormatter(mustStruct(t, dict), "", c.typed, c.omitEmpty)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := f.AppendTo(nil, nil, e)
		if string(out) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, out, c.want)
		}
		var v map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Errorf("%s: output is not JSON: %v", c.name, err)
		}
	}
}

// TestJSONOmitEmptyObject: with omit_empty_values, the first key being
// omitted leaves no stray comma.
func TestJSONOmitEmptyFirst(t *testing.T) {
	f, err := newJSONFormatter(mustStruct(t, map[string]any{"a": "%REQ(x-none)%", "b": "%REQ(:METHOD)%"}), "", true, true)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := f.AppendTo(nil, nil, httpEntry())
	if want := `{"b":"GET"}` + "\n"; string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestJSONErrors(t *testing.T) {
	cases := []struct {
		dict map[string]any
		want string
	}{
		{map[string]any{"a": map[string]any{"b": "%NOPE%"}}, "a.b: position 0: command operator %NOPE%"},
		{map[string]any{"l": []any{"x"}}, "l: only strings"},
		{map[string]any{}, "empty"},
	}
	for _, c := range cases {
		_, err := newJSONFormatter(mustStruct(t, c.dict), "", true, false)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one containing %q", c.dict, err, c.want)
		}
	}
}
