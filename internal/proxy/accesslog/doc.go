// Package accesslog is weft-proxy's access logging: Envoy's file logger
// (envoy.access_loggers.file, FileAccessLog) and stream loggers
// (envoy.access_loggers.stdout / stderr), with Envoy's substitution format
// (command operators such as %START_TIME%, %REQ(X?Y):Z%, %RESPONSE_CODE%,
// text and JSON formats) and the common access log filters
// (status_code_filter, duration_filter, response_flag_filter,
// not_health_check_filter, and_filter, or_filter).
//
// A Manager owns one writer per file path, shared by every logger that
// writes there (as Envoy's AccessLogManager shares files). Logging never
// blocks a request: a line is formatted into a pooled buffer on the
// request's goroutine and handed to the file's writer goroutine through a
// bounded queue; when the queue is full the line is dropped and counted
// (access_logs.dropped). The writer buffers and flushes on an interval,
// when its buffer fills, and on Close.
//
// The connection manager (hcm) logs every completed HTTP stream, the TCP
// proxy every closed connection; both build their Loggers with
// Manager.Build from their access_log fields.
package accesslog
