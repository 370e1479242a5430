// Package headers holds the proxy's header representation, shared by the
// codecs, the HTTP filters and the router.
//
// A Map is an ordered list of fields whose names are lower case, as in
// HTTP/2 and as Envoy normalises HTTP/1 names. Field bytes are read-only
// views: a codec may point them into its own buffers, so code that changes a
// header replaces the field (Set, Add) instead of writing into its bytes.
// Bytes copied in by Add and Set live in the map's arena, which Reset keeps for
// reuse, so a map reused across requests stops allocating once it has grown.
//
// A Map is not safe for concurrent use; it belongs to one stream.
package headers

import "bytes"

// Field is one header field. Name is lower case.
type Field struct {
	Name  []byte
	Value []byte
}

// Map is an ordered multimap of header fields. The zero value is empty and
// ready to use.
type Map struct {
	Fields []Field
	arena  []byte
}

// Reset empties the map and keeps its storage for reuse.
func (m *Map) Reset() {
	clear(m.Fields) // drop references to old buffers for the GC
	m.Fields = m.Fields[:0]
	m.arena = m.arena[:0]
}

// Len returns the number of fields.
func (m *Map) Len() int { return len(m.Fields) }

// Get returns the value of the first field named name (lower case), or nil.
func (m *Map) Get(name string) []byte {
	for i := range m.Fields {
		if string(m.Fields[i].Name) == name {
			return m.Fields[i].Value
		}
	}
	return nil
}

// Lookup is Get that also says whether the field is present (an empty value
// is present).
func (m *Map) Lookup(name string) ([]byte, bool) {
	for i := range m.Fields {
		if string(m.Fields[i].Name) == name {
			return m.Fields[i].Value, true
		}
	}
	return nil, false
}

// Has reports whether a field named name is present.
func (m *Map) Has(name string) bool {
	_, ok := m.Lookup(name)
	return ok
}

// Index returns the index of the first field named name at or after from,
// or -1. It lets callers visit every value of a repeated header without
// allocating.
func (m *Map) Index(name string, from int) int {
	for i := from; i < len(m.Fields); i++ {
		if string(m.Fields[i].Name) == name {
			return i
		}
	}
	return -1
}

// Count returns how many fields are named name.
func (m *Map) Count(name string) int {
	n := 0
	for i := range m.Fields {
		if string(m.Fields[i].Name) == name {
			n++
		}
	}
	return n
}

// Del removes every field named name and returns how many it removed. The
// order of the remaining fields is kept.
func (m *Map) Del(name string) int {
	j := 0
	for i := range m.Fields {
		if string(m.Fields[i].Name) == name {
			continue
		}
		m.Fields[j] = m.Fields[i]
		j++
	}
	n := len(m.Fields) - j
	clear(m.Fields[j:])
	m.Fields = m.Fields[:j]
	return n
}

// Add appends a field, copying name (lowered) and value into the arena.
func (m *Map) Add(name, value string) {
	n := m.copyLower(name)
	v := m.copyString(value)
	m.Fields = append(m.Fields, Field{Name: n, Value: v})
}

// AddBytes is Add for byte slices; both are copied.
func (m *Map) AddBytes(name, value []byte) {
	n := m.copyLowerBytes(name)
	v := m.copyBytes(value)
	m.Fields = append(m.Fields, Field{Name: n, Value: v})
}

// AddRef appends a field without copying. The caller guarantees that name is
// lower case and that neither slice changes while the map uses them (for
// example both point into a codec buffer that outlives the stream, or into
// static data).
func (m *Map) AddRef(name, value []byte) {
	m.Fields = append(m.Fields, Field{Name: name, Value: value})
}

// Set replaces every field named name by one field with value. The new field
// takes the place of the first one removed, or goes last.
func (m *Map) Set(name, value string) {
	m.setField(name, m.copyString(value))
}

// SetBytes is Set with a byte-slice value, which is copied.
func (m *Map) SetBytes(name string, value []byte) {
	m.setField(name, m.copyBytes(value))
}

func (m *Map) setField(name string, v []byte) {
	for i := range m.Fields {
		if string(m.Fields[i].Name) != name {
			continue
		}
		m.Fields[i].Value = v
		// remove later duplicates
		j := i + 1
		for k := i + 1; k < len(m.Fields); k++ {
			if string(m.Fields[k].Name) == name {
				continue
			}
			m.Fields[j] = m.Fields[k]
			j++
		}
		clear(m.Fields[j:])
		m.Fields = m.Fields[:j]
		return
	}
	m.Fields = append(m.Fields, Field{Name: m.copyLower(name), Value: v})
}

