package tlsinspect

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// readers deliver the same bytes in different chunkings: all at once, one
// byte per Read, half of what was asked per Read.
var readers = map[string]func([]byte) io.Reader{
	"whole":   func(b []byte) io.Reader { return bytes.NewReader(b) },
	"onebyte": func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
	"half":    func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
}

// errClass reduces an error to what a caller acts on.
func errClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, ErrClientHelloTooLarge):
		return "too-large"
	case errors.Is(err, io.EOF):
		return "eof"
	default:
		return "other: " + err.Error()
	}
}

// inspectAll runs Inspect and ReadClientHello over every chunking of data,
// checks that all of them agree and that no byte is lost, and returns the
// common outcome.
func inspectAll(tb testing.TB, in *Inspector, data []byte) (Result, error) {
	tb.Helper()
	var first *Result
	var firstErr error
	for name, mk := range readers {
		br := bufio.NewReaderSize(mk(data), in.BufferSize())
		res, err := in.Inspect(br)
		rest, _ := io.ReadAll(br)
		if !bytes.Equal(rest, data) {
			tb.Fatalf("%s: Inspect consumed bytes: %d left of %d", name, len(rest), len(data))
		}
		res2, got, err2 := in.ReadClientHello(mk(data), nil)
		if !bytes.HasPrefix(data, got) {
			tb.Fatalf("%s: ReadClientHello returned %d bytes that are not a prefix of the input", name, len(got))
		}
		if err2 == nil && len(got) < res2.BytesProcessed {
			tb.Fatalf("%s: ReadClientHello returned %d bytes, fewer than BytesProcessed %d", name, len(got), res2.BytesProcessed)
		}
		if !reflect.DeepEqual(res, res2) || errClass(err) != errClass(err2) {
			tb.Fatalf("%s: Inspect = %+v, %v; ReadClientHello = %+v, %v", name, res, err, res2, err2)
		}
		if first == nil {
			first, firstErr = &res, err
		} else if !reflect.DeepEqual(*first, res) || errClass(firstErr) != errClass(err) {
			tb.Fatalf("%s: chunking changed the outcome: %+v, %v vs %+v, %v", name, res, err, *first, firstErr)
		}
	}
	return *first, firstErr
}

func TestInspectCryptoTLSClients(t *testing.T) {
	tests := []struct {
		name     string
		cfg      *tls.Config
		wantSNI  string
		wantALPN []string
	}{
		{"tls13 sni alpn", &tls.Config{ServerName: "www.example.com", NextProtos: []string{"h2", "http/1.1"}},
			"www.example.com", []string{"h2", "http/1.1"}},
		{"tls12 sni no alpn", &tls.Config{ServerName: "api.example.com", MaxVersion: tls.VersionTLS12},
			"api.example.com", nil},
		{"tls12 alpn no sni", &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, NextProtos: []string{"h2"}},
			"", []string{"h2"}},
		{"tls13 no sni no alpn", &tls.Config{InsecureSkipVerify: true}, "", nil},
		{"ip literal sends no sni", &tls.Config{ServerName: "127.0.0.1"}, "", nil},
		{"upper-case sni is lowered", &tls.Config{ServerName: "WWW.Example.COM"}, "www.example.com", nil},
		{"tls10 only", &tls.Config{ServerName: "old.example.com", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10},
			"old.example.com", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			records := captureClientHello(t, tt.cfg)
			msg := handshakeMessage(t, records)
			for _, split := range [][]int{nil, {1}, {3, 100}, {7}, {len(msg) - 1}} {
				data := records
				if split != nil {
					data = fragment(msg, split...)
				}
				res, err := inspectAll(t, defaultInspector, data)
				if err != nil {
					t.Fatalf("split %v: %v", split, err)
				}
				if !res.IsTLS || res.TransportProtocol() != TransportTLS || res.ServerName != tt.wantSNI ||
					!reflect.DeepEqual(res.ALPN, tt.wantALPN) || res.BytesProcessed != len(data) {
					t.Fatalf("split %v: got %+v (%s), want tls sni=%q alpn=%q processed=%d",
						split, res, res.TransportProtocol(), tt.wantSNI, tt.wantALPN, len(data))
				}
			}
		})
	}
}

