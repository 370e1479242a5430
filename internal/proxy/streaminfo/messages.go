package streaminfo

// MessageCounter counts the gRPC messages of one direction of a stream:
// the length-prefixed frames of the body (a flag byte, a 4-byte big-endian
// length, then that many bytes; gRPC over HTTP/2's Length-Prefixed-Message).
// It follows Envoy's Grpc::FrameInspector, which the grpc_stats filter
// uses for request_message_count and response_message_count and Istio's
// stats plugin for istio_request_messages_total and
// istio_response_messages_total: a message counts as soon as its first
// byte is seen, whatever its flags, so a message cut short still counts.
//
// It keeps a few words of state between calls, so that frames may be split
// anywhere across reads and writes, and neither copies nor allocates.
// The zero value counts nothing until Start; one goroutine at a time may
// call Inspect (the body's reader or the response's writer), and Count is
// read once the stream is complete.
type MessageCounter struct {
	on     bool
	hdr    uint8  // bytes of the current frame's 5-byte prefix seen; 0 at a frame boundary
	length uint32 // the current frame's length, assembled from its prefix
	skip   uint64 // payload bytes of the current frame still to come
	count  uint64
}

// grpcPrefixLen is the length of a gRPC message prefix (flags, length).
const grpcPrefixLen = 5

// Start makes the counter count (the connection manager starts both
// counters of a gRPC request).
func (m *MessageCounter) Start() { m.on = true }

// Counting reports whether Start was called.
func (m *MessageCounter) Counting() bool { return m.on }

// Count returns the messages seen so far.
func (m *MessageCounter) Count() uint64 { return m.count }

// Inspect advances over body bytes p (the next bytes of the direction, in
// order). It does nothing unless the counter was started.
func (m *MessageCounter) Inspect(p []byte) {
	if !m.on {
		return
	}
	for len(p) > 0 {
		if m.skip > 0 {
			if uint64(len(p)) <= m.skip {
				m.skip -= uint64(len(p))
				return
			}
			p = p[m.skip:]
			m.skip = 0
		}
		if m.hdr == 0 { // a frame starts: its flags byte
			m.count++
			m.hdr, m.length = 1, 0
			p = p[1:]
			continue
		}
		m.length = m.length<<8 | uint32(p[0])
		m.hdr++
		p = p[1:]
		if m.hdr == grpcPrefixLen {
			m.skip, m.hdr = uint64(m.length), 0
		}
	}
}
