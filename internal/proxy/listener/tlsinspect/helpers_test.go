package tlsinspect

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// captureClientHello runs a real crypto/tls client handshake over net.Pipe
// and returns the bytes of its first flight (the ClientHello record(s)).
// The server side only frames records; it does not parse the ClientHello.
func captureClientHello(tb testing.TB, cfg *tls.Config) []byte {
	tb.Helper()
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tls.Client(client, cfg).Handshake() // fails once the server side closes
	}()
	defer func() {
		server.Close()
		client.Close()
		<-done
	}()
	if err := server.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		tb.Fatal(err)
	}
	var out []byte
	have, want := 0, -1 // handshake bytes read, and the ClientHello size once known
	for want < 0 || have < want {
		hdr := make([]byte, recordHeaderLen)
		if _, err := io.ReadFull(server, hdr); err != nil {
			tb.Fatalf("reading record header: %v", err)
		}
		body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
		if _, err := io.ReadFull(server, body); err != nil {
			tb.Fatalf("reading record body: %v", err)
		}
		out = append(append(out, hdr...), body...)
		if want < 0 && len(body) >= handshakeHeaderLen {
			want = handshakeHeaderLen + (int(body[1])<<16 | int(body[2])<<8 | int(body[3]))
		}
		have += len(body)
	}
	return out
}

// handshakeMessage extracts the ClientHello handshake message (with its
// 4-byte header) from the records of a first flight.
func handshakeMessage(tb testing.TB, records []byte) []byte {
	tb.Helper()
	var msg []byte
	for off := 0; off < len(records); {
		n := int(records[off+3])<<8 | int(records[off+4])
		msg = append(msg, records[off+recordHeaderLen:off+recordHeaderLen+n]...)
		off += recordHeaderLen + n
	}
	return msg
}

// fragment wraps a handshake message into handshake records whose payloads
// have the given sizes in turn (the last size repeats; 0 means one record).
func fragment(msg []byte, sizes ...int) []byte {
	var out []byte
	for i := 0; len(msg) > 0; i++ {
		n := len(msg)
		if len(sizes) > 0 {
			n = min(sizes[min(i, len(sizes)-1)], len(msg))
		}
		if n == 0 {
			n = len(msg)
		}
		out = append(out, recordTypeHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

// ext is one extension of a crafted ClientHello.
type ext struct {
	typ  uint16
	data []byte
}

// hello describes a crafted ClientHello; the zero value plus defaults() is
// a minimal valid TLS 1.2 ClientHello.
type hello struct {
	version      uint16
	sessionIDLen int
	suites       []byte
	compression  []byte
	noExtensions bool
	exts         []ext
	rawExts      []byte // when set, the extensions block content, as is
	trailing     []byte // bytes after the extensions block
}

func (h hello) defaults() hello {
	if h.version == 0 {
		h.version = 0x0303
	}
	if h.suites == nil {
		h.suites = []byte{0x13, 0x01, 0xc0, 0x2f}
	}
	if h.compression == nil {
		h.compression = []byte{0}
	}
	return h
}

// message returns the handshake message (header included).
func (h hello) message() []byte {
	h = h.defaults()
	var b cryptobyte.Builder
	b.AddUint8(handshakeTypeClientHello)
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16(h.version)
		b.AddBytes(make([]byte, 32))
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(make([]byte, h.sessionIDLen)) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(h.suites) })
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(h.compression) })
		if !h.noExtensions {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				b.AddBytes(h.rawExts)
				for _, e := range h.exts {
					b.AddUint16(e.typ)
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.data) })
				}
			})
		}
		b.AddBytes(h.trailing)
	})
	return b.BytesOrPanic()
}

// records returns the hello in one handshake record.
func (h hello) records() []byte { return fragment(h.message()) }

func sniExt(name string) ext {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint8(sniHostNameType)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(name)) })
	})
	return ext{extServerName, b.BytesOrPanic()}
}

func alpnExt(protos ...string) ext {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, p := range protos {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(p)) })
		}
	})
	return ext{extALPN, b.BytesOrPanic()}
}

func versionsExt(vs ...uint16) ext {
	var b cryptobyte.Builder
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, v := range vs {
			b.AddUint16(v)
		}
	})
	return ext{extSupportedVersions, b.BytesOrPanic()}
}

// paddingExt is an RFC 7685 padding extension of n zero bytes.
func paddingExt(n int) ext { return ext{21, make([]byte, n)} }

// selfSignedCert returns a throw-away certificate for name.
func selfSignedCert(tb testing.TB, name string) tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
