package tlsinspect

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"testing"
)

// FuzzInspect feeds arbitrary first bytes to both APIs and every chunking
// (inspectAll checks they agree and that no byte is consumed or lost), and
// checks the invariants of a verdict.
func FuzzInspect(f *testing.F) {
	for _, cfg := range []*tls.Config{
		{ServerName: "www.example.com", NextProtos: []string{"h2", "http/1.1"}},
		{ServerName: "api.example.com", MaxVersion: tls.VersionTLS12},
		{InsecureSkipVerify: true},
	} {
		records := captureClientHello(f, cfg)
		f.Add(records)
		f.Add(fragment(handshakeMessage(f, records), 7))
	}
	f.Add([]byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"))
	f.Add([]byte{})
	f.Add([]byte{22, 3, 1, 0, 0})
	f.Add(hello{noExtensions: true}.records())
	f.Add(hello{exts: []ext{sniExt("A.b"), alpnExt("h2"), versionsExt(0x0304)}}.records())
	f.Add(hello{exts: []ext{{extServerName, []byte{0, 4, 1, 0, 1, 'a'}}}}.records())
	f.Add(hello{rawExts: []byte{0, 0, 0, 10, 'a'}}.records())
	f.Add(fragment(hello{exts: []ext{paddingExt(300)}}.message(), 1))

	small, err := New(Options{MaxClientHelloSize: 256})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, in := range []*Inspector{defaultInspector, small} {
			res, err := inspectAll(t, in, data)
			if err != nil {
				if res.IsTLS || res.ServerName != "" || res.ALPN != nil {
					t.Fatalf("error %v with a verdict %+v", err, res)
				}
				continue
			}
			if res.BytesProcessed < 1 || res.BytesProcessed > len(data) || res.BytesProcessed > in.max {
				t.Fatalf("BytesProcessed %d outside [1, min(%d, %d)]", res.BytesProcessed, len(data), in.max)
			}
			if !res.IsTLS && (res.ServerName != "" || res.ALPN != nil) {
				t.Fatalf("raw_buffer verdict with TLS details: %+v", res)
			}
			if res.IsTLS && data[0] != recordTypeHandshake {
				t.Fatalf("tls verdict for first byte %#x", data[0])
			}
			if bytes.ContainsFunc([]byte(res.ServerName), func(r rune) bool { return 'A' <= r && r <= 'Z' }) {
				t.Fatalf("server name %q is not lower-case", res.ServerName)
			}
			for _, p := range res.ALPN {
				if p == "" {
					t.Fatalf("empty ALPN protocol in %q", res.ALPN)
				}
			}
		}
	})
}

func BenchmarkInspect(b *testing.B) {
	inputs := map[string][]byte{
		"tls13-sni-alpn": captureClientHello(b, &tls.Config{ServerName: "www.example.com", NextProtos: []string{"h2", "http/1.1"}}),
		"tls12-sni":      captureClientHello(b, &tls.Config{ServerName: "www.example.com", MaxVersion: tls.VersionTLS12}),
		"plain-http":     []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
	}
	for name, data := range inputs {
		b.Run(name+"/bufio", func(b *testing.B) {
			src := bytes.NewReader(data)
			br := bufio.NewReaderSize(src, DefaultMaxClientHelloSize)
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				src.Reset(data)
				br.Reset(src)
				if _, err := Inspect(br); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/read", func(b *testing.B) {
			src := bytes.NewReader(data)
			buf := make([]byte, 0, DefaultMaxClientHelloSize)
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				src.Reset(data)
				if _, _, err := defaultInspector.ReadClientHello(src, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
