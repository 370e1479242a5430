package translate

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/structpb"
	mesh "istio.io/api/mesh/v1alpha1"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/weftmesh/weft/internal/config"
)

// Access logs, with Istio's behaviour (pilot/pkg/model telemetry.go and
// telemetry_logging.go, networking/core accesslog.go):
//   - Telemetry accessLogging decides when any applies to the proxy (the
//     root namespace's mesh-wide Telemetry, then the proxy namespace's,
//     then those whose selector matches the proxy, later ones overriding
//     earlier ones, as Istio's mergeLogs), or when
//     defaultProviders.accessLogging names providers. match.mode CLIENT
//     applies to outbound and gateway listeners, SERVER to inbound ones;
//     disabled: true turns a provider off. Providers resolve against
//     extensionProviders; the built-in "envoy" provider takes its format
//     from accessLogFormat/accessLogEncoding.
//   - Otherwise MeshConfig accessLogFile, when set, is a file log with
//     accessLogFormat (or Istio's default) in accessLogEncoding.
//   - Every http_connection_manager and tcp_proxy gets the logs; the
//     listener gets them too with a response_flag_filter NR, for
//     connections no filter chain takes (unless
//     disableEnvoyListenerLog).

// istioTextLogFormat is Istio's default text format (EnvoyTextLogFormat,
// Istio 1.22 and later: %UPSTREAM_CLUSTER_RAW%).
const istioTextLogFormat = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ` +
	`%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% ` +
	`"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ` +
	`%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" ` +
	`"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% ` +
	`%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% ` +
	`%REQUESTED_SERVER_NAME% %ROUTE_NAME%` + "\n"

// istioJSONLogFormat is Istio's default JSON format
// (EnvoyJSONLogFormatIstio).
func istioJSONLogFormat() *structpb.Struct {
	f := map[string]string{
		"start_time": "%START_TIME%", "route_name": "%ROUTE_NAME%", "method": "%REQ(:METHOD)%",
		"path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "protocol": "%PROTOCOL%",
		"response_code": "%RESPONSE_CODE%", "response_flags": "%RESPONSE_FLAGS%",
		"response_code_details":          "%RESPONSE_CODE_DETAILS%",
		"connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
		"bytes_received":                 "%BYTES_RECEIVED%", "bytes_sent": "%BYTES_SENT%", "duration": "%DURATION%",
		"upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%", "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
		"user_agent": "%REQ(USER-AGENT)%", "request_id": "%REQ(X-REQUEST-ID)%", "authority": "%REQ(:AUTHORITY)%",
		"upstream_host": "%UPSTREAM_HOST%", "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
		"upstream_local_address":            "%UPSTREAM_LOCAL_ADDRESS%",
		"downstream_local_address":          "%DOWNSTREAM_LOCAL_ADDRESS%",
		"downstream_remote_address":         "%DOWNSTREAM_REMOTE_ADDRESS%",
		"requested_server_name":             "%REQUESTED_SERVER_NAME%",
		"upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
	}
	st := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(f))}
	for k, v := range f {
		st.Fields[k] = structpb.NewStringValue(v)
	}
	return st
}

const fileAccessLogName = "envoy.access_loggers.file"

// alogMemo holds a scope's access logs per mode, computed once.
type alogMemo struct {
	once [2]sync.Once
	logs [2]alogSet
}

// alogSet is what one mode's listeners get.
type alogSet struct {
	filters  []*accesslogv3.AccessLog // http_connection_manager, tcp_proxy
	listener []*accesslogv3.AccessLog // the listener itself (NR only)
}

func modeIndex(m telemetry.WorkloadMode) int {
	if m == telemetry.WorkloadMode_SERVER {
		return 1
	}
	return 0
}

// accessLogs returns the scope's access logs for listeners of mode
// (CLIENT: outbound and gateway, SERVER: inbound).
func (s *scope) accessLogs(mode telemetry.WorkloadMode) alogSet {
	i := modeIndex(mode)
	s.alogs.once[i].Do(func() {
		m := s.idx.snap.Mesh
		logs := s.telemetryAccessLogs(m, mode)
		if logs == nil && m.GetAccessLogFile() != "" {
			logs = []*accesslogv3.AccessLog{meshFileAccessLog(m.GetAccessLogFile(), m)}
		}
		set := alogSet{filters: logs}
		if len(logs) > 0 && !m.GetDisableEnvoyListenerLog() {
			set.listener = make([]*accesslogv3.AccessLog, len(logs))
			for j, l := range logs {
				set.listener[j] = &accesslogv3.AccessLog{Name: l.Name, ConfigType: l.ConfigType, Filter: noRouteFilter()}
			}
		}
		s.alogs.logs[i] = set
	})
	return s.alogs.logs[i]
}

// noRouteFilter keeps only connections no filter chain took (Istio's
// listener access log filter).
func noRouteFilter() *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
		ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{"NR"}},
	}}
}

// withAccessLogs sets the access logs of mode on l: on its listener and
// on every http_connection_manager and tcp_proxy of its filter chains. l
// must be freshly built (not yet shared). It returns l.
func (s *scope) withAccessLogs(l *listenerv3.Listener, mode telemetry.WorkloadMode) *listenerv3.Listener {
	set := s.accessLogs(mode)
	if len(set.filters) == 0 {
		return l
	}
	l.AccessLog = set.listener
	chains := l.FilterChains
	if l.DefaultFilterChain != nil {
		chains = append(slices.Clip(chains), l.DefaultFilterChain)
	}
	for _, c := range chains {
		for _, f := range c.Filters {
			setFilterAccessLog(f, set.filters)
		}
	}
	return l
}

