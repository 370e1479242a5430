package bootstrap

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse: Parse and everything after it must never panic, and a failure
// is always reported as Errors naming the source.
func FuzzParse(f *testing.F) {
	for _, path := range []string{"testdata/front-proxy.yaml", "../../../examples/front-proxy.yaml"} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(base))
	for _, s := range []string{
		"",
		"{}",
		"null",
		"[1, 2]",
		"static_resources: {clusters: [{name: a, lb_policy: 99, connect_timeout: 1e3s}]}",
		`static_resources: {listeners: [{filter_chains: [{filters: [{typed_config: {"@type": x}}]}]}]}`,
		"a: &a [*a, *a]",
		"x: &x {y: 1}\nnode: {<<: *x, id: a}",
		"node: {id: !!binary aGVsbG8=, cluster: 2001-12-14}",
		"static_resources: {clusters: [{name: a, per_connection_buffer_limit_bytes: .inf}]}",
		"? [a]\n: b",
		"{\"node\": {\"id\": \"\\u0000\"}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Parse(data, "fuzz")
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 || errs[0].Source != "fuzz" {
				t.Fatalf("Parse error %T %v is not Errors naming the source", err, err)
			}
			return
		}
		_ = Validate(b)
		_ = CheckSupported(b, "")
		if _, err := ParseAndValidate(data, "fuzz"); err != nil && err.Error() == "" {
			t.Fatal("empty error message")
		}
	})
}