func TestInspectCrafted(t *testing.T) {
	longName := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63)
	tests := []struct {
		name     string
		data     []byte
		wantTLS  bool
		wantSNI  string
		wantALPN []string
	}{
		{"plain http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false, "", nil},
		{"http2 preface", []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), false, "", nil},
		{"tls alert record first", []byte{21, 3, 3, 0, 2, 2, 40}, false, "", nil},
		{"minimal hello, no extensions", hello{noExtensions: true}.records(), true, "", nil},
		{"empty extensions block", hello{}.records(), true, "", nil},
		{"sni and alpn", hello{exts: []ext{sniExt("Foo.Example.com"), alpnExt("h2", "http/1.1")}}.records(),
			true, "foo.example.com", []string{"h2", "http/1.1"}},
		{"255-byte sni", hello{exts: []ext{sniExt(longName)}}.records(), true, longName, nil},
		{"non-ascii sni bytes kept", hello{exts: []ext{sniExt("X\xc3\x9f.Example")}}.records(), true, "x\xc3\x9f.example", nil},
		{"malformed alpn is still tls", hello{exts: []ext{{extALPN, []byte{0, 3, 0, 1, 'x'}}}}.records(), true, "", nil},
		{"alpn with empty name is still tls", hello{exts: []ext{alpnExt("h2", "")}}.records(), true, "", nil},
		{"tls13 via supported_versions", hello{exts: []ext{versionsExt(0x0a0a, 0x0304)}}.records(), true, "", nil},
		{"32 empty records then hello", append(bytes.Repeat([]byte{22, 3, 1, 0, 0}, 32), hello{}.records()...), true, "", nil},
		// A ClientHello body over BoringSSL's 16 KiB message limit is a TLS
		// error (raw_buffer) as soon as its header is seen.
		{"body over 16 KiB", fragment(hello{exts: []ext{paddingExt(16384)}}.message(), 100)[:200], false, "", nil},
		{"wrong handshake type", fragment(append([]byte{2}, hello{}.message()[1:]...)), false, "", nil},
		{"record major version 2", func() []byte { b := hello{}.records(); b[1] = 2; return b }(), false, "", nil},
		{"record longer than 18432", []byte{22, 3, 1, 0x48, 0x01}, false, "", nil},
		{"session id of 33 bytes", hello{sessionIDLen: 33}.records(), false, "", nil},
		{"odd cipher suites", hello{suites: []byte{0x13, 0x01, 0xc0}}.records(), false, "", nil},
		{"no cipher suites", hello{suites: []byte{}}.records(), false, "", nil},
		{"no compression methods", hello{compression: []byte{}}.records(), false, "", nil},
		{"bytes after extensions", hello{trailing: []byte{0}}.records(), false, "", nil},
		{"extension longer than its block", hello{rawExts: []byte{0, 0, 0, 10, 'a'}}.records(), false, "", nil},
		{"extension block cut short", hello{rawExts: []byte{0, 0}}.records(), false, "", nil},
		{"duplicate extension", hello{exts: []ext{alpnExt("h2"), alpnExt("h2")}}.records(), false, "", nil},
		{"sni with two names", hello{exts: []ext{{extServerName, []byte{0, 8, 0, 0, 1, 'a', 0, 0, 1, 'b'}}}}.records(), false, "", nil},
		{"sni of unknown type", hello{exts: []ext{{extServerName, []byte{0, 4, 1, 0, 1, 'a'}}}}.records(), false, "", nil},
		{"empty sni", hello{exts: []ext{sniExt("")}}.records(), false, "", nil},
		{"sni with nul", hello{exts: []ext{sniExt("a\x00b")}}.records(), false, "", nil},
		{"256-byte sni", hello{exts: []ext{sniExt(longName + "e")}}.records(), false, "", nil},
		{"sslv3 client", hello{version: 0x0300}.records(), false, "", nil},
		{"supported_versions without tls", hello{exts: []ext{versionsExt(0x0300, 0x7f1c)}}.records(), false, "", nil},
		{"empty supported_versions", hello{exts: []ext{versionsExt()}}.records(), false, "", nil},
		{"alert between fragments", append(fragment(hello{}.message(), 10)[:15], 21, 3, 3, 0, 2, 2, 40), false, "", nil},
		{"33 empty records", append(bytes.Repeat([]byte{22, 3, 1, 0, 0}, 33), hello{}.records()...), false, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := inspectAll(t, defaultInspector, tt.data)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if res.IsTLS != tt.wantTLS || res.ServerName != tt.wantSNI || !reflect.DeepEqual(res.ALPN, tt.wantALPN) {
				t.Fatalf("got %+v, want tls=%v sni=%q alpn=%q", res, tt.wantTLS, tt.wantSNI, tt.wantALPN)
			}
			if res.BytesProcessed < 1 || res.BytesProcessed > len(tt.data) {
				t.Fatalf("BytesProcessed %d outside [1, %d]", res.BytesProcessed, len(tt.data))
			}
		})
	}
}

