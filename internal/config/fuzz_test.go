package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeFile: decoding and validating any file never panics; every
// problem says what and where; a valid object validates again cleanly.
func FuzzDecodeFile(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.yaml")
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"apiVersion: v1\nkind: List\nitems: [{apiVersion: networking.istio.io/v1, kind: Sidecar, metadata: {name: a}, spec: {egress: [{hosts: [\"*/*\"]}]}}]\n",
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec: {hosts: [a], http: [{route: [{destination: {host: a}, weight: 2147483647}, {destination: {host: b}, weight: 2147483647}]}]}\n",
		"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec: {host: a, trafficPolicy: {loadBalancer: {consistentHash: {maglev: {tableSize: 18446744073709551615}}}}}\n",
		"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec: {hosts: [a.b], resolution: STATIC, endpoints: [{address: \"unix://@x\"}]}\n",
		"apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a}\nspec: {ingress: [{port: {number: 1}, defaultEndpoint: \"[::1]:99999999999\"}]}\n",
		"{\"apiVersion\": \"networking.istio.io/v1\", \"kind\": \"Gateway\", \"metadata\": {\"name\": \"g\"}, \"spec\": {\"servers\": [{}]}}",
		"apiVersion: networking.weft.dev/v1alpha1\nkind: LocalRateLimit\nmetadata: {name: a}\nspec: {ports: [8080], tokenBucket: {maxTokens: 4294967295, tokensPerFill: 0, fillInterval: 315576000000s}, statusCode: 4294967295, responseHeaders: {\"\": \"\"}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		items, _ := decodeFile("fuzz.yaml", data)
		for _, it := range items {
			for _, e := range it.errs {
				if e.Message == "" || e.Source.File != "fuzz.yaml" {
					t.Fatalf("problem without a message or a file: %+v", e)
				}
			}
			if !it.valid() {
				continue
			}
			for _, e := range Validate(it.obj) {
				if !e.Warning {
					t.Fatalf("a valid object fails validation again: %v", e)
				}
			}
		}
	})
}
