package accesslog

import (
	"io"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// istioText is Istio's default access log format (pilot/pkg/model
// telemetry_logging.go, EnvoyTextLogFormat).
const istioText = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ` +
	`%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% ` +
	`"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ` +
	`%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" ` +
	`"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% ` +
	`%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% ` +
	`%REQUESTED_SERVER_NAME% %ROUTE_NAME%` + "\n"

// BenchmarkFormat formats Istio's default text format and a JSON
// dictionary into a reused buffer: no allocation per line.
func BenchmarkFormat(b *testing.B) {
	text, err := newTextFormatter(istioText, "", false)
	if err != nil {
		b.Fatal(err)
	}
	st, _ := structpb.NewStruct(map[string]any{
		"start_time": "%START_TIME%", "method": "%REQ(:METHOD)%", "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
		"response_code": "%RESPONSE_CODE%", "response_flags": "%RESPONSE_FLAGS%", "duration": "%DURATION%",
		"upstream_host": "%UPSTREAM_HOST%", "user_agent": "%REQ(USER-AGENT)%", "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
	})
	js, err := newJSONFormatter(st, "", true, false)
	if err != nil {
		b.Fatal(err)
	}
	e := httpEntry()
	for _, c := range []struct {
		name string
		f    *Formatter
	}{{"istio-text", text}, {"json", js}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var buf, scratch []byte
			for i := 0; i < b.N; i++ {
				buf, scratch = c.f.AppendTo(buf[:0], scratch, e)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

// BenchmarkLog is the per-request cost of one logger: format into a
// pooled buffer and queue it (the writer goroutine writes to io.Discard).
func BenchmarkLog(b *testing.B) {
	m := NewManager(Options{Stdout: io.Discard, QueueSize: 1 << 16})
	defer m.Close()
	ls, err := m.Build([]*accesslogv3.AccessLog{{Name: "stdout", ConfigType: &accesslogv3.AccessLog_TypedConfig{
		TypedConfig: anyOf(b, &streamv3.StdoutAccessLog{AccessLogFormat: &streamv3.StdoutAccessLog_LogFormat{
			LogFormat: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormat{TextFormat: istioText}},
		}}),
	}}}, "access_log")
	if err != nil {
		b.Fatal(err)
	}
	e := httpEntry()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ls.Log(e)
	}
}
