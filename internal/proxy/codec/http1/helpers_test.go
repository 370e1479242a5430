package http1

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

// fakeConn is a net.Conn whose reads return the given segments, one segment
// (or part of it) per Read call, then io.EOF; writes are recorded. It counts
// calls, standing in for system calls.
type fakeConn struct {
	segs   [][]byte
	out    bytes.Buffer
	reads  int
	writes int
}

func (f *fakeConn) Read(p []byte) (int, error) {
	f.reads++
	for len(f.segs) > 0 && len(f.segs[0]) == 0 {
		f.segs = f.segs[1:]
	}
	if len(f.segs) == 0 {
		return 0, io.EOF
	}
	n := copy(p, f.segs[0])
	f.segs[0] = f.segs[0][n:]
	return n, nil
}

func (f *fakeConn) Write(p []byte) (int, error) {
	f.writes++
	return f.out.Write(p)
}

func (f *fakeConn) Close() error                     { return nil }
func (f *fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (f *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (f *fakeConn) SetDeadline(time.Time) error      { return nil }
func (f *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// split says how an input is cut into read segments.
type split int

const (
	whole  split = 0
	byByte split = 1
	by7    split = 7
)

var splits = []split{whole, byByte, by7}

func (s split) String() string {
	switch s {
	case whole:
		return "whole"
	case byByte:
		return "bytewise"
	}
	return "by7"
}

func segments(in string, s split) [][]byte {
	if s == whole {
		return [][]byte{[]byte(in)}
	}
	var out [][]byte
	for len(in) > 0 {
		n := int(s)
		if n > len(in) {
			n = len(in)
		}
		out = append(out, []byte(in[:n]))
		in = in[n:]
	}
	return out
}

func newFake(in string, s split, o Options) (*Conn, *fakeConn) {
	fc := &fakeConn{segs: segments(in, s)}
	return NewConn(fc, o), fc
}

// fieldsString renders a map as "name: value" lines, for comparisons.
func fieldsString(m *headers.Map) string {
	var b strings.Builder
	for _, f := range m.Fields {
		b.Write(f.Name)
		b.WriteString(": ")
		b.Write(f.Value)
		b.WriteString("\n")
	}
	return b.String()
}

// wantError checks that err is an *Error with the given status and details.
func wantError(t *testing.T, err error, status int, details string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want *Error %d %s", err, err, status, details)
	}
	if e.Status != status || e.Details != details {
		t.Fatalf("error = %d %s (%s), want %d %s", e.Status, e.Details, e.Reason, status, details)
	}
}

// nilOr renders a byte slice, distinguishing nil from empty.
func nilOr(b []byte) string {
	if b == nil {
		return "<nil>"
	}
	return string(b)
}