// setFilterAccessLog sets access_log on an http_connection_manager or
// tcp_proxy network filter (other filters are left alone).
func setFilterAccessLog(f *listenerv3.Filter, logs []*accesslogv3.AccessLog) {
	tc := f.GetTypedConfig()
	switch {
	case tc.MessageIs(&hcmv3.HttpConnectionManager{}):
		var m hcmv3.HttpConnectionManager
		if tc.UnmarshalTo(&m) == nil {
			m.AccessLog = logs
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&m)}
		}
	case tc.MessageIs(&tcpproxyv3.TcpProxy{}):
		var m tcpproxyv3.TcpProxy
		if tc.UnmarshalTo(&m) == nil {
			m.AccessLog = logs
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&m)}
		}
	}
}

// meshFileAccessLog is Istio's FileAccessLogFromMeshConfig: a file log at
// path in accessLogEncoding (TEXT: accessLogFormat or Istio's default,
// with a newline added; JSON: accessLogFormat parsed as a JSON object, or
// Istio's default when it is empty or not an object).
func meshFileAccessLog(path string, m *mesh.MeshConfig) *accesslogv3.AccessLog {
	fl := &filev3.FileAccessLog{Path: path}
	if m.GetAccessLogEncoding() == mesh.MeshConfig_JSON {
		st := istioJSONLogFormat()
		if f := m.GetAccessLogFormat(); f != "" {
			if parsed, ok := jsonObject(f); ok {
				st = parsed
			}
		}
		fl.AccessLogFormat = jsonLogFormat(st)
	} else {
		fl.AccessLogFormat = textLogFormat(m.GetAccessLogFormat())
	}
	return fileAccessLog(fl)
}

// jsonObject parses a JSON object into a Struct.
func jsonObject(s string) (*structpb.Struct, bool) {
	var v map[string]any
	if json.Unmarshal([]byte(s), &v) != nil {
		return nil, false
	}
	st, err := structpb.NewStruct(v)
	return st, err == nil && len(st.GetFields()) > 0
}

// textLogFormat is a text_format_source with Istio's default for "", and
// a newline added when missing (Istio: "Istio will insert a newline on
// all formats").
func textLogFormat(f string) *filev3.FileAccessLog_LogFormat {
	if f == "" {
		f = istioTextLogFormat
	} else if !strings.HasSuffix(f, "\n") {
		f += "\n"
	}
	return &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
		Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: f},
		}},
	}}
}

func jsonLogFormat(st *structpb.Struct) *filev3.FileAccessLog_LogFormat {
	return &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
		Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: st},
	}}
}

func fileAccessLog(fl *filev3.FileAccessLog) *accesslogv3.AccessLog {
	return &accesslogv3.AccessLog{
		Name:       fileAccessLogName,
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(fl)},
	}
}

// providerAccessLog builds the log of an extension provider (nil for
// providers that are not envoyFileAccessLog). The built-in "envoy"
// provider formats as the mesh configuration says, as in Istio.
func providerAccessLog(p *mesh.MeshConfig_ExtensionProvider, m *mesh.MeshConfig) *accesslogv3.AccessLog {
	fp := p.GetEnvoyFileAccessLog()
	if fp == nil {
		return nil
	}
	path := fp.GetPath()
	if path == "" {
		path = "/dev/stdout"
	}
	if p.GetName() == config.EnvoyProvider {
		return meshFileAccessLog(path, m)
	}
	fl := &filev3.FileAccessLog{Path: path}
	switch f := fp.GetLogFormat().GetLogFormat().(type) {
	case *mesh.MeshConfig_ExtensionProvider_EnvoyFileAccessLogProvider_LogFormat_Labels:
		st := f.Labels
		if len(st.GetFields()) == 0 {
			st = istioJSONLogFormat()
		}
		fl.AccessLogFormat = jsonLogFormat(st)
	case *mesh.MeshConfig_ExtensionProvider_EnvoyFileAccessLogProvider_LogFormat_Text:
		fl.AccessLogFormat = textLogFormat(f.Text)
	default:
		fl.AccessLogFormat = textLogFormat("")
	}
	return fileAccessLog(fl)
}

// findProvider finds an extension provider by name (case-insensitive, as
// Istio's fetchProvider).
func findProvider(m *mesh.MeshConfig, name string) *mesh.MeshConfig_ExtensionProvider {
	for _, p := range m.GetExtensionProviders() {
		if strings.EqualFold(p.GetName(), name) {
			return p
		}
	}
	return nil
}

// telemetryAccessLogWarnings reports the provider references of Telemetry
// accessLogging that write nothing: names the mesh configuration does not
// define, and providers weft does not implement for access logs.
func telemetryAccessLogWarnings(w *warnSet, idx *index) {
	m := idx.snap.Mesh
	for _, obj := range idx.snap.List(config.Telemetry) {
		spec, ok := obj.Spec.(*telemetry.Telemetry)
		if !ok {
			continue
		}
		for i, al := range spec.GetAccessLogging() {
			for j, ref := range al.GetProviders() {
				path := fmt.Sprintf("spec.accessLogging[%d].providers[%d].name", i, j)
				p := findProvider(m, ref.GetName())
				switch {
				case p == nil:
					w.add(objectWarning(obj, path, fmt.Sprintf(
						"unknown provider %q: the mesh configuration's extensionProviders do not define it; no access log is written for it", ref.GetName())))
				case p.GetEnvoyFileAccessLog() == nil:
					w.add(objectWarning(obj, path, fmt.Sprintf(
						"not applied: provider %q is not an envoyFileAccessLog provider, the only access log provider weft-proxy implements", ref.GetName())))
				}
			}
		}
	}
}
