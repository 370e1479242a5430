package e2e

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A minimal WebSocket (RFC 6455) implementation for the tests: the
// handshake and single-frame messages, enough to prove the tunnel carries a
// real protocol in both directions.

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

const (
	wsText   = 1
	wsBinary = 2
	wsClose  = 8
)

// wsWrite writes one final frame; clients mask their frames (RFC 6455 §5.3).
func wsWrite(w io.Writer, opcode byte, payload []byte, mask bool) error {
	var hdr [14]byte
	hdr[0] = 0x80 | opcode
	n := 2
	var m byte
	if mask {
		m = 0x80
	}
	switch l := len(payload); {
	case l < 126:
		hdr[1] = m | byte(l)
	case l <= 0xffff:
		hdr[1] = m | 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(l))
		n = 4
	default:
		hdr[1] = m | 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(l))
		n = 10
	}
	data := payload
	if mask {
		key := [4]byte{0x12, 0x34, 0x56, 0x78}
		copy(hdr[n:], key[:])
		n += 4
		data = make([]byte, len(payload))
		for i := range payload {
			data[i] = payload[i] ^ key[i%4]
		}
	}
	if _, err := w.Write(hdr[:n]); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// wsRead reads one frame and unmasks it.
func wsRead(r io.Reader) (opcode byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 {
		return 0, nil, errors.New("fragmented frame")
	}
	l := uint64(h[1] & 0x7f)
	switch l {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		l = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		l = binary.BigEndian.Uint64(b[:])
	}
	var key [4]byte
	masked := h[1]&0x80 != 0
	if masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return 0, nil, err
		}
	}
	if l > 16<<20 {
		return 0, nil, fmt.Errorf("frame of %d bytes", l)
	}
	payload = make([]byte, l)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	if masked {
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	return h[0] & 0x0f, payload, nil
}

// wsEchoUpstream performs the server handshake by hand (Hijack) and echoes
// every message until a close frame, which it answers before closing. It
// counts the requests it received.
func wsEchoUpstream(t *testing.T, requests *atomic.Int64) string {
	return StartHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") ||
			!strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
			w.Header().Set("x-plain", "1")
			io.WriteString(w, "plain response")
			return
		}
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: %s\r\nX-Upstream-Path: %s\r\n\r\n", wsAccept(r.Header.Get("Sec-WebSocket-Key")), r.URL.Path)
		brw.Flush()
		for {
			op, msg, err := wsRead(brw)
			if err != nil {
				return
			}
			if op == wsClose {
				wsWrite(c, wsClose, msg, false)
				return
			}
			if wsWrite(c, op, append([]byte("echo:"), msg...), false) != nil {
				return
			}
		}
	}))
}

const wsHandshake = "GET %s HTTP/1.1\r\nHost: ws.example\r\nUpgrade: %s\r\nConnection: keep-alive, Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// TestWebSocketTunnel upgrades through the proxy (upgrade_configs
// websocket) and exchanges messages both ways, including one sent before
// the 101 arrived and one of 300 KiB, then closes cleanly.
func TestWebSocketTunnel(t *testing.T) {
	var reqs atomic.Int64
	p := startFront(t, front{
		HCM:      "upgrade_configs: [{upgrade_type: websocket}]",
		Clusters: map[string]string{"backend": wsEchoUpstream(t, &reqs)},
	})
	rc := dialRaw(t, p.Addr("front"))
	var early bytes.Buffer
	wsWrite(&early, wsText, []byte("early"), true)
	rc.send(fmt.Sprintf(wsHandshake, "/chat", "WebSocket") + early.String())
	resp, _ := rc.response("GET")
	if resp.StatusCode != 101 {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != wsAccept("dGhlIHNhbXBsZSBub25jZQ==") {
		t.Errorf("Sec-WebSocket-Accept %q", got)
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") || !strings.EqualFold(resp.Header.Get("Connection"), "upgrade") {
		t.Errorf("101 without upgrade headers: %v", resp.Header)
	}
	if resp.Header.Get("X-Upstream-Path") != "/chat" {
		t.Errorf("upstream path %q", resp.Header.Get("X-Upstream-Path"))
	}
	expect := func(want string) {
		t.Helper()
		op, msg, err := wsRead(rc.br)
		if err != nil || string(msg) != want {
			t.Fatalf("read %q (op %d): %v; want %q", wsShort(msg), op, err, wsShort([]byte(want)))
		}
	}
	expect("echo:early")
	for _, m := range []string{"hello", strings.Repeat("w", 300<<10), "bye"} {
		if err := wsWrite(rc.c, wsText, []byte(m), true); err != nil {
			t.Fatal(err)
		}
		expect("echo:" + m)
	}
	wsWrite(rc.c, wsClose, []byte{0x03, 0xe8}, true)
	if op, _, err := wsRead(rc.br); err != nil || op != wsClose {
		t.Fatalf("close handshake: op %d %v", op, err)
	}
	rc.expectClosed(5 * time.Second)
	rc.c.Close() // a WebSocket client closes its end after the server's
	if info := p.NextStream(0); info.ResponseCode != 101 {
		t.Errorf("stream recorded %d, want 101", info.ResponseCode)
	}
	if reqs.Load() != 1 {
		t.Errorf("upstream got %d requests", reqs.Load())
	}
}

func wsShort(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%s...(%d bytes)", b[:40], len(b))
	}
	return string(b)
}

