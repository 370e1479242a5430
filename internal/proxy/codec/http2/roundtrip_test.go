package http2

import (
	"bytes"
	"testing"
)

func TestRoundTripOwnClientAndServer(t *testing.T) {
	ts := startServer(t, ServerOptions{Handler: handlerFunc(echoHandler)})
	cc := dialClient(t, ts.addr, ClientOptions{})
	for _, n := range []int{0, 1, 100, 16 << 10, 70000, 3 << 20} {
		body := bytes.Repeat([]byte{'a' + byte(n%26)}, n)
		resp, got, tr, err := roundTrip(cc, newRequest("POST", "/echo"), body)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if resp.Status != 200 || !bytes.Equal(got, body) {
			t.Fatalf("%d bytes: status %d, %d bytes back", n, resp.Status, len(got))
		}
		if string(tr.Get("x-len")) != itoa(n) {
			t.Fatalf("%d bytes: trailer x-len %q", n, tr.Get("x-len"))
		}
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