func TestInspectDecidesOnFirstByte(t *testing.T) {
	res, err := inspectAll(t, defaultInspector, []byte("G"))
	if err != nil || res.IsTLS || res.BytesProcessed != 1 {
		t.Fatalf("got %+v, %v; want raw_buffer after 1 byte", res, err)
	}
}

func TestInspectIncomplete(t *testing.T) {
	records := captureClientHello(t, &tls.Config{ServerName: "a.example"})
	for _, n := range []int{0, 1, 4, 5, 6, len(records) / 2, len(records) - 1} {
		_, err := inspectAll(t, defaultInspector, records[:n])
		if !errors.Is(err, io.EOF) {
			t.Fatalf("%d of %d bytes: err = %v, want io.EOF", n, len(records), err)
		}
	}
}

func TestInspectClientHelloSizeLimit(t *testing.T) {
	// The limit counts record headers too. Build a ClientHello whose bytes,
	// in records of at most 16384 bytes, total exactly the limit.
	base := len(hello{exts: []ext{paddingExt(0)}}.message())
	body := DefaultMaxClientHelloSize - 2*recordHeaderLen // two records
	exact := fragment(hello{exts: []ext{paddingExt(body - base)}}.message(), 16000)
	if len(exact) != DefaultMaxClientHelloSize {
		t.Fatalf("test setup: built %d bytes, want %d", len(exact), DefaultMaxClientHelloSize)
	}
	res, err := inspectAll(t, defaultInspector, exact)
	if err != nil || !res.IsTLS || res.BytesProcessed != DefaultMaxClientHelloSize {
		t.Fatalf("at the limit: got %+v, %v; want tls", res, err)
	}

	over := fragment(hello{exts: []ext{paddingExt(body - base + 1)}}.message(), 16000)
	if _, err := inspectAll(t, defaultInspector, over); !errors.Is(err, ErrClientHelloTooLarge) {
		t.Fatalf("one byte over the limit: err = %v, want ErrClientHelloTooLarge", err)
	}

	small, err := New(Options{MaxClientHelloSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	goHello := captureClientHello(t, &tls.Config{ServerName: "a.example"})
	if _, err := inspectAll(t, small, goHello); !errors.Is(err, ErrClientHelloTooLarge) {
		t.Fatalf("%d-byte hello with a 512-byte limit: err = %v, want ErrClientHelloTooLarge", len(goHello), err)
	}
	if _, err := inspectAll(t, small, []byte("GET / HTTP/1.1\r\n")); err != nil {
		t.Fatalf("plain text with a small limit: %v", err)
	}
}

func TestNewOptions(t *testing.T) {
	tests := []struct {
		max     int
		wantErr bool
		wantBuf int
	}{
		{0, false, DefaultMaxClientHelloSize},
		{1, false, 1},
		{DefaultMaxClientHelloSize, false, DefaultMaxClientHelloSize},
		{DefaultMaxClientHelloSize + 1, true, 0},
		{-1, true, 0},
	}
	for _, tt := range tests {
		in, err := New(Options{MaxClientHelloSize: tt.max})
		if (err != nil) != tt.wantErr {
			t.Fatalf("New(%d) error = %v, want error %v", tt.max, err, tt.wantErr)
		}
		if err == nil && in.BufferSize() != tt.wantBuf {
			t.Fatalf("New(%d).BufferSize() = %d, want %d", tt.max, in.BufferSize(), tt.wantBuf)
		}
	}
}

func TestInspectRejectsSmallBuffer(t *testing.T) {
	br := bufio.NewReaderSize(bytes.NewReader([]byte("GET /")), 4096)
	if _, err := Inspect(br); err == nil || !strings.Contains(err.Error(), "NewReaderSize") {
		t.Fatalf("err = %v, want an error telling how to size the reader", err)
	}
}

func TestReadClientHelloReusesBuffer(t *testing.T) {
	records := captureClientHello(t, &tls.Config{ServerName: "a.example"})
	buf := make([]byte, 0, DefaultMaxClientHelloSize)
	res, got, err := defaultInspector.ReadClientHello(bytes.NewReader(records), buf)
	if err != nil || !res.IsTLS {
		t.Fatalf("got %+v, %v", res, err)
	}
	if &got[0] != &buf[:1][0] {
		t.Fatal("ReadClientHello allocated although buf had room")
	}
}
