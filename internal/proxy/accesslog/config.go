package accesslog

import (
	"fmt"
	"os"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// EnvoyDefaultFormat is the format Envoy's file and stream loggers use
// when none is configured (Envoy's "Default Format String").
const EnvoyDefaultFormat = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ` +
	`%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ` +
	`%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" ` +
	`"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"` + "\n"

// The extension types weft-proxy accepts in AccessLog.typed_config.
const (
	FileType   = "envoy.extensions.access_loggers.file.v3.FileAccessLog"
	StdoutType = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
	StderrType = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
)

// sink is where one logger writes and how.
type sink struct {
	path   string
	format *Formatter
}

// decodeSink decodes a logger's typed_config. Errors start with the field path
// below typed_config.
func decodeSink(tc *anypb.Any, hostname string) (sink, error) {
	switch {
	case tc.MessageIs(&filev3.FileAccessLog{}):
		var c filev3.FileAccessLog
		if err := tc.UnmarshalTo(&c); err != nil {
			return sink{}, fmt.Errorf("@type: %w", err)
		}
		return fileSink(&c, hostname)
	case tc.MessageIs(&streamv3.StdoutAccessLog{}):
		var c streamv3.StdoutAccessLog
		if err := tc.UnmarshalTo(&c); err != nil {
			return sink{}, fmt.Errorf("@type: %w", err)
		}
		f, err := compileFormat(c.GetLogFormat(), hostname, "log_format")
		return sink{path: "/dev/stdout", format: f}, err
	case tc.MessageIs(&streamv3.StderrAccessLog{}):
		var c streamv3.StderrAccessLog
		if err := tc.UnmarshalTo(&c); err != nil {
			return sink{}, fmt.Errorf("@type: %w", err)
		}
		f, err := compileFormat(c.GetLogFormat(), hostname, "log_format")
		return sink{path: "/dev/stderr", format: f}, err
	}
	return sink{}, fmt.Errorf("@type: %s is not supported by weft-proxy (%s, %s, %s)", tc.MessageName(), FileType, StdoutType, StderrType)
}

// fileSink decodes a FileAccessLog: its path and one of log_format or the
// deprecated format, json_format and typed_json_format.
func fileSink(c *filev3.FileAccessLog, hostname string) (sink, error) {
	if c.GetPath() == "" {
		return sink{}, fmt.Errorf("path: required (a file, /dev/stdout or /dev/stderr)")
	}
	s := sink{path: c.GetPath()}
	var err error
	switch f := c.GetAccessLogFormat().(type) {
	case *filev3.FileAccessLog_Format:
		text := f.Format
		if text == "" {
			text = EnvoyDefaultFormat
		}
		s.format, err = newTextFormatter(text, hostname, false)
		err = wrap("format", err)
	case *filev3.FileAccessLog_JsonFormat:
		s.format, err = newJSONFormatter(f.JsonFormat, hostname, false, false)
		err = wrap("json_format", err)
	case *filev3.FileAccessLog_TypedJsonFormat:
		s.format, err = newJSONFormatter(f.TypedJsonFormat, hostname, true, false)
		err = wrap("typed_json_format", err)
	default:
		s.format, err = compileFormat(c.GetLogFormat(), hostname, "log_format")
	}
	return s, err
}

// compileFormat compiles a SubstitutionFormatString (nil: Envoy's default
// format). path names the field for errors.
func compileFormat(sf *corev3.SubstitutionFormatString, hostname, path string) (*Formatter, error) {
	if sf == nil {
		return newTextFormatter(EnvoyDefaultFormat, hostname, false)
	}
	if len(sf.GetFormatters()) > 0 {
		return nil, fmt.Errorf("%s.formatters: formatter extensions are not supported by weft-proxy", path)
	}
	omit := sf.GetOmitEmptyValues()
	switch f := sf.GetFormat().(type) {
	case *corev3.SubstitutionFormatString_TextFormat:
		tf, err := newTextFormatter(f.TextFormat, hostname, omit)
		return tf, wrap(path+".text_format", err)
	case *corev3.SubstitutionFormatString_TextFormatSource:
		text, err := dataSource(f.TextFormatSource)
		if err != nil {
			return nil, wrap(path+".text_format_source", err)
		}
		tf, err := newTextFormatter(text, hostname, omit)
		return tf, wrap(path+".text_format_source", err)
	case *corev3.SubstitutionFormatString_JsonFormat:
		jf, err := newJSONFormatter(f.JsonFormat, hostname, true, omit)
		return jf, wrap(path+".json_format", err)
	}
	return nil, fmt.Errorf("%s: set text_format_source, text_format or json_format", path)
}

// dataSource reads a DataSource's text: inline_string, inline_bytes or
// filename (read once, at configuration).
func dataSource(ds *corev3.DataSource) (string, error) {
	switch s := ds.GetSpecifier().(type) {
	case *corev3.DataSource_InlineString:
		return s.InlineString, nil
	case *corev3.DataSource_InlineBytes:
		return string(s.InlineBytes), nil
	case *corev3.DataSource_Filename:
		b, err := os.ReadFile(s.Filename)
		if err != nil {
			return "", fmt.Errorf("filename: %w", err)
		}
		return string(b), nil
	}
	return "", fmt.Errorf("set inline_string, inline_bytes or filename")
}

func wrap(path string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", path, err)
}
