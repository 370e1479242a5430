package http2

import (
	"bytes"
	"testing"
)

// TestDataBuf: bytes come out in order across chunk boundaries, whatever
// the read and write sizes, and the buffer holds no chunk once empty.
func TestDataBuf(t *testing.T) {
	for _, c := range []struct{ write, read int }{{1, 1}, {100, 7}, {chunkSize, chunkSize}, {chunkSize + 3, 5000}, {40000, 100000}} {
		var b dataBuf
		var in, out []byte
		for i := 0; len(in) < 3*chunkSize+17; i++ {
			p := bytes.Repeat([]byte{byte(i)}, c.write)
			in = append(in, p...)
			b.write(p)
			if i%2 == 1 {
				buf := make([]byte, c.read)
				out = append(out, buf[:b.read(buf)]...)
			}
		}
		for b.Len() > 0 {
			buf := make([]byte, c.read)
			out = append(out, buf[:b.read(buf)]...)
		}
		if !bytes.Equal(in, out) {
			t.Fatalf("write %d read %d: %d bytes in, %d out, equal %v", c.write, c.read, len(in), len(out), bytes.Equal(in, out))
		}
		if len(b.chunks) != 0 {
			t.Fatalf("write %d read %d: %d chunks kept by an empty buffer", c.write, c.read, len(b.chunks))
		}
	}
}