// AppendValue appends value to the first field named name, separated by
// sep (for example ", " for x-forwarded-for), or adds the field.
func (m *Map) AppendValue(name, sep string, value []byte) {
	for i := range m.Fields {
		if string(m.Fields[i].Name) != name {
			continue
		}
		start := len(m.arena)
		m.arena = append(m.arena, m.Fields[i].Value...)
		m.arena = append(m.arena, sep...)
		m.arena = append(m.arena, value...)
		m.Fields[i].Value = m.arena[start:len(m.arena):len(m.arena)]
		return
	}
	m.Fields = append(m.Fields, Field{Name: m.copyLower(name), Value: m.copyBytes(value)})
}

// CopyFrom replaces the content of m by a deep copy of src.
func (m *Map) CopyFrom(src *Map) {
	m.Reset()
	for _, f := range src.Fields {
		m.Fields = append(m.Fields, Field{Name: m.copyBytes(f.Name), Value: m.copyBytes(f.Value)})
	}
}

// Alloc returns n bytes of arena space the caller may fill before handing
// the slice to AddRef or SetRef. It exists so that formatted values (numbers,
// request ids) need no allocation of their own.
func (m *Map) Alloc(n int) []byte {
	start := len(m.arena)
	if cap(m.arena)-start < n {
		m.grow(n)
		start = len(m.arena)
	}
	m.arena = m.arena[:start+n]
	return m.arena[start : start+n : start+n]
}

// SetRef is Set without copying value (see AddRef for the contract).
func (m *Map) SetRef(name string, value []byte) { m.setField(name, value) }

func (m *Map) grow(n int) {
	// Old slices keep pointing at the old array, which stays valid: values
	// are never written in place.
	c := 2*cap(m.arena) + n
	if c < 256 {
		c = 256
	}
	m.arena = make([]byte, 0, c)
}

func (m *Map) copyString(s string) []byte {
	b := m.Alloc(len(s))
	copy(b, s)
	return b
}

func (m *Map) copyBytes(s []byte) []byte {
	b := m.Alloc(len(s))
	copy(b, s)
	return b
}

func (m *Map) copyLower(s string) []byte {
	b := m.Alloc(len(s))
	for i := 0; i < len(s); i++ {
		b[i] = lower(s[i])
	}
	return b
}

func (m *Map) copyLowerBytes(s []byte) []byte {
	b := m.Alloc(len(s))
	for i := 0; i < len(s); i++ {
		b[i] = lower(s[i])
	}
	return b
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// LowerInPlace lowers ASCII letters of b in place. Only for bytes the caller
// owns (a codec's own buffer before the field is published).
func LowerInPlace(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}

// HasToken reports whether the comma-separated list v contains token,
// compared case-insensitively (as for Connection and Transfer-Encoding).
func HasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var part []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			part, v = v[:i], v[i+1:]
		} else {
			part, v = v, nil
		}
		part = TrimOWS(part)
		if len(part) == len(token) && equalFoldString(part, token) {
			return true
		}
	}
	return false
}

// TrimOWS trims optional white space (SP and HTAB) at both ends.
func TrimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func equalFoldString(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

// EqualFold reports whether b equals s ignoring ASCII case.
func EqualFold(b []byte, s string) bool { return equalFoldString(b, s) }

// DelFold removes every field whose name equals name ignoring ASCII case,
// and returns how many it removed. It lets callers delete by a name taken
// from another header (Connection tokens) without converting it.
func (m *Map) DelFold(name []byte) int {
	j := 0
	for i := range m.Fields {
		if len(m.Fields[i].Name) == len(name) && bytes.EqualFold(m.Fields[i].Name, name) {
			continue
		}
		m.Fields[j] = m.Fields[i]
		j++
	}
	n := len(m.Fields) - j
	clear(m.Fields[j:])
	m.Fields = m.Fields[:j]
	return n
}

// NextToken splits the first comma-separated token off list and returns it
// trimmed of white space, with the rest of the list. Loop with
// `for tok, rest := NextToken(v); tok != nil || len(rest) > 0; tok, rest = NextToken(rest)`
// or use it until rest is empty.
func NextToken(list []byte) (tok, rest []byte) {
	if i := bytes.IndexByte(list, ','); i >= 0 {
		return TrimOWS(list[:i]), list[i+1:]
	}
	return TrimOWS(list), nil
}
