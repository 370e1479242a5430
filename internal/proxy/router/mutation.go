package router

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/weftmesh/weft/internal/proxy/headers"
)

type appendAction uint8

// The HeaderValueOption append actions, as Envoy's HeaderParser applies them.
const (
	appendIfExistsOrAdd appendAction = iota
	addIfAbsent
	overwriteIfExistsOrAdd
	overwriteIfExists
)

// headerAdd is one compiled HeaderValueOption.
type headerAdd struct {
	name      string
	nameBytes []byte
	value     format
	action    appendAction
	keepEmpty bool
}

// mutation is the request_headers_to_add/_remove (or response_...) of one
// level: route configuration, virtual host, route or weighted cluster.
type mutation struct {
	add    []headerAdd
	remove []string
}

// compileMutation compiles one level's headers_to_add and headers_to_remove.
// Following Envoy (HeaderUtility::isModifiableHeader / isRemovableHeader),
// pseudo-headers and "host" can be neither added nor removed.
func compileMutation(adds []*corev3.HeaderValueOption, removes []string, addPath, removePath string) (mutation, error) {
	var m mutation
	for i, o := range adds {
		a, err := compileHeaderAdd(o, index(addPath, i))
		if err != nil {
			return mutation{}, err
		}
		m.add = append(m.add, a)
	}
	for i, name := range removes {
		n := strings.ToLower(name)
		if n == "" || n[0] == ':' || n == headers.Host {
			return mutation{}, errAt(index(removePath, i), "%q may not be removed: pseudo-headers and host are protected", name)
		}
		m.remove = append(m.remove, n)
	}
	return m, nil
}

func compileHeaderAdd(o *corev3.HeaderValueOption, path string) (headerAdd, error) {
	if err := checkFields(o, path, "header", "append", "append_action", "keep_empty_value"); err != nil {
		return headerAdd{}, err
	}
	hv := o.GetHeader()
	hpath := field(path, "header")
	if hv == nil {
		return headerAdd{}, errAt(hpath, "header is required")
	}
	if err := checkFields(hv, hpath, "key", "value"); err != nil {
		return headerAdd{}, err
	}
	name := strings.ToLower(hv.GetKey())
	if name == "" || name[0] == ':' || name == headers.Host {
		return headerAdd{}, errAt(field(hpath, "key"), "%q may not be modified: pseudo-headers and host are protected (use the route's rewrite options)", hv.GetKey())
	}
	if !validHeaderName(name) {
		return headerAdd{}, errAt(field(hpath, "key"), "%q is not a valid header name (RFC 9110 token characters only)", hv.GetKey())
	}
	if strings.ContainsAny(hv.GetValue(), "\x00\r\n") {
		return headerAdd{}, errAt(field(hpath, "value"), "header values must not contain NUL, CR or LF")
	}
	a := headerAdd{name: name, nameBytes: []byte(name), keepEmpty: o.GetKeepEmptyValue()}
	switch {
	case o.GetAppend() != nil:
		// Deprecated append: only allowed with the default append_action.
		if o.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
			return headerAdd{}, errAt(path, "both append and append_action are set; use append_action only")
		}
		a.action = overwriteIfExistsOrAdd
		if o.GetAppend().GetValue() {
			a.action = appendIfExistsOrAdd
		}
	default:
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			a.action = appendIfExistsOrAdd
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			a.action = addIfAbsent
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			a.action = overwriteIfExistsOrAdd
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			a.action = overwriteIfExists
		default:
			return headerAdd{}, errAt(field(path, "append_action"), "unknown append action %v", o.GetAppendAction())
		}
	}
	f, err := parseFormat(hv.GetValue(), field(hpath, "value"))
	if err != nil {
		return headerAdd{}, err
	}
	a.value = f
	return a, nil
}

// validHeaderName reports whether name is an RFC 9110 token, so that it can
// be written on an HTTP/1.1 connection. (Envoy's own check is looser; a name
// with a space or a colon would corrupt the upstream request.)
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// pendingOp is one evaluated add or overwrite.
type pendingOp struct {
	add       *headerAdd
	value     []byte
	overwrite bool
}

// apply evaluates the level on m as Envoy's HeaderParser::evaluateHeaders
// does: removals first; then every value is formatted against the headers as
// they are before this level's additions; then overwrites are applied, then
// appends. Values without variables are referenced, not copied; formatted
// values are copied into m's arena.
func (mu *mutation) apply(m *headers.Map, req *headers.Request, vars Vars) {
	for _, name := range mu.remove {
		m.Del(name)
	}
	if len(mu.add) == 0 {
		return
	}
	var stack [16]pendingOp
	ops := stack[:0]
	var scratch [256]byte
	for i := range mu.add {
		a := &mu.add[i]
		var v []byte
		if a.value.segs == nil {
			v = a.value.literal
		} else {
			b := a.value.appendFormat(scratch[:0], req, vars)
			v = m.Alloc(len(b))
			copy(v, b)
		}
		if len(v) == 0 && !a.keepEmpty {
			continue
		}
		switch a.action {
		case appendIfExistsOrAdd:
			ops = append(ops, pendingOp{add: a, value: v})
		case addIfAbsent:
			if !m.Has(a.name) {
				ops = append(ops, pendingOp{add: a, value: v})
			}
		case overwriteIfExists:
			if m.Has(a.name) {
				ops = append(ops, pendingOp{add: a, value: v, overwrite: true})
			}
		case overwriteIfExistsOrAdd:
			ops = append(ops, pendingOp{add: a, value: v, overwrite: true})
		}
	}
	for _, op := range ops {
		if op.overwrite {
			m.SetRef(op.add.name, op.value)
		}
	}
	for _, op := range ops {
		if !op.overwrite {
			m.AddRef(op.add.nameBytes, op.value)
		}
	}
}
