package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

var configDumpParams = []param{
	{"resource", "The resource to dump (a repeated field of a dump, e.g. static_clusters)"},
	{"mask", "The mask to apply, comma-separated proto field paths. With resource, it applies to every element of the repeated field"},
}

// handleConfigDump serves GET /config_dump as Envoy's ConfigDumpHandler
// does: the ConfigDump proto as pretty JSON with every Any resolved and
// sensitive fields redacted; ?resource=<repeated field> lists that field's
// elements (each packed as an Any), ?mask=<paths> trims them. name_regex
// is refused with 400 rather than ignored. As in Envoy, the endpoints
// (EndpointsConfigDump) are only included with ?include_eds.
func (a *Admin) handleConfigDump(q url.Values) *response {
	if first(q, "name_regex") != "" {
		return text(http.StatusBadRequest, "name_regex is not supported by weft's /config_dump; use resource= and mask=\n")
	}
	src := a.opts.ConfigDump()
	if !q.Has("include_eds") {
		src = withoutEndpoints(src)
	}
	mask := parseMask(first(q, "mask"))
	var dump *adminv3.ConfigDump
	var errResp *response
	if resource := first(q, "resource"); resource != "" {
		dump, errResp = resourceDump(src, resource, mask)
	} else {
		dump, errResp = fullDump(src, mask)
	}
	if errResp != nil {
		return errResp
	}
	redact(dump.ProtoReflect(), false)
	return jsonResponse(dump, false)
}

// fullDump copies every config, each trimmed by mask when one is given.
// A config the mask does not fit is left out; if none fits, the request
// fails (Envoy's addAllConfigToDump).
func fullDump(src *adminv3.ConfigDump, mask []string) (*adminv3.ConfigDump, *response) {
	out := &adminv3.ConfigDump{}
	for _, c := range src.GetConfigs() {
		if len(mask) == 0 {
			out.Configs = append(out.Configs, proto.Clone(c).(*anypb.Any))
			continue
		}
		m, errResp := unpack(c)
		if errResp != nil {
			return nil, errResp
		}
		if !checkAndTrim(m.ProtoReflect(), mask) {
			continue
		}
		packed, errResp := pack(m)
		if errResp != nil {
			return nil, errResp
		}
		out.Configs = append(out.Configs, packed)
	}
	if len(mask) > 0 && len(out.Configs) == 0 {
		return nil, text(http.StatusBadRequest, fmt.Sprintf("FieldMask %s could not be successfully applied to any configs.", strings.Join(mask, ",")))
	}
	return out, nil
}

// resourceDump lists the elements of the first config's repeated field
// named resource, each packed as an Any and trimmed by mask (Envoy's
// addResourceToDump, with its status codes and messages).
func resourceDump(src *adminv3.ConfigDump, resource string, mask []string) (*adminv3.ConfigDump, *response) {
	for _, c := range src.GetConfigs() {
		m, errResp := unpack(c)
		if errResp != nil {
			return nil, errResp
		}
		rm := m.ProtoReflect()
		fd := rm.Descriptor().Fields().ByName(protoreflect.Name(resource))
		if fd == nil {
			continue
		}
		if !fd.IsList() || fd.Message() == nil {
			return nil, text(http.StatusBadRequest, fmt.Sprintf("%s is not a repeated field. Use ?mask=%s to get only this field", fd.Name(), fd.Name()))
		}
		out := &adminv3.ConfigDump{}
		list := rm.Get(fd).List()
		for i := 0; i < list.Len(); i++ {
			elem := list.Get(i).Message()
			if len(mask) > 0 && !trimResource(elem, mask) {
				return nil, text(http.StatusBadRequest, fmt.Sprintf("FieldMask %s could not be successfully used.", strings.Join(mask, ",")))
			}
			packed, errResp := pack(elem.Interface())
			if errResp != nil {
				return nil, errResp
			}
			out.Configs = append(out.Configs, packed)
		}
		return out, nil
	}
	return nil, text(http.StatusNotFound, resource+" not found in config dump")
}

// unpack decodes one config of the caller's dump into a fresh message. A
// type that is not linked in is the server's bug, hence 500.
func unpack(c *anypb.Any) (proto.Message, *response) {
	m, err := c.UnmarshalNew()
	if err != nil {
		return nil, text(http.StatusInternalServerError, fmt.Sprintf("config_dump: cannot decode %s: %v\n", c.GetTypeUrl(), err))
	}
	return m, nil
}

func pack(m proto.Message) (*anypb.Any, *response) {
	a, err := anypb.New(m)
	if err != nil {
		return nil, text(http.StatusInternalServerError, fmt.Sprintf("config_dump: cannot encode %s: %v\n", m.ProtoReflect().Descriptor().FullName(), err))
	}
	return a, nil
}

// withoutEndpoints returns d without its EndpointsConfigDump, which Envoy
// prints only when asked with ?include_eds. d itself is not modified.
func withoutEndpoints(d *adminv3.ConfigDump) *adminv3.ConfigDump {
	if d == nil {
		return nil
	}
	out := &adminv3.ConfigDump{}
	for _, c := range d.GetConfigs() {
		if c.MessageIs(&adminv3.EndpointsConfigDump{}) {
			continue
		}
		out.Configs = append(out.Configs, c)
	}
	return out
}
