package bootstrap

import (
	"os"
	"testing"
)

// Not a hot path (once per start-up or xDS push); measured so a regression
// in the walkers is visible.
func BenchmarkParseAndValidate(b *testing.B) {
	data, err := os.ReadFile("testdata/front-proxy.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseAndValidate(data, "front-proxy.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckSupportedListener(b *testing.B) {
	bs, err := Load("testdata/front-proxy.yaml")
	if err != nil {
		b.Fatal(err)
	}
	l := bs.GetStaticResources().GetListeners()[0]
	b.ReportAllocs()
	for b.Loop() {
		if errs := CheckSupported(l, `listener "http"`); errs != nil {
			b.Fatal(errs)
		}
	}
}