// TestWebSocketUpgradeRefused checks the cases where Envoy refuses an
// upgrade with 403 (upgrade_failed) without contacting the upstream: no
// upgrade_configs, a route that disables it; and that a route can enable it
// on its own, and a plain answer to an upgrade request passes through.
func TestWebSocketUpgradeRefused(t *testing.T) {
	var reqs atomic.Int64
	up := wsEchoUpstream(t, &reqs)
	routes := `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: {prefix: /off}
    route: {cluster: backend, upgrade_configs: [{upgrade_type: websocket, enabled: false}]}
  - match: {prefix: /on}
    route: {cluster: backend, upgrade_configs: [{upgrade_type: websocket}]}
  - match: {prefix: /}
    route: {cluster: backend}
`
	cases := []struct {
		name, hcm, path, upgrade string
		status                   int
	}{
		{"not-configured", "", "/x", "websocket", 403},
		{"other-protocol", "upgrade_configs: [{upgrade_type: websocket}]", "/x", "foo", 403},
		{"route-disables", "upgrade_configs: [{upgrade_type: websocket}]", "/off", "websocket", 403},
		{"hcm-disabled", "upgrade_configs: [{upgrade_type: websocket, enabled: false}]", "/x", "websocket", 403},
		{"route-enables", "", "/on", "websocket", 101},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reqs.Store(0)
			p := startFront(t, front{HCM: c.hcm, Routes: routes, Clusters: map[string]string{"backend": up}})
			rc := dialRaw(t, p.Addr("front"))
			rc.send(fmt.Sprintf(wsHandshake, c.path, c.upgrade))
			resp, _ := rc.response("GET")
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if c.status == 101 {
				wsWrite(rc.c, wsText, []byte("x"), true)
				if _, msg, err := wsRead(rc.br); err != nil || string(msg) != "echo:x" {
					t.Fatalf("tunnel: %q %v", msg, err)
				}
				return
			}
			if reqs.Load() != 0 {
				t.Errorf("a refused upgrade reached the upstream")
			}
			if info := p.NextStream(0); info.Details != "upgrade_failed" {
				t.Errorf("details %q, want upgrade_failed", info.Details)
			}
			if got := p.Stat("http.front.downstream_rq_ws_on_non_ws_route"); got != 1 {
				t.Errorf("http.front.downstream_rq_ws_on_non_ws_route = %d, want 1", got)
			}
		})
	}
	t.Run("plain-answer", func(t *testing.T) {
		p := startFront(t, front{HCM: "upgrade_configs: [{upgrade_type: foo}]", Clusters: map[string]string{"backend": up}})
		rc := dialRaw(t, p.Addr("front"))
		rc.send(fmt.Sprintf(wsHandshake, "/plain", "foo"))
		resp, body := rc.response("GET")
		if resp.StatusCode != 200 || body != "plain response" || resp.Header.Get("x-plain") != "1" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	})
}

// TestWebSocketIdleTunnelCloses checks that stream_idle_timeout applies to
// an upgraded connection, as in Envoy: a tunnel that carries nothing for
// that long is closed on both sides, so a client that goes silent cannot
// keep a tunnel (and its upstream connection) forever.
func TestWebSocketIdleTunnelCloses(t *testing.T) {
	var reqs atomic.Int64
	p := startFront(t, front{
		HCM:      "upgrade_configs: [{upgrade_type: websocket}]\nstream_idle_timeout: 0.3s",
		Clusters: map[string]string{"backend": wsEchoUpstream(t, &reqs)},
	})
	rc := dialRaw(t, p.Addr("front"))
	rc.send(fmt.Sprintf(wsHandshake, "/idle", "websocket"))
	if resp, _ := rc.response("GET"); resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	wsWrite(rc.c, wsText, []byte("x"), true)
	if _, msg, err := wsRead(rc.br); err != nil || string(msg) != "echo:x" {
		t.Fatalf("tunnel: %q %v", msg, err)
	}
	// Now silent. The upstream's own deadline is 10 s; the proxy must act
	// first.
	start := time.Now()
	rc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := rc.br.ReadByte()
	if isTimeoutErr(err) {
		// BUG(routerfilter): routerfilter/http1.go tunnel() clears every
		// deadline (and hcm's Hijack does too) and copies without an idle
		// timeout, so an idle WebSocket tunnel lives forever; Envoy applies
		// stream_idle_timeout (or the route's idle_timeout) to it.
		t.Errorf("idle tunnel still open after %v; stream_idle_timeout is 0.3s", time.Since(start).Round(time.Millisecond))
	}
}
