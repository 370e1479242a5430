package streaminfo

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// frames returns gRPC messages of the given payload lengths, back to back.
func frames(lengths ...int) []byte {
	var b bytes.Buffer
	for _, n := range lengths {
		var prefix [5]byte
		binary.BigEndian.PutUint32(prefix[1:], uint32(n))
		b.Write(prefix[:])
		b.Write(bytes.Repeat([]byte{'x'}, n))
	}
	return b.Bytes()
}

func TestMessageCounter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		body  []byte
		chunk int // split the body into chunks of this size (0: one call)
		want  uint64
	}{
		{"empty body", nil, 0, 0},
		{"one message", frames(10), 0, 1},
		{"empty message", frames(0), 0, 1},
		{"three messages in one write", frames(3, 0, 70000), 0, 3},
		{"byte by byte", frames(3, 0, 7, 1), 1, 4},
		{"prefix split across reads", frames(300, 2), 3, 2},
		{"large messages in 16 KiB reads", frames(100000, 50000, 1), 16384, 3},
		{"truncated message still counts (Envoy)", frames(10)[:7], 0, 1},
		{"a lone first byte counts", []byte{0}, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m MessageCounter
			m.Start()
			if tc.chunk == 0 {
				m.Inspect(tc.body)
			} else {
				for b := tc.body; len(b) > 0; {
					n := min(tc.chunk, len(b))
					m.Inspect(b[:n])
					b = b[n:]
				}
			}
			if got := m.Count(); got != tc.want {
				t.Errorf("Count() = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestMessageCounterOffUntilStarted(t *testing.T) {
	var m MessageCounter
	m.Inspect(frames(1, 2))
	if m.Count() != 0 || m.Counting() {
		t.Fatalf("counted %d before Start", m.Count())
	}
	var info Info
	info.RequestMessages.Start()
	info.RequestMessages.Inspect(frames(1))
	info.Reset()
	if info.RequestMessages.Counting() || info.RequestMessages.Count() != 0 {
		t.Errorf("Reset left the counter %+v", info.RequestMessages)
	}
}

func FuzzMessageCounter(f *testing.F) {
	f.Add(frames(1, 2, 3), uint8(1))
	f.Add(frames(70000), uint8(200))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0}, uint8(3))
	f.Fuzz(func(t *testing.T, body []byte, chunk uint8) {
		// The count does not depend on how the body is split.
		var whole, split MessageCounter
		whole.Start()
		split.Start()
		whole.Inspect(body)
		c := int(chunk) + 1
		for b := body; len(b) > 0; {
			n := min(c, len(b))
			split.Inspect(b[:n])
			b = b[n:]
		}
		if whole.Count() != split.Count() || whole.Count() > uint64(len(body)) {
			t.Fatalf("whole %d, split by %d: %d (len %d)", whole.Count(), c, split.Count(), len(body))
		}
	})
}

// BenchmarkMessageCounter is the per-write cost on a 16 KiB body chunk of
// 1 KiB messages.
func BenchmarkMessageCounter(b *testing.B) {
	body := frames(1019, 1019, 1019, 1019, 1019, 1019, 1019, 1019, 1019, 1019, 1019, 1019, 1019, 1019, 1019, 1019)
	var m MessageCounter
	m.Start()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		m.Inspect(body)
	}
}
